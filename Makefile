# Every target installs what it needs first: a fresh clone needs no other step.
PYTHON_BOOT ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
# CIFAR-10 for development: an ImageFolder archive, or leave empty to download the official one.
DATA        ?= $(if $(wildcard ../shared/data/cifar10-jpg.tar.gz),../shared/data/cifar10-jpg.tar.gz,)
MODEL       ?= msdnet_cifar
CHECKPOINT  ?= models/msdnet_cifar10.pt
EPOCHS      ?= 60
TRAIN_ARGS  ?= --bf16 --distill 0.5 --threads 2
SPLIT       ?= validation

.PHONY: setup test train flops evaluate clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[export,plot,test]'
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest

train: setup
	$(PY) -m pipeline.train --model $(MODEL) --data "$(DATA)" --epochs $(EPOCHS) \
	    --out $(CHECKPOINT) --resume $(TRAIN_ARGS)

evaluate: setup
	$(PY) -m pipeline.evaluate --checkpoint $(CHECKPOINT) --data "$(DATA)" --split $(SPLIT)

flops: setup
	$(PY) -m pipeline.models.flops --model $(MODEL)

clean:
	rm -rf $(VENV) build *.egg-info
