"""How far a classifier's probabilities can be taken at their word: calibration metrics and
the reliability diagram, shared by every task's evaluation.

A probability is *calibrated* when, among the objects given p(class) = 0.8, 80% belong to the
class. Survey users cut catalogues on these probabilities, so an evaluation reports:

- ``ece``: the expected calibration error of the top label (Guo et al. 2017, "On Calibration
  of Modern Neural Networks"): objects are binned by the probability of their predicted class
  (``n_bins`` equal-width bins on [0, 1]); ECE is the object-weighted mean of
  |fraction correct - mean probability| over the bins. ``max_calibration_error`` is the
  largest such gap over bins holding at least :data:`MIN_BIN_OBJECTS` objects.
- ``brier``: the multi-class Brier score, mean over objects of sum over classes of
  (p - [true class])^2 (0 is perfect; 2 is the worst).
- ``log_loss``: mean negative log probability of the true class (natural log).
- ``reliability``: per class, in the same bins of p(class), the number of objects, their mean
  p(class) and the fraction that truly are of the class; and the same for the top label.

The per-bin counts are why the bins are computed here rather than with
:func:`sklearn.calibration.calibration_curve`, which drops empty bins without saying which.
Scores refer to the class mix of the evaluated set; a set with another mix, or a ``--prior``,
moves them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

#: Equal-width probability bins of the reliability curves and the ECE.
N_BINS = 15

#: Bins with fewer objects are left out of ``max_calibration_error`` (their gaps are noise).
MIN_BIN_OBJECTS = 30

#: Bins with fewer objects are not drawn in the reliability diagram (their counts still are).
MIN_PLOTTED_OBJECTS = 10


def _binned(probability: np.ndarray, outcome: np.ndarray, n_bins: int) -> dict[str, list]:
    """Per-bin count, mean probability and outcome fraction (None in empty bins)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(probability, edges[1:-1]), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    sum_p = np.bincount(index, weights=probability, minlength=n_bins)
    sum_o = np.bincount(index, weights=outcome.astype(float), minlength=n_bins)
    filled = counts > 0
    mean_p = np.where(filled, sum_p / np.maximum(counts, 1), np.nan)
    fraction = np.where(filled, sum_o / np.maximum(counts, 1), np.nan)
    return {
        "bin_lower": edges[:-1].round(6).tolist(),
        "bin_upper": edges[1:].round(6).tolist(),
        "n": counts.astype(int).tolist(),
        "mean_probability": [None if not f else float(v) for f, v in zip(filled, mean_p)],
        "fraction": [None if not f else float(v) for f, v in zip(filled, fraction)],
    }


def calibration_metrics(truth: np.ndarray, probabilities: np.ndarray, classes: Sequence[str], *,
                        n_bins: int = N_BINS) -> dict[str, Any] | None:
    """Calibration of class probabilities against known classes (see the module docstring).

    Parameters
    ----------
    truth : ndarray (N,) of int
        True class index into ``classes``; rows with -1 (unknown) are left out.
    probabilities : ndarray (N, C)
        Predicted probabilities, rows summing to 1, columns in the order of ``classes``.
    classes : sequence of str
        Class names.
    n_bins : int
        Equal-width probability bins.

    Returns
    -------
    dict or None
        ``n``, ``n_bins``, ``ece``, ``max_calibration_error``, ``brier``, ``log_loss`` and
        ``reliability`` (``top_label`` and one entry per class, each with ``bin_lower``,
        ``bin_upper``, ``n``, ``mean_probability``, ``fraction``); None without labelled rows.
    """
    truth = np.asarray(truth, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(classes) or len(probabilities) != len(truth):
        raise ValueError(f"probabilities of shape {probabilities.shape} do not match {len(truth)} labels "
                         f"and {len(classes)} classes")
    known = truth >= 0
    truth, probabilities = truth[known], probabilities[known]
    if not len(truth):
        return None
    onehot = np.eye(len(classes))[truth]
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    top = _binned(confidence, correct, n_bins)
    gaps = [abs(f - p) for f, p in zip(top["fraction"], top["mean_probability"]) if f is not None]
    weights = [n for n in top["n"] if n > 0]
    big_gaps = [abs(f - p) for f, p, n in zip(top["fraction"], top["mean_probability"], top["n"])
                if f is not None and n >= MIN_BIN_OBJECTS]
    p_true = np.clip(probabilities[np.arange(len(truth)), truth], 1e-15, 1.0)
    reliability: dict[str, Any] = {"top_label": top}
    for i, name in enumerate(classes):
        reliability[name] = _binned(probabilities[:, i], truth == i, n_bins)
    return {
        "n": int(len(truth)),
        "n_bins": int(n_bins),
        "ece": float(np.average(gaps, weights=weights)),
        "max_calibration_error": float(max(big_gaps)) if big_gaps else None,
        "brier": float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))),
        "log_loss": float(np.mean(-np.log(p_true))),
        "reliability": reliability,
    }


def plot_reliability(calibration: Mapping[str, Any], path: str | os.PathLike, *, title: str | None = None,
                     colours: Mapping[str, str] | None = None) -> Path:
    """Reliability diagram: per class (and the top label), the fraction of objects truly of
    the class against their mean probability, bin by bin (bins of at least
    :data:`MIN_PLOTTED_OBJECTS`, with binomial 1-sigma bars), and the counts below; the
    diagonal is perfect calibration."""
    from .plots import _save, plt

    reliability = calibration["reliability"]
    fig, (ax, counts_ax) = plt.subplots(2, 1, figsize=(4.8, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":")
    centres = (np.asarray(reliability["top_label"]["bin_lower"]) + np.asarray(reliability["top_label"]["bin_upper"])) / 2
    for name, curve in reliability.items():
        shown = [k for k, n in enumerate(curve["n"]) if n >= MIN_PLOTTED_OBJECTS]
        label = "top label (fraction correct)" if name == "top_label" else name
        colour = "black" if name == "top_label" else (colours or {}).get(name)
        fraction = np.array([curve["fraction"][k] for k in shown], dtype=float)
        error = np.sqrt(fraction * (1 - fraction) / np.maximum([curve["n"][k] for k in shown], 1))
        ax.errorbar([curve["mean_probability"][k] for k in shown], fraction, yerr=error, marker="o", ms=3, capsize=0,
                    lw=1.2 if name != "top_label" else 1.6, color=colour, label=label)
        counts_ax.step(centres, np.maximum(curve["n"], 0.5), where="mid", color=colour, lw=1)
    ax.set_ylabel("fraction of the class")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title or f"ECE {calibration['ece']:.4f}, Brier {calibration['brier']:.4f}", fontsize=10)
    counts_ax.set_yscale("log")
    counts_ax.set_xlabel("predicted probability")
    counts_ax.set_ylabel("objects")
    return _save(fig, Path(path))
