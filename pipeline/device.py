"""Facts about the machine at hand: the CPU, package versions, on a Jetson its power mode and clocks.

The build records what engines are tied to (``host_facts`` plus each backend's own facts); the
profiler records what latencies were measured on (``device_facts``), with warnings for what makes
them less trustworthy (unlocked clocks). Standard library only.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(threads: int, option: str = "--threads", minimum: int = 1) -> int:
    """Refuse a thread count below ``minimum`` (0 where it means the library's default), or far past the
    usable cores (more than twice them): such a run makes no progress while its threads fight for the
    cores. One per core is fastest."""
    from pipeline.errors import PipelineError

    if threads < minimum:
        raise PipelineError(f"{option} must be at least {minimum}, got {threads}")
    cores = usable_cores()
    if threads > 2 * cores:
        raise PipelineError(f"{option} {threads} is more than twice the {cores} CPU cores this process may use; "
                            f"pass at most {2 * cores} (one per core, {cores}, is usually fastest)")
    return threads


_GPU_DEVFREQ = re.compile(r"gpu|gv11b|ga10b|gp10b|gm20b|gk20a|gb10b", re.IGNORECASE)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_facts() -> dict[str, Any]:
    """The CPU an engine optimised for this machine (an ONNX Runtime graph) is tied to."""
    return {"cpu": cpu_name(), "machine": platform.machine(), "cpu_count": os.cpu_count()}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip().strip("\x00")
    except OSError:
        return None


def _freq_lock(folder: Path, low: str, high: str) -> dict[str, Any] | None:
    lo, hi = _read(folder / low), _read(folder / high)
    if lo is None or hi is None:
        return None
    return {"min": lo, "max": hi, "locked": lo == hi}


def _nvpmodel(run: Callable[..., Any]) -> dict[str, Any]:
    """``nvpmodel -q``: "NV Power Mode: MAXN" then the mode number."""
    try:
        proc = run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": f"nvpmodel -q failed: {exc}"}
    text = f"{proc.stdout or ''}\n{proc.stderr or ''}"
    name = re.search(r"Power Mode:\s*(\S.*)", text)
    number = re.findall(r"^\s*(\d+)\s*$", proc.stdout or "", re.MULTILINE)
    if not name:
        return {"error": f"nvpmodel -q gave no power mode (exit {proc.returncode}): {text.strip()[:200]}"}
    return {"power_mode": name.group(1).strip(), "power_mode_id": int(number[-1]) if number else None}


def _clock_locks(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per CPU and per GPU devfreq device: {"min", "max", "locked"}."""
    cpus = {}
    for cpufreq in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq")):
        lock = _freq_lock(cpufreq, "scaling_min_freq", "scaling_max_freq")
        if lock is not None:
            cpus[cpufreq.parent.name] = lock
    gpus = {}
    for dev in sorted((root / "sys/class/devfreq").glob("*")):
        if _GPU_DEVFREQ.search(dev.name):
            lock = _freq_lock(dev, "min_freq", "max_freq")
            if lock is not None:
                gpus[dev.name] = lock
    return cpus, gpus


def jetson_facts(root: str | Path = "/", run: Callable[..., Any] = subprocess.run) -> dict[str, Any] | None:
    """On a Jetson (``/etc/nv_tegra_release``): L4T release, board, power mode and clock locks; else None.

    Clocks are locked when each CPU's scaling_min_freq equals its scaling_max_freq and the GPU
    devfreq's min_freq equals its max_freq (what ``jetson_clocks`` sets). ``warnings`` says when not.
    """
    root = Path(root)
    release = _read(root / "etc/nv_tegra_release")
    if release is None:
        return None
    facts: dict[str, Any] = {"l4t": release.splitlines()[0] if release else "",
                             "board": _read(root / "proc/device-tree/model")}
    facts.update(_nvpmodel(run))
    cpus, gpus = _clock_locks(root)
    facts["cpu_clocks"], facts["gpu_clocks"] = cpus, gpus
    warnings = []
    unlocked = [f"{c} ({v['min']} < {v['max']} kHz)" for c, v in cpus.items() if not v["locked"]]
    if not cpus:
        warnings.append("could not read the CPU clock limits (cpufreq); cannot tell whether clocks are locked")
    elif unlocked:
        warnings.append(f"CPU clocks are not locked: {', '.join(unlocked[:4])}{' ...' if len(unlocked) > 4 else ''}; "
                        "latencies will follow the governor: run `sudo jetson_clocks` before profiling")
    if not gpus:
        warnings.append("could not find the GPU's devfreq limits; cannot tell whether its clock is locked")
    for name, v in gpus.items():
        if not v["locked"]:
            warnings.append(f"GPU clock {name} is not locked ({v['min']} < {v['max']} Hz): run `sudo jetson_clocks` "
                            "before profiling")
    if "error" in facts:
        warnings.append(facts["error"])
    facts["warnings"] = warnings
    return facts
