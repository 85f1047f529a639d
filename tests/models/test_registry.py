"""The model registry: names, overrides, and a name registered twice refused."""

from __future__ import annotations

import pytest

from pipeline.errors import PipelineError
from pipeline.models import list_models, model_config, register


def test_known_models_and_their_errors():
    assert {"msdnet_cifar", "msdnet_imagenet"} <= set(list_models())
    assert model_config("msdnet_cifar", n_blocks=3).n_blocks == 3
    with pytest.raises(PipelineError, match="unknown model 'resnet'"):
        model_config("resnet")
    with pytest.raises(PipelineError, match="bad option for model 'msdnet_cifar'"):
        model_config("msdnet_cifar", depth=3)


def test_a_name_registered_twice_is_refused():
    with pytest.raises(PipelineError, match="model 'msdnet_cifar' is registered twice"):
        register("msdnet_cifar")(lambda **kw: None)
    assert "msdnet_cifar" in list_models()
