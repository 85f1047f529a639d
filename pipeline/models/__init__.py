"""A registry of multi-exit models: ``create_model(name, **overrides)`` and the configs that travel with weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.models.msdnet import MSDNet

# name -> function(**overrides) returning (config). Configs are plain dataclasses; torch is imported lazily.
_REGISTRY: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(**overrides) -> config`` under ``name``; a name registered twice is refused."""
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise PipelineError(f"model {name!r} is registered twice ({_REGISTRY[name].__qualname__} and "
                                f"{fn.__qualname__}); give the new one another name")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def is_factory(name: str) -> bool:
    """Whether ``name`` names a user's factory (``package.module:function``) rather than a registered model."""
    return ":" in name


def folder_name(name: str) -> str:
    """The engines folder of a model: its registered name, or a factory's module name (``mod`` of ``pkg.mod:fn``)."""
    if not is_factory(name):
        return name
    where = name.rpartition(":")[0]
    return where.removesuffix(".py").replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[-1] or "model"


_BOOLS = {"true": True, "false": False}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["n_blocks=3", "gr_factor=1,2", "bottleneck=false"]`` -> ``{"n_blocks": 3, "gr_factor": (1, 2),
    "bottleneck": False}``: whole numbers, decimals, true and false (any case), else the text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise PipelineError(f"model option {item!r} should look like key=value, e.g. n_blocks=3")
        parts = [p for p in value.split(",") if p]
        if not key or not parts:
            raise PipelineError(f"model option {item!r} should look like key=value, e.g. n_blocks=3")
        conv = [int(p) if p.lstrip("-").isdigit() else float(p) if p.replace(".", "", 1).isdigit()
                else _BOOLS.get(p.lower(), p) for p in parts]
        out[key] = tuple(conv) if "," in value else conv[0]
    return out


def model_config(name: str, **overrides: Any) -> Any:
    """The config of a registered model, with keyword overrides (e.g. ``n_blocks=3``), or of a factory's model."""
    if is_factory(name):
        from pipeline.models.factory import create_from_factory

        return create_from_factory(name, **overrides).cfg
    if name not in _REGISTRY:
        raise PipelineError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    try:
        return _REGISTRY[name](**overrides)
    except TypeError as exc:
        raise PipelineError(f"bad option for model {name!r}: {exc}") from None


def create_model(name: str, **overrides: Any) -> "MSDNet":
    """Build a registered model (an ``nn.Module`` with ``.stages``) from its name and overrides; a name
    ``package.module:function`` calls that factory (:mod:`pipeline.models.factory`)."""
    from pipeline.models.msdnet import MSDNet

    if is_factory(name):
        from pipeline.models.factory import create_from_factory

        return create_from_factory(name, **overrides)  # type: ignore[return-value]  # the same interface
    return MSDNet(model_config(name, **overrides))


def model_from_config(cfg_dict: dict[str, Any]) -> "MSDNet":
    from pipeline.models.msdnet import MSDNet, MSDNetConfig

    if "factory" in cfg_dict:
        from pipeline.models.factory import model_from_factory_config

        return model_from_factory_config(cfg_dict)  # type: ignore[return-value]  # the same interface
    return MSDNet(MSDNetConfig.from_dict(cfg_dict))


@register("msdnet_cifar")
def _msdnet_cifar(**kw: Any) -> Any:
    """The paper's CIFAR configuration: 3 scales, 16 channels, growth 6, 5 exits (step 2, base 4)."""
    from pipeline.models.msdnet import MSDNetConfig

    return MSDNetConfig(**kw)


@register("msdnet_imagenet")
def _msdnet_imagenet(**kw: Any) -> Any:
    """The paper's ImageNet configuration: 4 scales, 32 channels, growth 16, 5 exits (step 4, base 4), 224x224
    centre-cropped from 256, a bias on the stem's 7x7 conv as in the reference code."""
    from pipeline.models.msdnet import MSDNetConfig
    from pipeline.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig

    defaults: dict[str, Any] = dict(
        n_blocks=5, step=4, base=4, n_channels=32, growth_rate=16, gr_factor=(1, 2, 4, 4),
        bn_factor=(1, 2, 4, 4), num_classes=1000, stem="imagenet", stem_bias=True,
        preprocess=PreprocessConfig(224, 224, "BGR", IMAGENET_MEAN, IMAGENET_STD, resize_shorter=256),
    )
    return MSDNetConfig(**{**defaults, **kw})
