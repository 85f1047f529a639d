"""Calibration on clips: the cut threshold below the cuts, reuse and prior within the tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.profiling import chain_exit_probs
from pipeline.apps.temporal_calibrate import REUSE_CUT_RATIO, calibrate, cut_threshold
from pipeline.temporal.change import ChangeMeter
from pipeline.temporal.simulate import ClipExits, replay
from pipeline.thresholds import to_scores
from tests.temporal.doubles import ColourChain
from tests.temporal.test_simulate import drifting_stream

THRESHOLDS = [0.99, 0.999, 1.0]
COSTS = np.array([1.0, 2.0, 3.0])


def clips():
    out = []
    for seed in (0, 1):
        frames, labels, cuts = drifting_stream(seed)
        out.append(ClipExits.from_probs(frames, chain_exit_probs(ColourChain(), frames), labels, cuts, "last",
                                        "confidence", 16))
    return out


def test_cut_threshold_sits_below_every_cut():
    c = clips()
    cut = cut_threshold(c)
    d = [ChangeMeter.distance(x.thumbs[i], x.thumbs[i - 1]) for x in c for i in x.cuts]
    assert 0 < cut < min(d)
    with pytest.raises(PipelineError, match="no cut"):
        cut_threshold([ClipExits(c[0].thumbs, c[0].probs, c[0].scores, c[0].labels, ())])


def test_calibrated_settings_save_work_within_the_tolerance():
    c = clips()
    settings, report = calibrate(c, THRESHOLDS, COSTS, tolerance=0.25, max_age_frames=5)
    assert settings.reuse_threshold is not None
    assert settings.reuse_threshold <= REUSE_CUT_RATIO * settings.cut_threshold + 1e-9  # weak cuts are not reused
    assert settings.max_age_frames == 5 and settings.smoothing in (0.0, 0.3, 0.5, 0.7)
    fbf, tmp = report["frame_by_frame"], report["temporal"]
    assert tmp["accuracy"] >= fbf["accuracy"] - 0.25 and tmp["mean_cost"] < fbf["mean_cost"] / 2
    assert report["frames"] == sum(len(x.labels) for x in c) and 0.5 < tmp["reuse_rate"] < 1
    again = [replay(x, settings, to_scores(THRESHOLDS, "confidence"), COSTS) for x in c]
    assert sum(int(r.ran.sum()) for r in again) == round((1 - tmp["reuse_rate"]) * report["frames"])


def test_zero_tolerance_never_loses_accuracy_and_negative_is_refused():
    c = clips()
    settings, report = calibrate(c, THRESHOLDS, COSTS, tolerance=0.0)
    assert report["temporal"]["accuracy"] >= report["frame_by_frame"]["accuracy"]
    with pytest.raises(PipelineError, match="--tolerance"):
        calibrate(c, THRESHOLDS, COSTS, tolerance=-1.0)
