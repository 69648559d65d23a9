"""Calibration metrics shared by every task's evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from skysort.evaluation.calibration import calibration_metrics, plot_reliability


def test_calibration_metrics_on_a_hand_computed_example():
    truth = np.array([0, 1, 1, 0, -1])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.5, 0.5]])
    result = calibration_metrics(truth, probabilities, ["a", "b"])
    assert result["n"] == 4  # the unlabelled row is left out
    # Top-label confidences 0.9, 0.8, 0.6, 0.7 fall in four bins; correct, correct, wrong, correct.
    assert result["ece"] == pytest.approx((0.1 + 0.2 + 0.6 + 0.3) / 4)
    assert result["max_calibration_error"] is None  # no bin holds 30 objects
    assert result["brier"] == pytest.approx(np.mean([2 * 0.1**2, 2 * 0.2**2, 2 * 0.6**2, 2 * 0.3**2]))
    assert result["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.7])))
    top = result["reliability"]["top_label"]
    assert sum(top["n"]) == 4 and len(top["bin_lower"]) == result["n_bins"] == 15
    b = result["reliability"]["b"]
    k = int(np.flatnonzero(np.asarray(b["n"]) > 0)[-1])  # the bin of p_b = 0.8
    assert b["fraction"][k] == 1.0 and b["mean_probability"][k] == pytest.approx(0.8)
    assert calibration_metrics(np.array([-1]), np.array([[0.5, 0.5]]), ["a", "b"]) is None
    with pytest.raises(ValueError):
        calibration_metrics(truth, probabilities[:, :1], ["a", "b"])


def test_calibrated_probabilities_score_near_zero_and_overconfident_ones_do_not(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    truth = (rng.uniform(0, 1, p.size) < p).astype(int)  # the class occurs with exactly probability p
    calibrated = calibration_metrics(truth, np.stack([1 - p, p], axis=1), ["star", "qso"])
    assert calibrated["ece"] < 0.005 and calibrated["max_calibration_error"] < 0.02
    sharp = np.where(p > 0.5, 1 - (1 - p) ** 3 * 4, p**3 * 4)  # pushed towards 0 and 1
    overconfident = calibration_metrics(truth, np.stack([1 - sharp, sharp], axis=1), ["star", "qso"])
    assert overconfident["ece"] > 0.05 and overconfident["log_loss"] > calibrated["log_loss"]
    assert plot_reliability(overconfident, tmp_path / "reliability.png").stat().st_size > 0
