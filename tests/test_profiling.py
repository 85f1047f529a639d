"""The profiling library: timings on a fake clock, statistics, curves, device facts on a fake sysfs,
reports; and, on a tiny model built once with ``pipeline.build``, the real ONNX Runtime chain and
the PyTorch baseline against each other.

``tiny_build`` is shared with the profiler's and the benchmarks' tests: the tiny model is built
once per test session (the tests that change it work on a copy).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pipeline.backends.base import StageChain
from pipeline.errors import PipelineError
from pipeline.profiling import (LatencyProfile, accuracy_per_exit, anytime_curve, budgeted_points, chain_exit_probs,
                                device_facts, format_markdown, jetson_facts, latency_stats, plot_report,
                                profile_chain, profile_chains, split_images)
from pipeline.thresholds import budgeted_curve, simulate, softmax, thresholds_from_json
from tests.test_cascade import FakeClock

CLASSES = [f"c{i}" for i in range(10)]  # the tiny model's 10 classes
PNG = b"\x89PNG\r\n\x1a\n"


# --- the tiny built model ----------------------------------------------------------------------------


@dataclass
class TinyBuild:
    folder: Path  # engines/<model>, with a manifest
    checkpoint: Path
    data: Path  # ImageFolder tree: train/ and test/
    cache: Path

    def copy(self, dest: Path) -> Path:
        """A private copy of the model folder, for tests that write to it."""
        out = dest / "engines" / self.folder.name
        shutil.copytree(self.folder, out)
        return out


def _write_images(root: Path, per_class: dict[str, int], seed: int = 0) -> None:
    import cv2

    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)  # (H, W, 3) BGR
                img[:4, :4] = 25 * c  # a class mark the random net may pick up a little
                cv2.imwrite(str(folder / f"{i}.png"), img)


def tiny_build(tmp_path_factory: pytest.TempPathFactory) -> TinyBuild:
    """The tiny_model config, random weights, built with pipeline.build for ONNX Runtime fp32/fp16/int8."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxsim")
    from pipeline import build
    from pipeline.checkpoint import save_checkpoint
    from pipeline.models import create_model
    from tests.conftest import TINY

    root = tmp_path_factory.getbasetemp() / "tiny-build"
    made = TinyBuild(root / "engines" / "msdnet_cifar", root / "tiny.pt", root / "data", root / "cache")
    if (made.folder / "manifest.json").is_file():
        return made
    _write_images(made.data, {"train": 5, "test": 3})  # 50 train (20 for validation), 30 test
    torch.manual_seed(0)
    model = create_model("msdnet_cifar", **TINY).eval()
    save_checkpoint(made.checkpoint, model, "msdnet_cifar", CLASSES, {"seed": 0, "size": 20, "source": "generated"})
    code = build.main(["--checkpoint", str(made.checkpoint), "--data", str(made.data), "--out", str(root / "engines"),
                       "--backend", "onnxruntime", "--calib-images", "8", "--cache-dir", str(made.cache),
                       "--calib-dir", str(root / "calib"), "--test-split"])
    assert code == 0 and (made.folder / "manifest.json").is_file()
    return made


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_build(tmp_path_factory)


# --- doubles -----------------------------------------------------------------------------------------


class TimedChain(StageChain):
    """Stage k takes ``stage_ms[k - 1]`` on the fake clock (set_frame takes ``frame_ms``); logits are scripted."""

    backend, precision = "double", "fp32"

    def __init__(self, stage_ms, clock, frame_ms=0.0, logits=None, events=None):
        self.stage_ms, self.clock, self.frame_ms = list(stage_ms), clock, frame_ms
        self.logits = logits  # (N, K, C) or None
        self.events = events  # device ms per stage for last_run_ms, or None
        self.frames, self.activations, self._last = 0, 0, None
        self.slowdown = lambda: 1.0  # factor on every stage time: the machine's speed drifting

    @property
    def num_stages(self) -> int:
        return len(self.stage_ms)

    def activate(self) -> None:
        self.activations += 1

    def set_frame(self, frame: np.ndarray) -> None:
        assert frame.shape[0] == 1 and frame.dtype == np.uint8
        self.clock.t += self.frame_ms / 1e3
        self.frames += 1

    def run(self, stage: int) -> np.ndarray:
        self.clock.t += self.stage_ms[stage - 1] * self.slowdown() / 1e3
        self._last = stage
        if self.logits is None:
            return np.zeros((1, 3), dtype=np.float32)
        return self.logits[self.frames - 1, stage - 1][None].copy()


class EventChain(TimedChain):
    def last_run_ms(self):
        return self.events[self._last - 1]


def frames(n=4, h=8, w=8):
    return np.random.default_rng(0).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


# --- latency -----------------------------------------------------------------------------------------


def test_latency_stats_of_known_samples():
    s = latency_stats(np.arange(1, 101, dtype=float))  # 1..100 ms
    assert s["mean_ms"] == pytest.approx(50.5)
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["max_ms"] == 100.0
    with pytest.raises(PipelineError, match="non-empty 1-D"):
        latency_stats(np.array([]))


def test_profile_chain_times_each_stage_and_skips_the_warmup():
    clock = FakeClock()
    chain = TimedChain([2.0, 1.0, 0.5], clock, frame_ms=0.25)
    prof = profile_chain(chain, frames(), runs=7, warmup=3, threads=1, clock=clock)
    assert chain.frames == 10 and chain.activations == 1
    assert prof.stage_ms.shape == (7, 3) and prof.runs == 7 and prof.clock == "perf_counter"
    np.testing.assert_allclose(prof.stage_ms, [[2.25, 1.0, 0.5]] * 7)  # stage 1 covers copying the frame in
    np.testing.assert_allclose(prof.cumulative_p50(), [2.25, 3.25, 3.75])
    assert prof.key == "double/fp32"
    j = prof.to_json()
    assert [s["p50_ms"] for s in j["stages"]] == pytest.approx([2.25, 1.0, 0.5])
    assert j["runs"] == 7 and j["warmup"] == 3


def test_interleaved_profiles_keep_their_ratio_when_the_machine_slows_down():
    """The machine runs 3x slower after the 10th timed run: taking turns in blocks of 5 runs, both chains
    see it alike."""
    clock = FakeClock()
    fast, slow = TimedChain([2.0, 1.0], clock), TimedChain([1.0, 0.5], clock)
    for chain in (fast, slow):
        chain.slowdown = lambda: 1.0 if fast.frames <= 12 else 3.0
    p_fast, p_slow = profile_chains([fast, slow], frames(), runs=20, warmup=2, clock=clock, block=5)
    assert fast.frames == slow.frames == 22 and fast.activations == slow.activations == 1
    assert (p_fast.key, p_fast.runs, p_slow.runs) == ("double/fp32", 20, 20)
    np.testing.assert_allclose(p_fast.stage_ms / p_slow.stage_ms, 2.0)
    # One after the other, the slowdown lands on the second chain alone.
    p_second = profile_chain(slow, frames(), runs=20, warmup=2, clock=clock)
    first_speed = (10 * 1.0 + 10 * 3.0) / 20
    np.testing.assert_allclose(p_fast.stage_ms.mean() / p_second.stage_ms.mean(), 2.0 * first_speed / 3.0)
    with pytest.raises(PipelineError, match="at least one chain"):
        profile_chains([], frames(), runs=1, warmup=0)
    with pytest.raises(PipelineError, match="block=0"):
        profile_chains([fast], frames(), runs=1, warmup=0, block=0)


def test_cumulative_percentiles_are_taken_per_run():
    # Stage times anti-correlated across runs: the sum of p50s differs from the p50 of the sums.
    prof = LatencyProfile("x/fp32", np.array([[1.0, 3.0], [3.0, 1.0], [2.0, 2.0]]), "perf_counter", 1, 0)
    assert prof.cumulative_p50() == pytest.approx([2.0, 4.0])
    assert prof.cumulative()[1]["max_ms"] == pytest.approx(4.0)


def test_cuda_event_times_are_recorded_beside_the_wall_times():
    """GPU stage times come from CUDA events; the wall times, which the deadline rule sees, stay the stage times."""
    clock = FakeClock()
    chain = EventChain([2.0, 1.0], clock, events=[0.7, 0.3])
    prof = profile_chain(chain, frames(), runs=4, warmup=1, clock=clock)
    assert prof.clock == "cuda-events"
    np.testing.assert_allclose(prof.stage_ms, [[2.0, 1.0]] * 4)
    np.testing.assert_allclose(prof.device_ms, [[0.7, 0.3]] * 4)
    assert [s["p50_ms"] for s in prof.to_json()["device_stages"]] == pytest.approx([0.7, 0.3])
    chain = EventChain([2.0, 1.0], clock, events=[None, None])  # no events after all: wall times only
    prof = profile_chain(chain, frames(), runs=4, warmup=1, clock=clock)
    assert prof.clock == "perf_counter" and prof.device_ms is None
    np.testing.assert_allclose(prof.stage_ms, [[2.0, 1.0]] * 4)
    assert "device_stages" not in prof.to_json()


def test_profile_rejects_bad_frames_and_counts():
    chain = TimedChain([1.0], FakeClock())
    with pytest.raises(PipelineError, match=r"expected frames of shape \(N, H, W, 3\) uint8"):
        profile_chain(chain, frames().astype(np.float32), runs=2, warmup=0)
    with pytest.raises(PipelineError, match="expected frames"):
        profile_chain(chain, frames()[:0], runs=2, warmup=0)
    with pytest.raises(PipelineError, match="at least 1 timed run"):
        profile_chain(chain, frames(), runs=0, warmup=0)


def test_chain_exit_probs_is_the_softmax_of_every_exit():
    logits = np.random.default_rng(1).normal(size=(4, 3, 5)).astype(np.float32)  # (N, K, C)
    chain = TimedChain([1.0, 1.0, 1.0], FakeClock(), logits=logits)
    probs = chain_exit_probs(chain, frames(4))
    assert probs.shape == (4, 3, 5) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, softmax(logits, axis=-1), rtol=1e-6)


# --- curves -----------------------------------------------------------------------------------------


def _synthetic(n=200, k=3, c=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=n)
    logits = rng.normal(size=(n, k, c)) + np.arange(1, k + 1)[None, :, None] * np.eye(c)[labels][:, None, :]
    return softmax(logits.astype(np.float32)), labels


def test_accuracy_and_anytime_curve():
    probs, labels = _synthetic()
    acc = accuracy_per_exit(probs, labels)
    assert acc == pytest.approx([100.0 * float((probs[:, k].argmax(-1) == labels).mean()) for k in range(3)])
    curve = anytime_curve(acc, [1.0, 2.0, 3.0])
    assert [p["exit"] for p in curve] == [1, 2, 3] and curve[2] == {"exit": 3, "latency_ms": 3.0, "accuracy": acc[2]}


def test_budgeted_points_apply_validation_thresholds_to_another_split():
    val, val_labels = _synthetic(seed=0)
    test, test_labels = _synthetic(seed=1)
    costs = [1.0, 2.0, 3.0]
    own = budgeted_points(val, val_labels, costs)
    curve = budgeted_curve(val, val_labels, costs)
    assert [p["accuracy"] for p in own] == [p.accuracy for p in curve]
    other = budgeted_points(val, val_labels, costs, test, test_labels)
    assert [p["thresholds"] for p in other] == [p["thresholds"] for p in own]  # never refitted on the test split
    for p in other:
        sim = simulate(test, test_labels, thresholds_from_json(p["thresholds"], "confidence"), costs)
        assert (p["accuracy"], p["cost_ms"]) == pytest.approx((sim.accuracy, sim.mean_cost))


# --- device facts ------------------------------------------------------------------------------------


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


# --- reports ----------------------------------------------------------------------------------------


def synthetic_report() -> dict:
    probs, labels = _synthetic()
    prof = LatencyProfile("onnxruntime/fp32", np.array([[1.0, 0.5, 0.25]] * 5), "perf_counter", 1, 2)
    costs = prof.cumulative_p50()
    acc = accuracy_per_exit(probs, labels)
    variant = {**prof.to_json(), "accuracy": acc, "answer_accuracy": acc, "anytime": anytime_curve(acc, costs),
               "budgeted": budgeted_points(probs, labels, costs),
               "default_policy": {"accuracy": 80.0, "cost_ms": 1.2, "exit_fractions": [0.5, 0.3, 0.2],
                                  "thresholds": []}}
    return {"model": "tiny", "split": "validation", "images": 200, "calibration_images": 200, "runs": 5, "warmup": 2,
            "threads": 1, "device": device_facts(), "notes": ["a note"],
            "variants": {"onnxruntime/fp32": dict(variant, aggregate="mean", answer_accuracy=[50.0, 60.0, 70.0]),
                         "pytorch-eager/fp32": dict(variant, default_policy=None)}}


def test_markdown_has_one_table_per_variant():
    md = format_markdown(synthetic_report())
    assert md.count("| stage | mean (ms) | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | cumulative p50 to exit (ms) "
                    "| exit's own accuracy (%) | cascade's answer at exit (%) |") == 2
    assert "## onnxruntime/fp32" in md and "## pytorch-eager/fp32" in md and "note: a note" in md
    acc = synthetic_report()["variants"]["onnxruntime/fp32"]["accuracy"]
    assert f"| 3 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 1.750 | {acc[2]:.2f} | 70.00 |" in md  # the mean's answer
    assert f"| 3 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 1.750 | {acc[2]:.2f} | {acc[2]:.2f} |" in md  # exit alone
    assert md.count("mean softmax of exits 1..k") == 1


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_report(synthetic_report(), tmp_path / "latency.png")
    assert path.read_bytes()[:8] == PNG


# --- on the tiny built model ---------------------------------------------------------------------------


def test_real_chain_profile_and_probs_match_the_build(built):
    from pipeline.backends import load_chain
    from pipeline.manifest import load_manifest

    manifest = load_manifest(built.folder)
    val_images, val_labels = split_images(manifest, str(built.data), "validation", built.cache)
    assert val_images.shape == (20, 32, 32, 3) and val_images.dtype == np.uint8
    test_images, _ = split_images(manifest, str(built.data), "test", built.cache, limit=7)
    assert len(test_images) == 7
    with load_chain(manifest, built.folder, "onnxruntime", "fp32") as chain:
        prof = profile_chain(chain, val_images, runs=20, warmup=5)
        probs = chain_exit_probs(chain, val_images)
    assert prof.stage_ms.shape == (20, 3) and np.all(prof.stage_ms > 0) and prof.key == "onnxruntime/fp32"
    assert np.all(np.diff(prof.cumulative_p50()) >= 0)
    assert probs.shape == (20, 3, 10)
    assert accuracy_per_exit(probs, val_labels) == pytest.approx(manifest.accuracy["validation"]["onnxruntime/fp32"],
                                                                 abs=1e-3)


def test_torch_baseline_matches_onnxruntime(built):
    from pipeline.backends import load_chain
    from pipeline.checkpoint import load_model
    from pipeline.manifest import load_manifest
    from pipeline.profiling import profile_torch, torch_exit_probs

    manifest = load_manifest(built.folder)
    images, _ = split_images(manifest, str(built.data), "validation", built.cache)
    model, _ = load_model(built.checkpoint)
    prof = profile_torch(model, images, runs=5, warmup=1, threads=1)
    assert prof.stage_ms.shape == (5, 3) and prof.key == "pytorch-eager/fp32" and np.all(prof.stage_ms > 0)
    with load_chain(manifest, built.folder, "onnxruntime", "fp32") as chain:
        ort = chain_exit_probs(chain, images[:6])
    np.testing.assert_allclose(torch_exit_probs(model, images[:6], batch=4), ort, atol=1e-4)


def test_split_images_errors(built, tmp_path):
    from pipeline.manifest import load_manifest

    manifest = load_manifest(built.folder)
    with pytest.raises(PipelineError, match="split must be one of validation, test"):
        split_images(manifest, str(built.data), "train", built.cache)
    manifest.model.pop("split", None)
    with pytest.raises(PipelineError, match="how the validation split was drawn"):
        split_images(manifest, str(built.data), "validation", built.cache)
    manifest.classes = ["x"] * 10
    with pytest.raises(PipelineError, match="differ from the model's"):
        split_images(manifest, str(built.data), "test", built.cache)
    assert json.loads((built.folder / "manifest.json").read_text())["model"]["split"]["size"] == 20  # untouched
