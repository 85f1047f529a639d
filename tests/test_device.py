"""Device facts: the CPU, versions, and on a (fake) Jetson its power mode and clock locks."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.device import jetson_facts
from pipeline.backends.facts import device_facts


def fake_jetson(root: Path, cpu=("1000", "2000"), gpu=("300000000", "1300500000")) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_text("NVIDIA Jetson Orin Nano Developer Kit\x00")
    for i in range(2):
        d = root / f"sys/devices/system/cpu/cpu{i}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_min_freq").write_text(cpu[0] + "\n")
        (d / "scaling_max_freq").write_text(cpu[1] + "\n")
    g = root / "sys/class/devfreq/17000000.ga10b"
    g.mkdir(parents=True)
    (g / "min_freq").write_text(gpu[0])
    (g / "max_freq").write_text(gpu[1])
    (root / "sys/class/devfreq/15340000.vic").mkdir()  # not the GPU: ignored
    return root


def nvpmodel_ok(cmd, **kw):
    assert cmd == ["nvpmodel", "-q"]
    return subprocess.CompletedProcess(cmd, 0, stdout="NV Power Mode: 15W\n0\n", stderr="")


def test_jetson_facts_warn_when_clocks_are_not_locked(tmp_path):
    facts = jetson_facts(fake_jetson(tmp_path), run=nvpmodel_ok)
    assert facts["power_mode"] == "15W" and facts["power_mode_id"] == 0
    assert facts["board"] == "NVIDIA Jetson Orin Nano Developer Kit" and "R36" in facts["l4t"]
    assert facts["cpu_clocks"]["cpu0"] == {"min": "1000", "max": "2000", "locked": False}
    assert list(facts["gpu_clocks"]) == ["17000000.ga10b"]
    text = " ".join(facts["warnings"])
    assert "CPU clocks are not locked" in text and "GPU clock 17000000.ga10b is not locked" in text
    assert "jetson_clocks" in text


def test_jetson_facts_with_locked_clocks_have_no_warning(tmp_path):
    root = fake_jetson(tmp_path, cpu=("2000", "2000"), gpu=("1300500000", "1300500000"))
    facts = jetson_facts(root, run=nvpmodel_ok)
    assert facts["warnings"] == []
    assert all(v["locked"] for v in [*facts["cpu_clocks"].values(), *facts["gpu_clocks"].values()])


def test_jetson_facts_without_nvpmodel_and_off_jetson(tmp_path):
    def missing(cmd, **kw):
        raise FileNotFoundError("nvpmodel")

    facts = jetson_facts(fake_jetson(tmp_path / "j", cpu=("1", "1"), gpu=("1", "1")), run=missing)
    assert "nvpmodel -q failed" in facts["error"] and any("nvpmodel" in w for w in facts["warnings"])
    assert jetson_facts(tmp_path / "not-a-jetson") is None


def test_device_facts_name_the_cpu_threads_and_versions(tmp_path):
    facts = device_facts(["onnxruntime"], threads=3, root=tmp_path)
    assert facts["threads"] == 3 and facts["cpu"] and facts["onnxruntime"]
    assert "jetson" not in facts and facts["warnings"] == []
    jetson = device_facts(["onnxruntime"], root=fake_jetson(tmp_path / "j"), run=nvpmodel_ok)
    assert jetson["jetson"]["power_mode"] == "15W" and len(jetson["warnings"]) == 2
