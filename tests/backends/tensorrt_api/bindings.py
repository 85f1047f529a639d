"""The real TensorRT Python bindings of each supported version, made importable on a machine without a GPU.

The package registry serves the bindings alone as small wheels; the native libraries they link
are replaced by the stand-ins of ``standin.c``, compiled with the machine's C compiler. Both are
kept in a cache folder outside the repository (``$ANYTIME_CACHE/tensorrt-api``, by default
``~/.cache/anytime-pipeline/tensorrt-api``), so only a first run downloads and compiles. The
pycuda source distribution is kept there too: pycuda builds only against CUDA's headers and
imports only with a driver, so its API is read from its wrapper source instead.

Each version is imported in its own process (``load``): two versions' pybind11 modules register the
same C++ types and cannot share one interpreter.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from pipeline.data import default_cache_dir

# version -> the registry's requirement for its bindings wheel (JetPack 6.0, JetPack 6.1/6.2, later x86 releases)
VERSIONS = {
    "8.6.1": "tensorrt-bindings==8.6.1",
    "10.3.0": "tensorrt-cu12-bindings==10.3.0",
    "10.13.3.9": "tensorrt-cu12-bindings==10.13.3.9",
    "11.4.0.106": "tensorrt-cu12-bindings==11.4.0.106",
}
PYCUDA = "pycuda==2026.1"
STANDIN = Path(__file__).with_name("standin.c")
TIMEOUT_S = 600


class Unavailable(Exception):
    """The bindings cannot be made importable here (no registry, no pip, no C compiler); the reason says which."""


def cache_root() -> Path:
    return default_cache_dir() / "tensorrt-api"


def libraries(major: int) -> list[str]:
    """The sonames a version's bindings link."""
    names = ["nvinfer", "nvinfer_plugin", "nvonnxparser"] + (["nvparsers"] if major < 10 else [])
    return [f"lib{n}.so.{major}" for n in names]


def _run(cmd: list[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{what}: {exc}") from None
    if done.returncode != 0:
        tail = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()][-1:]
        raise Unavailable(f"{what} failed: {' '.join(tail) or f'exit {done.returncode}'}")


def _publish(tmp: Path, final: Path) -> Path:
    """Rename a finished ``tmp`` folder into place; a concurrent run that got there first wins."""
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def install(version: str) -> Path:
    """The folder holding ``tensorrt_bindings`` of ``version`` for this Python, installed on first use."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    final = cache_root() / f"bindings-{version}-{tag}"
    if (final / "tensorrt_bindings" / "__init__.py").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary", ":all:", "--target",
          str(tmp), VERSIONS[version]], f"pip install {VERSIONS[version]}")
    if not (tmp / "tensorrt_bindings" / "__init__.py").is_file():
        raise Unavailable(f"{VERSIONS[version]} installed no tensorrt_bindings package")
    return _publish(tmp, final)


def compiler() -> str:
    found = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if found is None:
        raise Unavailable("no C compiler (cc, gcc or clang) on PATH to build the native library stand-ins")
    return found


def standins(major: int) -> list[Path]:
    """The stand-in libraries for a major version, compiled on first use (keyed by the source's hash)."""
    digest = hashlib.sha256(STANDIN.read_bytes()).hexdigest()[:12]
    final = cache_root() / f"standins-{major}-{digest}"
    paths = [final / name for name in libraries(major)]
    if all(p.is_file() for p in paths):
        return paths
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    cc = compiler()
    for name in libraries(major):
        _run([cc, "-shared", "-fPIC", f"-DTRT_MAJOR={major}", f"-Wl,-soname,{name}", "-o", str(tmp / name),
              str(STANDIN)], f"compiling the {name} stand-in")
    _publish(tmp, final)
    return paths


def prepare(version: str) -> dict[str, Any]:
    """What a process needs to import ``version``: the bindings' folder and the stand-ins to preload."""
    major = int(version.split(".")[0])
    return {"version": version, "site": str(install(version)), "libs": [str(p) for p in standins(major)]}


def load(site: str, libs: list[str]) -> Any:
    """Import the real bindings as ``tensorrt`` in this process (the stand-ins first, by their sonames)."""
    for lib in libs:
        ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    sys.path.insert(0, site)
    import tensorrt_bindings

    sys.modules["tensorrt"] = tensorrt_bindings
    return tensorrt_bindings


def pycuda_source() -> Path:
    """The unpacked pycuda source distribution (its ``src/wrapper`` and ``pycuda/driver.py``), fetched once."""
    final = cache_root() / PYCUDA.replace("==", "-")
    if (final / "src" / "wrapper" / "wrap_cudadrv.cpp").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", "pycuda", "-d", str(tmp),
          PYCUDA], f"pip download {PYCUDA}")
    archives = list(tmp.glob("pycuda-*.tar.gz"))
    if not archives:
        raise Unavailable(f"pip download {PYCUDA} gave no source archive")
    wanted = ("src/wrapper/wrap_cudadrv.cpp", "pycuda/driver.py")
    with tarfile.open(archives[0]) as tar:
        for member in tar.getmembers():
            rel = member.name.split("/", 1)[-1]
            if rel in wanted and member.isfile():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(tar.extractfile(member).read())
    archives[0].unlink()
    if not (tmp / wanted[0]).is_file():
        raise Unavailable(f"{archives[0].name} has no {wanted[0]}")
    return _publish(tmp, final)
