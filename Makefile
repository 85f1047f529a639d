# Every target installs what it needs first: a fresh clone needs no other step.
PYTHON_BOOT ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
# What `make setup` installs. A Jetson: EXTRAS=jetson,plot VENV_ARGS=--system-site-packages
# (TensorRT's Python bindings come with JetPack; torch and onnxsim stay on the host that exports).
EXTRAS      ?= export,plot,test
VENV_ARGS   ?=
# OpenCV's wheel: headless (servers, CI: no window), gui (a desktop with a display: the camera app's
# window), none (a Jetson: JetPack's own OpenCV, built with GStreamer). One at a time: switching removes the other.
OPENCV      ?= headless
# CIFAR-10 for development: an ImageFolder archive, or leave empty to download the official one.
DATA        ?= $(if $(wildcard ../shared/data/cifar10-jpg.tar.gz),../shared/data/cifar10-jpg.tar.gz,)
# The shipped model (docs/model.md): the resolution-adaptive network. The MSDNet shipped before it stays in models/:
# MODEL=msdnet_cifar NAME=msdnet_cifar CHECKPOINT=models/msdnet_cifar10.pt.
MODEL       ?= pipeline.models.ranet:build
# The model's folder under ENGINES and the name of its long run (MODEL may be a factory, module:function).
NAME        ?= ranet
CHECKPOINT  ?= models/ranet_cifar10.pt
# The teacher of `--teacher` (README, "Training"): a one-exit network, same data and validation split.
TEACHER_OUT ?= models/teacher_cifar10.pt
TEACHER_ARGS ?= --epochs 30 --batch-size 256 --lr 0.4 --nesterov --weight-decay 5e-4 --schedule cosine --warmup-epochs 1 \
               --ema 0.998 --bn-bias-lr-scale 4 --cutout 16 --bf16 --threads 2 --compile on --channels-last --no-progress
# The shipped recipe (docs/training.md): `make train` resumes it from TRAIN_OUT after an interruption (SIGTERM or
# Ctrl-C stop it after the step in flight, state saved). A run in progress lives in checkpoints/ (ignored by git
# but for the one run `make keep-run` commits). When it has run all its epochs and beats the shipped model, its
# weights become CHECKPOINT.
TRAIN_OUT   ?= checkpoints/$(NAME)_long.pt
EPOCHS      ?= 120
# torch.compile for the steps (on | off): a speed option that may change between sessions of one run; on a CPU
# without hardware bfloat16 eager float32 steps were the faster ones here (docs/training.md).
COMPILE     ?= on
TRAIN_ARGS  ?= --batch-size 128 --lr 0.2 --weight-decay 5e-4 --cutout 16 --schedule cosine --ema 0.999 --bn-bias-lr-scale 4 \
               --teacher $(TEACHER_OUT) --distill 0.5 --bf16 --threads 2 --compile $(COMPILE) --channels-last --no-progress
# The static anchors of benchmark 6 (docs/results.md): one-exit networks of three costs, trained on the same data
# with the teacher's recipe; the largest is the teacher. Their checkpoints ship in models/.
ANCHORS     ?= static_s static_m teacher
ANCHOR_OPTS_static_s ?= --model-opt stem=16 --model-opt widths=32,64,128
ANCHOR_OPTS_static_m ?= --model-opt stem=24 --model-opt widths=48,128,192
ANCHOR_BENCH_ARGS ?=
# The architecture comparison (docs/training.md): short runs of each multi-exit design, judged through engines.
ARCH_ARGS   ?=
SPLIT       ?= validation
EVAL_ARGS   ?=
TRAIN_BENCH_ARGS ?=
ABLATION_ARGS ?=
ENGINES     ?= engines
ENGINE_ARGS ?=
REPORTS     ?= reports
PROFILE_ARGS ?=
BENCH_ARGS  ?=
VERIFY_ARGS ?=
VIDEO_BENCH_ARGS ?=
TEMPORAL_ARGS ?=
# make demo: SOURCE empty runs headless on a clip of labelled test images; SOURCE=0 or csi://0 runs live.
SOURCE      ?=
PRECISION   ?= fp32
DEMO        ?= runs/demo
DEMO_ARGS   ?= --fps 30

.PHONY: setup lint test train flops evaluate engines clean

# Before a command: its "$$@" is --checkpoint CHECKPOINT where that file exists, else nothing (a path with spaces kept whole).
WITH_CHECKPOINT = set --; [ ! -f "$(CHECKPOINT)" ] || set -- --checkpoint "$(CHECKPOINT)";

$(VENV)/.installed: pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV_ARGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# Both wheels install the same cv2 package; the one not chosen is removed before the chosen one goes in.
$(VENV)/.opencv-$(OPENCV): $(VENV)/.installed
	@case "$(OPENCV)" in headless|gui|none) ;; *) echo "OPENCV should be headless, gui or none; got '$(OPENCV)'" >&2; exit 2;; esac
	rm -f $(VENV)/.opencv-*
	$(PY) -m pip uninstall --quiet -y opencv-python opencv-python-headless 2>/dev/null || true
	$(if $(filter none,$(OPENCV)),,$(PY) -m pip install --quiet '$(if $(filter gui,$(OPENCV)),opencv-python,opencv-python-headless)>=4.8')
	touch $@

setup: $(VENV)/.installed $(VENV)/.opencv-$(OPENCV)

# Triton for `anytime triton` and tests/serving (docs/triton.md): the client and the model configuration schema
# (the triton extra), the bundled server (nvidia-pytriton without its dependencies: it pins numpy<2, which only
# its Python API needs), and numpy 1.x for the server's Python backend in .venv/triton-site.
.PHONY: triton
$(VENV)/.triton: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[triton]'
	$(PY) -m pip install --quiet --no-deps 'nvidia-pytriton>=0.7,<0.8'
	$(PY) -m pipeline.cli triton setup
	touch $@

triton: setup $(VENV)/.triton

# Static types of the package (configuration in pyproject.toml), then the tests.
lint: setup
	$(PY) -m mypy

test: lint triton
	$(PY) -m pytest

train: teacher
	$(PY) -m pipeline.cli train --model $(MODEL) --data "$(DATA)" --epochs $(EPOCHS) \
	    --out $(TRAIN_OUT) --resume $(TRAIN_ARGS)

# A run in progress is kept on the current branch (main), where the next session's checkout finds it: once per
# session, after the run has stopped (SIGTERM saves it), `make keep-run` commits TRAIN_OUT and its resume state,
# and nothing else (refused while the run trains or when the two files are not one pair). Once the run has
# shipped or is abandoned, `make drop-run` commits their removal (the files here stay until removed).
.PHONY: keep-run drop-run
keep-run: setup
	$(PY) -m pipeline.cli kept-run keep "$(TRAIN_OUT)"
drop-run: setup
	$(PY) -m pipeline.cli kept-run drop "$(TRAIN_OUT)"

.PHONY: teacher
teacher: setup
	$(PY) -m pipeline.cli train --model-factory pipeline.models.teacher:build --data "$(DATA)" \
	    --out $(TEACHER_OUT) --resume $(TEACHER_ARGS)

# The static anchors: trained where their checkpoints are missing or unfinished (resumable), then built.
anchor_ckpt = $(if $(filter teacher,$(1)),$(TEACHER_OUT),models/$(1)_cifar10.pt)
.PHONY: anchors bench-anchors architectures
anchors: teacher
	$(foreach a,$(filter-out teacher,$(ANCHORS)),$(PY) -m pipeline.cli train --model-factory pipeline.models.teacher:build \
	    $(ANCHOR_OPTS_$(a)) --data "$(DATA)" --out $(call anchor_ckpt,$(a)) --resume $(TEACHER_ARGS) &&) true
	$(foreach a,$(ANCHORS),$(PY) -m pipeline.cli engines --checkpoint $(call anchor_ckpt,$(a)) --name $(a) \
	    --data "$(DATA)" --out "$(ENGINES)" $(ENGINE_ARGS) &&) true

# The anchors run one after another as one multi-exit model (docs/model.md): their weights as trained, no training.
# Then, like any model: make engines bench bench-anchors NAME=static_cascade CHECKPOINT=$(CASCADE_OUT)
comma := ,
CASCADE_MEMBERS ?= $(subst $() ,$(comma),$(strip $(foreach a,$(ANCHORS),$(call anchor_ckpt,$(a)))))
CASCADE_OUT ?= checkpoints/static_cascade.pt
.PHONY: static-cascade
static-cascade: setup
	$(PY) -m pipeline.cli factory --model-factory pipeline.models.static_cascade:build \
	    --model-opt members=$(CASCADE_MEMBERS) --out $(CASCADE_OUT)

# Benchmark 6: the cascade's budgeted curve against the static anchors ($(REPORTS)/anchors.json).
bench-anchors: anchors engines
	$(PY) -m pipeline.cli bench anchors --engines "$(ENGINES)/$(NAME)" $(foreach a,$(ANCHORS),--static "$(ENGINES)/$(a)") \
	    --data "$(DATA)" --json $(REPORTS)/anchors.json $(ANCHOR_BENCH_ARGS)

# Multi-exit designs on one short schedule with the teacher, judged by their budgeted curves ($(REPORTS)/architectures.json).
architectures: teacher
	$(PY) -m pipeline.cli bench architectures --data "$(DATA)" --out runs/architectures \
	    --json $(REPORTS)/architectures.json $(ARCH_ARGS)

evaluate: setup
	$(PY) -m pipeline.cli evaluate --checkpoint "$(CHECKPOINT)" --data "$(DATA)" --split $(SPLIT) $(EVAL_ARGS)

# Training throughput of MODEL, two setups side by side (images per second).
.PHONY: train-bench ablations
train-bench: setup
	$(PY) -m pipeline.cli bench train-throughput --model $(MODEL) $(TRAIN_BENCH_ARGS)

# The recipe's ablation table (short runs, one change each; resumable): runs/ablation/.
ablations: setup
	$(PY) -m pipeline.cli bench ablations --data "$(DATA)" --out runs/ablation $(ABLATION_ARGS)

# Per-stage ONNX (FP32, FP16, INT8), engines for this machine, manifest: $(ENGINES)/<model>/manifest.json
engines: setup
	$(PY) -m pipeline.cli engines --checkpoint "$(CHECKPOINT)" --data "$(DATA)" --out "$(ENGINES)" --name $(NAME) $(ENGINE_ARGS)

# Per-stage latency percentiles and accuracy-vs-latency curves ($(REPORTS)/latency.json, .md, .png);
# writes the measured latencies and validation-calibrated exit thresholds into the manifest.
.PHONY: profile bench
profile: engines
	$(WITH_CHECKPOINT)$(PY) -m pipeline.cli profile --engines "$(ENGINES)/$(NAME)" --data "$(DATA)" --split $(SPLIT) \
	    "$$@" --out $(REPORTS) $(PROFILE_ARGS)

# The README's four benchmarks, side by side in one run ($(REPORTS)/benchmarks.json); --frames N to shorten.
# Then benchmark 5, the temporal cascade against frame by frame on generated video ($(REPORTS)/video_benchmark.json).
bench: engines
	$(WITH_CHECKPOINT)$(PY) -m pipeline.cli bench cascade --engines "$(ENGINES)/$(NAME)" --data "$(DATA)" \
	    "$$@" --json $(REPORTS)/benchmarks.json $(BENCH_ARGS)
	$(PY) -m pipeline.cli bench video --engines "$(ENGINES)/$(NAME)" --data "$(DATA)" \
	    --json $(REPORTS)/video_benchmark.json $(VIDEO_BENCH_ARGS)

# Frame reuse, cuts, the temporal prior and smoothing, calibrated on validation clips into the manifest
# (after `make profile`, whose exit thresholds they build on).
.PHONY: temporal
temporal: engines
	$(PY) -m pipeline.cli temporal --engines "$(ENGINES)/$(NAME)" --data "$(DATA)" $(TEMPORAL_ARGS)

# Every built engine against the reference (the PyTorch model where torch is installed, else ONNX Runtime
# FP32) on 256 validation images: per-exit logit differences and top-1 agreement, exit 1 past a tolerance.
.PHONY: verify
verify: engines
	$(WITH_CHECKPOINT)$(PY) -m pipeline.cli verify --engines "$(ENGINES)/$(NAME)" --data "$(DATA)" \
	    "$$@" $(VERIFY_ARGS)

# The README's main command: engines for this machine, exit thresholds, then the camera app.
.PHONY: demo
demo: engines
	$(PY) -m pipeline.cli profile --engines "$(ENGINES)/$(NAME)" --data "$(DATA)" --precisions $(PRECISION) \
	    --runs 300 --warmup 30 --out $(DEMO)/profile
	$(PY) -m pipeline.cli temporal --engines "$(ENGINES)/$(NAME)" --data "$(DATA)" --precisions $(PRECISION) \
	    --scenes 40 $(TEMPORAL_ARGS)
ifeq ($(SOURCE),)
	$(PY) -m pipeline.cli clip --data "$(DATA)" --split test --scenes 8 --out $(DEMO)
	$(PY) -m pipeline.cli camera --engines "$(ENGINES)/$(NAME)" --source $(DEMO)/clip.avi --labels $(DEMO)/labels.json --crop \
	    --headless --output $(DEMO)/annotated.avi --log $(DEMO)/frames.jsonl --precision $(PRECISION) $(DEMO_ARGS)
else
	$(PY) -m pipeline.cli camera --engines "$(ENGINES)/$(NAME)" --source '$(subst ','\'',$(value SOURCE))' --precision $(PRECISION) \
	    --log $(DEMO)/frames.jsonl $(DEMO_ARGS)
endif

# Every figure the README and docs/results.md publish for the shipped model, remeasured in one command after a
# model changes: thresholds on validation and test, benchmarks 1-5 (FP32) and the INT8 cascade, benchmark 6 against
# the static anchors, the build's agreement, the model card, benchmarks 7 and 8, and the demo. Each step is the
# documented command, writing under $(REPORTS)/ (and $(DEMO)/); a failing step stops the rest.
.PHONY: results bench-streams bench-triton
results: engines
	$(MAKE) profile
	$(MAKE) profile SPLIT=test REPORTS=$(REPORTS)/test PROFILE_ARGS="--precisions fp32,int8"
	$(MAKE) bench
	$(WITH_CHECKPOINT)$(PY) -m pipeline.cli bench cascade --engines "$(ENGINES)/$(NAME)" --data "$(DATA)" \
	    "$$@" --precision int8 --json $(REPORTS)/benchmarks_int8.json $(BENCH_ARGS)
	$(MAKE) bench-anchors
	$(MAKE) verify VERIFY_ARGS="--json $(REPORTS)/verify.json $(VERIFY_ARGS)"
	$(MAKE) evaluate SPLIT=test EVAL_ARGS="--card models/README.md --corruptions all --engines $(ENGINES)/$(NAME) \
	    --json $(REPORTS)/card_test.json"
	$(MAKE) bench-streams
	$(MAKE) bench-triton
	$(MAKE) demo

# Benchmark 7: N streams in one process, batched against a cascade per stream ($(REPORTS)/streams.json).
bench-streams: engines
	$(PY) -m pipeline.cli bench streams --engines "$(ENGINES)/$(NAME)" --data "$(DATA)" --json $(REPORTS)/streams.json

# Benchmark 8: cameras against a Triton server on 127.0.0.1 and in process ($(REPORTS)/triton.json).
bench-triton: engines triton
	$(PY) -m pipeline.cli bench triton --engines "$(ENGINES)/$(NAME)" --data "$(DATA)" --json $(REPORTS)/triton.json

# MSDNet's ImageNet configuration at 224x224 (random weights) through engines, profiler and camera app:
# per-stage latency in runs/imagenet224/reports/latency.md.
.PHONY: imagenet-size
imagenet-size: setup
	$(PY) -m pipeline.cli bench imagenet-size --out runs/imagenet224

flops: setup
	$(PY) -m pipeline.cli flops --model $(MODEL)

clean:
	rm -rf $(VENV) build *.egg-info
