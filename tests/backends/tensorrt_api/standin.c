/* Stand-ins for TensorRT's native libraries (libnvinfer, libnvonnxparser, libnvinfer_plugin and,
 * on 8.6, libnvparsers), compiled at test time so that the real Python bindings load without a GPU.
 *
 * They export the plain-C entry points the bindings link against. Every factory returns NULL, so
 * the bindings' Builder, Runtime and OnnxParser constructors fail as they do when CUDA cannot start
 * ("pybind11::init(): factory function returned nullptr"); classes, enums and signatures are the
 * real module's. TensorRT 8.6's bindings also link the Caffe and UFF parsers' two C++ entry points
 * each, given here under their mangled names.
 */
#include <stddef.h>

void *createInferBuilder_INTERNAL(void *logger, int version) { return NULL; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return NULL; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return NULL; }
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return NULL; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return NULL; }
void *getBuilderPluginRegistry(int capability) { return NULL; }
void *getPluginRegistry(void) { return NULL; }
int getNvOnnxParserVersion(void) { return 0; }
int initLibNvInferPlugins(void *logger, const char *name_space) { return 0; }

#if TRT_MAJOR < 10
/* nvcaffeparser1::createCaffeParser(), nvcaffeparser1::shutdownProtobufLibrary() */
void *_ZN14nvcaffeparser117createCaffeParserEv(void) { return NULL; }
void _ZN14nvcaffeparser123shutdownProtobufLibraryEv(void) {}
/* nvuffparser::createUffParser(), nvuffparser::FieldMap::FieldMap(const char*, const void*, FieldType, int) */
void *_ZN11nvuffparser15createUffParserEv(void) { return NULL; }
void _ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi(void *self, const char *name, const void *data,
                                                         int type, int length) {}
#endif
