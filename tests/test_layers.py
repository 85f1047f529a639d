"""The package reads top-down: every import (lazy and type-only ones included) goes to a lower layer or stays in
its own subpackage, and the light layers import no torch, OpenCV or ONNX Runtime."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"

# Bottom to top: the subpackages and top-level modules of pipeline/ (the package's face, ``pipeline/__init__``,
# is "pipeline"). Architecture.md draws the same order.
LAYERS = ["errors", "names", "pipeline", "files", "stop", "metrics", "device", "thresholds", "manifest", "checkpoint",
          "data", "models", "backends", "runtime", "export", "training", "robustness", "temporal", "profiling",
          "build", "evaluate", "verify", "video", "apps", "serving", "benchmarks", "cli"]


def unit(module: str) -> str:
    """``pipeline.runtime.cascade`` -> ``runtime``; ``pipeline`` -> ``pipeline``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pipeline"


def imports() -> list[tuple[str, str, int]]:
    """(importing file, imported pipeline module, line) of every import in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "pipeline":  # from pipeline import x: a module of the package, or its face
                    found += [(str(rel), f"pipeline.{a.name}" if (PACKAGE / f"{a.name}.py").exists()
                               or (PACKAGE / a.name).is_dir() else "pipeline", node.lineno) for a in node.names]
                elif node.module.startswith("pipeline."):
                    found.append((str(rel), node.module, node.lineno))
            elif isinstance(node, ast.Import):
                found += [(str(rel), a.name, node.lineno) for a in node.names if a.name.startswith("pipeline.")]
    return found


def test_every_unit_of_the_package_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert sorted(units - set(LAYERS)) == [], "a new subpackage or module needs its place in LAYERS"


def test_no_import_goes_up_a_layer():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for path, module, line in imports():
        source = "pipeline" if path == "pipeline/__init__.py" else unit(path.removesuffix(".py").replace("/", "."))
        target = unit(module)
        if source != target and rank[target] > rank[source]:
            upward.append(f"{path}:{line} imports {module} ({source} is below {target})")
    assert upward == []


@pytest.mark.parametrize("module", ["pipeline.data", "pipeline.runtime", "pipeline.manifest", "pipeline.backends",
                                    "pipeline.temporal", "pipeline.cli"])
def test_light_layers_import_no_heavy_package(module):
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'cv2', 'onnxruntime', 'tensorrt') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing {module} loaded {out}"


def test_every_import_of_the_package_names_a_module_that_exists():
    """mypy ignores missing imports (torch, onnx and the rest are untyped), so a module moved without its callers
    would pass it: every ``pipeline.`` import must name a file or package of the tree."""
    missing = []
    for path, module, line in imports():
        parts = module.split(".")[1:]
        where = PACKAGE.joinpath(*parts) if parts else PACKAGE
        if not (where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()):
            # ``from pipeline.x import name``: module is pipeline.x itself, which must exist
            missing.append(f"{path}:{line} imports {module}")
    assert missing == []
