"""The tensor layout of the reference MSDNet implementation (MSDNet-PyTorch) against this package's MSDNet.

Both build the same modules in the same order, under other names: the reference keeps ``blocks``
and ``classifier`` lists side by side, this package one ``stages`` list of (block, classifier)
pairs. :func:`our_key` renames a reference tensor by the module it belongs to, so the mapping
follows the network's structure and every shape can be checked one to one. When a checkpoint
does not fit, :func:`inferred_options` reads the configuration its shapes imply, to say which
option explains the difference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

Shape = tuple[int, ...]

# Reference module path -> this package's, by module kind. ``P`` is a tensor's own name (weight, bias,
# running_mean, ...). Groups: block or exit index, layer index, scale, position inside the sequence.
_P = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(a + r"\." + _P + "$"), b) for a, b in (
    # the stem: a conv-BN-ReLU per scale (``net``), or on ImageNet a plain sequence with a max-pool
    (r"blocks\.(\d+)\.(\d+)\.layers\.(\d+)\.net\.(\d+)", r"stages.\1.block.\2.layers.\3.\4"),
    (r"blocks\.(\d+)\.(\d+)\.layers\.(\d+)\.(\d+)", r"stages.\1.block.\2.layers.\3.\4"),
    # a dense layer: per scale, the strided conv from the finer scale and the conv at the same scale
    (r"blocks\.(\d+)\.(\d+)\.layers\.(\d+)\.conv_down\.net\.(\d+)", r"stages.\1.block.\2.units.\3.down.\4"),
    (r"blocks\.(\d+)\.(\d+)\.layers\.(\d+)\.conv_normal\.net\.(\d+)", r"stages.\1.block.\2.units.\3.normal.\4"),
    # a transition: a 1x1 conv-BN-ReLU per kept scale
    (r"blocks\.(\d+)\.(\d+)\.m\.(\d+)\.net\.(\d+)", r"stages.\1.block.\2.convs.\3.\4"),
    # an exit head: two strided conv-BN-ReLUs, an average pool, a linear layer
    (r"classifier\.(\d+)\.m\.(\d+)\.net\.(\d+)", r"stages.\1.classifier.features.\2.\3"),
    (r"classifier\.(\d+)\.linear", r"stages.\1.classifier.linear"),
))
DATA_PARALLEL_PREFIX = "module."  # what torch.nn.DataParallel adds to every name


def strip_prefix(names: Sequence[str]) -> tuple[list[str], bool]:
    """The names without DataParallel's ``module.`` prefix (all carry it or none); and whether they did."""
    prefixed = bool(names) and all(n.startswith(DATA_PARALLEL_PREFIX) for n in names)
    return ([n[len(DATA_PARALLEL_PREFIX):] for n in names] if prefixed else list(names)), prefixed


def our_key(reference_key: str) -> str | None:
    """This package's name of a reference tensor (without the ``module.`` prefix); None if no rule fits."""
    for pattern, target in _RULES:
        match = pattern.fullmatch(reference_key)
        if match:
            return match.expand(target + r"." + match.group(match.re.groups))
    return None


def _widths(shapes: Mapping[str, Shape]) -> list[int]:
    """Output channels of the stem's conv at each scale."""
    out = []
    for s in range(16):
        shape = shapes.get(f"blocks.0.0.layers.{s}.net.0.weight") or shapes.get(f"blocks.0.0.layers.{s}.0.weight")
        if shape is None:
            break
        out.append(shape[0])
    return out


def inferred_options(shapes: Mapping[str, Shape]) -> dict[str, Any]:
    """The configuration options (this package's names) that a reference state dict's shapes imply.

    Only what the shapes fix is returned: ``bn_factor`` and ``reduction`` hide behind ``min`` and
    ``floor`` and are left out.
    """
    opts: dict[str, Any] = {}
    exits = sorted({int(m.group(1)) for k in shapes for m in [re.match(r"classifier\.(\d+)\.", k)] if m})
    if exits:
        opts["n_blocks"] = len(exits)
        linear = shapes.get(f"classifier.{exits[0]}.linear.weight")
        if linear:
            opts["num_classes"] = linear[0]
    if "blocks.0.0.layers.0.0.weight" in shapes:
        opts["stem"] = "imagenet"
        opts["stem_bias"] = "blocks.0.0.layers.0.0.bias" in shapes
    elif "blocks.0.0.layers.0.net.0.weight" in shapes:
        opts["stem"] = "cifar"
        opts["stem_bias"] = "blocks.0.0.layers.0.net.0.bias" in shapes
    widths = _widths(shapes)
    if widths:
        opts["n_channels"] = widths[0]
        opts["gr_factor"] = tuple(w // widths[0] for w in widths)
    layers: dict[int, set[int]] = {}
    for k in shapes:
        m = re.match(r"blocks\.(\d+)\.(\d+)\.layers\.\d+\.conv_", k)
        if m:
            layers.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    counts = [len(layers[b]) for b in sorted(layers)]
    if counts:
        opts["base"] = counts[0]
        if len(counts) > 1:
            if all(c == counts[1] for c in counts[1:]):
                opts["stepmode"], opts["step"] = "even", counts[1]
            else:
                opts["stepmode"], opts["step"] = "lin_grow", counts[1] - 1
    first = "blocks.0.1.layers.0.conv_normal.net"
    if f"{first}.0.weight" in shapes and widths:
        opts["bottleneck"] = f"{first}.3.weight" in shapes
        out = shapes[f"{first}.{3 if opts['bottleneck'] else 0}.weight"][0]
        opts["growth_rate"] = out // opts["gr_factor"][0]  # the first layer grows the finest scale
    return opts


def differing_options(inferred: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """``name=value (the configuration has other)`` for each inferred option the configuration sets otherwise."""
    out = []
    for name, value in inferred.items():
        have = config.get(name)
        have = tuple(have) if isinstance(have, list) else have
        if have != value:
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            out.append(f"{name}={shown} (the configuration has {have!r})")
    return out
