"""Where the bundled ``tritonserver`` lives, and the environment its Python backend needs.

The ``nvidia-pytriton`` wheel carries a real ``tritonserver`` with the Python backend only, its
shared libraries, and one Python-backend stub per Python version. The stub must match the
interpreter whose packages (numpy, onnxruntime) the models import, so a server home is laid out
per launch: ``backends/python/`` holding the backend library, its utilities and this
interpreter's stub (links, not copies). Trap: the stub links ``libpython3.X.so`` by name and can
load the system's build of that version instead of this interpreter's, and then model loading
fails with ``'_thread.RLock' object has no attribute '_recursion_count'``; ``LD_LIBRARY_PATH``
starting with this interpreter's library folder makes it load the right one. ``PYTHONPATH``
carries this interpreter's site-packages (the models put it first on ``sys.path``: the embedded
interpreter ignores the variable itself).

Second trap: this server's Python backend was built against numpy 1.x, whose array layout differs
from numpy 2's; a tensor made from a numpy 2 array crosses it with zero bytes ("input byte size
mismatch ... got 0"). Where this interpreter has numpy 2, the server's Python path starts with a
folder holding numpy 1.x alone (``.venv/triton-site``, made once by ``anytime triton setup``;
onnxruntime runs on either).

    anytime triton setup     # pip install --target .venv/triton-site --no-deps "numpy<2"
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError, cli_main

SITE_ENV = "ANYTIME_TRITON_SITE"  # a folder with numpy 1.x for the server's Python backend
NUMPY_FOR_SERVER = "numpy<2"

INSTALL_HINT = ("install it with `.venv/bin/pip install nvidia-pytriton` (the `triton` extra; on a Jetson or a GPU "
                "server use JetPack's Triton or NVIDIA's container: docs/triton.md)")


@dataclass(frozen=True)
class ServerInstall:
    """The files of one ``tritonserver`` installation."""

    binary: Path  # bin/tritonserver
    backends: Path  # the folder holding python/libtriton_python.so
    libs: Path  # shared libraries the binary and the stub load
    stub: Path  # triton_python_backend_stub for this interpreter's version


def find_server() -> ServerInstall:
    """The server bundled in the ``nvidia-pytriton`` wheel, for this interpreter; a PipelineError if absent."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise PipelineError(f"the Triton Inference Server is not installed here: {INSTALL_HINT}")
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = ServerInstall(binary=root / "bin" / "tritonserver", backends=root / "backends",
                          libs=root.parent.parent / "nvidia_pytriton.libs",
                          stub=root / "python_backend_stubs" / version / "triton_python_backend_stub")
    if not found.binary.is_file() or not (found.backends / "python" / "libtriton_python.so").is_file():
        raise PipelineError(f"the nvidia-pytriton package in {root.parent} has no tritonserver binary or Python "
                            f"backend; reinstall it: {INSTALL_HINT}")
    if not found.stub.is_file():
        raise PipelineError(f"the bundled Triton has no Python-backend stub for Python {version} (in "
                            f"{found.stub.parent.parent}); run it with a Python it has a stub for")
    return found


def server_available() -> str | None:
    """Why the bundled server cannot run here, or None where it can."""
    try:
        find_server()
    except PipelineError as exc:
        return str(exc)
    return None


def lay_out_home(install: ServerInstall, home: Path) -> Path:
    """``home/backends/python/``: the backend library, its utilities and this interpreter's stub, linked.

    Returns the backends folder to pass as ``--backend-directory``.
    """
    python = home / "backends" / "python"
    python.mkdir(parents=True, exist_ok=True)
    for src in (install.backends / "python" / "libtriton_python.so",
                install.backends / "python" / "triton_python_backend_utils.py", install.stub):
        link = python / src.name
        if not link.exists():
            link.symlink_to(src)
    return home / "backends"


def interpreter_lib_dir() -> Path | None:
    """The folder holding this interpreter's ``libpython3.X.so``, where it has one (a shared build)."""
    libdir = sysconfig.get_config_var("LIBDIR")
    name = sysconfig.get_config_var("LDLIBRARY") or ""
    if libdir and name.endswith(".so") and (Path(libdir) / name).exists():
        return Path(libdir)
    return None


def default_site() -> Path:
    return Path(os.environ.get(SITE_ENV) or Path(sys.prefix) / "triton-site")


def _has_numpy1(folder: Path) -> bool:
    return any(folder.glob("numpy-1.*.dist-info"))


def server_site() -> Path | None:
    """The numpy 1.x folder the server's Python path starts with; None where this interpreter's numpy is 1.x."""
    if not server_site_needed():
        return None
    import numpy

    site = default_site()
    if not _has_numpy1(site):
        raise PipelineError(f"the bundled Triton's Python backend needs numpy 1.x (this Python has numpy "
                            f"{numpy.__version__}) and {site} holds none; run `anytime triton setup` once (it runs "
                            f"`pip install --target {site} --no-deps '{NUMPY_FOR_SERVER}'`)")
    return site


def prepare_site(site: Path | None = None) -> Path:
    """Install numpy 1.x alone into ``site`` (default: ``.venv/triton-site``) for the server; idempotent."""
    site = site or default_site()
    if _has_numpy1(site):
        return site
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), "--no-deps",
                           NUMPY_FOR_SERVER], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not _has_numpy1(site):
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(f"could not install {NUMPY_FOR_SERVER} into {site} for the server ({last}); install it "
                            f"with `{sys.executable} -m pip install --target {site} --no-deps '{NUMPY_FOR_SERVER}'`")
    return site


def server_env(install: ServerInstall, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: this one, with the library path and the package path the stub needs."""
    env = dict(os.environ)
    first = [str(p) for p in (interpreter_lib_dir(), install.libs) if p is not None]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(first + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])
    site = server_site()
    paths = dict.fromkeys(([str(site)] if site else []) + [sysconfig.get_paths()[k] for k in ("purelib", "platlib")])
    env["PYTHONPATH"] = os.pathsep.join(list(paths) + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra or {})
    return env


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="anytime triton setup",
                                 description="prepare this Python to run the bundled Triton server: numpy 1.x for "
                                 f"its Python backend, in a folder of its own (${SITE_ENV}, default .venv/triton-site)")
    ap.parse_args(argv)
    install = find_server()
    site = prepare_site() if server_site_needed() else None
    print(f"Triton server: {install.binary}; " + (f"numpy 1.x for its Python backend in {site}" if site else
                                                  "this Python's numpy is 1.x: nothing to add"))
    return 0


def server_site_needed() -> bool:
    import numpy

    return int(numpy.__version__.split(".")[0]) >= 2


if __name__ == "__main__":
    raise SystemExit(main())
