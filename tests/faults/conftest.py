"""Shared fixtures for the fault-injection cases: a fake built model, a clip with labels, the app run
in this process or in a child (for signals, file size limits and a user without write access),
and snapshots of a folder to show what a fault left on disk."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.video.camera_fixtures import clip, engines  # noqa: F401  (fixtures of the camera cases)
from tests.video.fakes import PLAN, FakeCascade, FakeClock  # noqa: F401  (PLAN: the fault cases import it from here)

ROOT = Path(__file__).resolve().parents[2]

# The app as a child process, with the test doubles: FAULT_MODE picks the source and the cascade.
#   clip: the real video file reader, a fake cascade (4x4 input); the first frames are slow
#   hang-open: a live source whose first open blocks (as OpenCV does for a stream that does not answer)
#   live: a live source double giving a frame every 10 ms
#   slow-load: the clip, behind a model that takes half a second to load
# FAULT_READY, when set, is a file created once the run reaches the point a test waits for.
CHILD = r"""
import os, sys, threading, time
sys.path.insert(0, os.environ["FAULT_ROOT"])
from apps.camera import main
from tests.video.fakes import FakeCascade, SourceDouble

mode, ready = os.environ["FAULT_MODE"], os.environ.get("FAULT_READY")

def mark():
    if ready:
        open(ready, "w").close()

class Slow(FakeCascade):
    def classify(self, frame, budget_ms=None):
        if len(self.calls) == 2:
            mark()
        if mode == "live" and len(self.calls) >= 2:
            time.sleep(0.01)
        return super().classify(frame, budget_ms)

def factory(folder, **kw):
    if mode == "slow-load":  # a model that takes half a second to load, in the main thread
        mark()
        time.sleep(0.5)
    return Slow(input_size=(4, 4))

def opener(spec, read_timeout_s=None):
    if mode == "hang-open":
        mark()
        threading.Event().wait(30)
        raise RuntimeError("the open should have been abandoned")
    if mode == "live":
        return SourceDouble(period_s=0.01)
    from pipeline.video.sources import open_capture
    return open_capture(spec)

sys.exit(main(sys.argv[1:], cascade_factory=factory, opener=opener))
"""


def run_app(argv, cascade=None, clock=None, **hooks):
    """The app in this process with a fake cascade: its exit code (SystemExit's, or main's return)."""
    from apps.camera import main

    clock = clock or FakeClock()
    cascade = cascade or FakeCascade(clock)
    try:
        return main([str(a) for a in argv], cascade_factory=lambda folder, **kw: cascade, clock=clock, **hooks)
    except SystemExit as exc:
        return exc.code


def one_error(err: str) -> str:
    """The single ``error:`` line of a run's stderr; fails on a traceback or on several errors."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256), to compare before and after a fault."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def log_lines(path: Path) -> list[dict]:
    """The log's records; fails unless every line is a whole JSON record ending in a newline."""
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the log ends in a partial line"
    return [json.loads(line) for line in text.splitlines()]


class Child:
    """The app in a child process (see CHILD); ``ready`` is the file it creates at the awaited point."""

    def __init__(self, argv, mode: str, cwd: Path, *, fsize: int | None = None, obey_modes: bool = False):
        self.ready = cwd / f"ready-{os.getpid()}-{time.monotonic_ns()}"
        env = dict(os.environ, FAULT_ROOT=str(ROOT), FAULT_MODE=mode, FAULT_READY=str(self.ready),
                   PYTHONDONTWRITEBYTECODE="1")

        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, *map(str, argv)], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                     preexec_fn=child_limits(fsize, obey_modes))

    def wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while not self.ready.exists():
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < end, "the child never got ready"
            time.sleep(0.01)

    def finish(self, timeout: float = 30.0) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def signal_and_time(self, sig: int) -> tuple[float, int, str, str]:
        """Send ``sig``; seconds until the child exited, its exit code, stdout and stderr."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=30)
        return time.monotonic() - t0, self.proc.returncode, out, err


def child_limits(fsize: int | None, obey_modes: bool):
    """What a child runs before exec: a file size limit of ``fsize`` bytes (a write past it fails with
    EFBIG, as on a full disk, instead of killing the process), and root's file mode overrides dropped."""

    def limits() -> None:
        if fsize is not None:
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if obey_modes:
            drop_permission_overrides()

    return limits


PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3


def drop_permission_overrides() -> None:
    """In a child before exec: give up root's right to ignore file modes, so a 0o444 file is read-only.

    Dropping the capabilities from the bounding set leaves them out of what the exec'd program
    gets. A process that is not root has none to drop and obeys file modes already.
    """
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


# ---- the build, the profiler and the manifest: a tiny built model, commands in child processes ----

# A build or the profiler as a child process; FAULT_MODE picks the point where it pauses (creating
# FAULT_READY first) so that a test can act while it is there:
#   calib-write: while the calibration cache is being written (its temporary file half-written)
#   mid-build: with the temporary build folder full of engines, before accuracy is measured
#   slow-swap: just before the finished build is renamed into place, for FAULT_PAUSE seconds
#   slow-profile: the profiler, before its first timed runs
#   none: no pause
COMMAND_CHILD = r"""
import os, sys, time
sys.path.insert(0, os.environ["FAULT_ROOT"])
mode, ready = os.environ["FAULT_MODE"], os.environ["FAULT_READY"]

def pause():  # in short sleeps, as real work runs: a signal that another thread (ONNX Runtime's) takes
    open(ready, "w").close()  # does not cut a sleep short, and Python handles it when the main thread wakes
    end = time.monotonic() + float(os.environ.get("FAULT_PAUSE", "30"))
    while time.monotonic() < end:
        time.sleep(0.01)

if mode == "calib-write":
    import pipeline.export.calibration as calibration
    real_write = calibration.atomic_write
    def slow_write(dest, write):
        def part(f):
            write(f)
            f.flush()
            pause()
        real_write(dest, part)
    calibration.atomic_write = slow_write
elif mode == "mid-build":
    import pipeline.build.accuracy as accuracy
    accuracy.measure_accuracy = lambda *a, **k: pause()
elif mode == "slow-swap":
    import pipeline.build.folder as folder
    real_swap = folder.swap_into_place
    def slow_swap(*a, **k):
        pause()
        real_swap(*a, **k)
    folder.swap_into_place = slow_swap
elif mode == "slow-profile":
    import pipeline.profiling as profiling
    real_profile = profiling.profile_chain
    def slow_profile(*a, **k):
        pause()
        return real_profile(*a, **k)
    profiling.profile_chain = slow_profile
if os.environ["FAULT_COMMAND"] == "build":
    from pipeline.build import main
else:
    sys.argv[0] = "apps/profile_latency.py"
    from apps.profile_latency import main
sys.exit(main(sys.argv[1:]))
"""


class CommandChild(Child):
    """``python -m pipeline.build`` (``command="build"``) or the profiler (``"profile"``) in a child process,
    pausing where ``mode`` says (see COMMAND_CHILD)."""

    def __init__(self, command: str, argv, mode: str, cwd: Path, *, pause_s: float = 30.0,
                 obey_modes: bool = False, fsize: int | None = None):
        self.ready = cwd / f"ready-{os.getpid()}-{time.monotonic_ns()}"
        env = dict(os.environ, FAULT_ROOT=str(ROOT), FAULT_MODE=mode, FAULT_READY=str(self.ready),
                   FAULT_COMMAND=command, FAULT_PAUSE=str(pause_s), PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen([sys.executable, "-c", COMMAND_CHILD, *map(str, argv)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                     preexec_fn=child_limits(fsize, obey_modes))


def mark_temporary(path: Path, pid: int) -> Path:
    """Mark ``path`` as a temporary that process ``pid`` wrote (as ``pipeline.files.atomic_write`` does)."""
    from pipeline.files import TEMP_MARK

    os.setxattr(path, TEMP_MARK, str(pid).encode())
    return path


def mark_build_folder(path: Path, pid: int) -> Path:
    """Mark ``path`` as the temporary folder of build ``pid`` (as ``temporary_folder`` does)."""
    from pipeline.build.folder import TEMP_MARKER

    (path / TEMP_MARKER).write_text(f"{pid}\n")
    return path


def dead_pid() -> int:
    """A process id that no process has now."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def temporaries(*folders: Path) -> list[str]:
    """Temporary files and folders (hidden ``.tmp`` / ``.old`` names) anywhere under ``folders``."""
    return sorted(str(p) for f in folders if f.exists() for p in f.rglob(".*")
                  if ".tmp" in p.name or ".old-" in p.name)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny model built once per session (tests.helpers.tiny_build); copy it before writing to it."""
    from tests.helpers import tiny_build

    return tiny_build(tmp_path_factory)


def build_argv(tiny, out: Path, calib: Path, *extra) -> list[str]:
    """A build of the tiny checkpoint into ``out`` (ONNX Runtime, 8 calibration images)."""
    return ["--checkpoint", tiny.checkpoint, "--data", tiny.data, "--out", out, "--backend", "onnxruntime",
            "--calib-images", "8", "--cache-dir", tiny.cache, "--calib-dir", calib, *extra]


def run_command(main, argv) -> int:
    """A CLI's ``main`` in this process: its exit code."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code or 0)
