"""The cascade on Triton Inference Server: a model repository, a launcher, remote chains and a fleet client.

- :mod:`~pipeline.serving.repository`: an engines folder -> a Triton model repository (one model
  per stage, dynamic batching; ``tensorrt_plan`` where plans were built, else a Python-backend
  model running the stage's ONNX graph), plus the ``cascade`` BLS model; checked before serving.
- :mod:`~pipeline.serving.configs`: the ``config.pbtxt`` texts, and their check against Triton's
  model-configuration schema; :mod:`~pipeline.serving.rule`: the manifest's exit rule and starting
  latency for the variant the server runs.
- :mod:`~pipeline.serving.triton_models`: the Python-backend ``model.py`` sources the repository
  carries (they run inside the server and import nothing of this package).
- :mod:`~pipeline.serving.install`, :mod:`~pipeline.serving.server`: the bundled ``tritonserver``
  found and started on loopback ports, ready-checked and stopped with nothing left behind;
  :mod:`~pipeline.serving.serve`: a repository checked, then served (``anytime triton serve``).
- :mod:`~pipeline.serving.wire`: the KServe v2 HTTP protocol with binary tensors, one connection,
  a timeout per request.
- :mod:`~pipeline.serving.remote`: a ``StageChain`` whose stages are requests to the server (the
  existing ``Cascade`` drives it: exit rule and deadline stay on the client), and the client of
  the ``cascade`` model.
- :mod:`~pipeline.serving.fleet`, :mod:`~pipeline.serving.cameras`, :mod:`~pipeline.serving.report`:
  N simulated cameras against a server, bounded in time; every frame gets an answer in budget or
  "no answer", never a stall.
- :mod:`~pipeline.serving.bench`: benchmark 8 (``anytime bench triton``), cameras against the server
  beside the in-process cascade.

Nothing here imports tritonclient, onnxruntime or OpenCV at module level.
"""
