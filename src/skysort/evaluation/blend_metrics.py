"""Metrics, reports and plots for blend identification (isolated vs blended stamps).

Definitions
-----------
Truth comes from a blend stamp set's table (:mod:`skysort.simulate.blends`): ``blended``
(bool; or ``label`` equal to ``"blended"`` / ``"isolated"``), ``separation_px`` (distance of
the companion from the central galaxy in pixels, NaN for isolated stamps) and optionally
``noise_sigma`` (counts).

*Positive* means *blended*. With ``TP`` blended stamps predicted blended, ``FN`` blended
predicted isolated, ``FP`` isolated predicted blended and ``TN`` isolated predicted isolated:

``accuracy``
    ``(TP + TN) / n`` over every stamp.
``completeness`` (recall, true-positive rate)
    ``TP / (TP + FN)``: fraction of blends found.
``purity`` (precision)
    ``TP / (TP + FP)``.
``false_positive_rate``
    ``FP / (FP + TN)``: fraction of isolated stamps called blended.
``accuracy_near``, ``accuracy_far``
    Fraction of *blended* stamps with separation ``< 10 px`` (near) or ``>= 10 px`` (far) that
    are predicted blended, i.e. the completeness in that separation class. Isolated stamps have
    no separation and are **not** included; this is the quantity plotted against separation in
    BlendHunter's figures (its near / far numbers are over blended stamps of the class).
``accuracy_near_with_isolated``, ``accuracy_far_with_isolated``
    Accuracy over the near (or far) blends *together with every isolated stamp*: a
    well-defined two-class accuracy for each separation class, which also penalises false
    positives. It depends on the class balance of the set.
``by_separation``
    Completeness of blended stamps in 1-px bins of separation ``[k, k + 1)`` px, with counts
    and binomial standard errors.
``by_noise_sigma``
    The headline metrics per distinct noise level, when the truth has a ``noise_sigma``
    column or one is given.
``by_companion_snr``
    Completeness of blended stamps in bins of the companion's signal-to-noise ratio
    (:func:`companion_snr`), when the truth has ``flux_companion`` and ``noise_sigma`` and
    the PSF is given: it tells faint companions lost in the noise from blends the model
    misreads.

With probabilities (of being blended), the ROC curve and its area (scikit-learn) and purity /
completeness on a grid of thresholds are added. A stamp is called blended when its probability
is strictly above the threshold, the rule of ``skysort predict``.

Everything returned is JSON-serialisable (lists, floats, ints, ``None`` for undefined values).
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._io import atomic_path
from ..errors import InputError
from ..provenance import provenance_record
from .calibration import calibration_metrics, plot_reliability

#: Separation (pixels) below which a blend is "near", as in BlendHunter.
NEAR_PX = 10.0

#: Width of the separation bins of :func:`accuracy_by_separation`, pixels.
SEPARATION_BIN_PX = 1.0

#: Thresholds at which purity and completeness are tabulated.
THRESHOLD_GRID = np.round(np.linspace(0.0, 1.0, 101), 4)

#: Most points kept of an ROC curve in the JSON output (the AUC uses every point).
_MAX_CURVE_POINTS = 400

CLASS_NAMES = ("isolated", "blended")

#: Bin edges of :func:`accuracy_by_companion_snr` (signal-to-noise ratio).
SNR_EDGES = (0.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, math.inf)


def blended_truth(values: Any, where: str | os.PathLike) -> np.ndarray:
    """A ``blended`` truth column as booleans, refusing anything but True/False or 0/1.

    Raises
    ------
    InputError
        Values other than booleans or the numbers 0 and 1 (text, NaN, -1, 2, ...), which
        ``astype(bool)`` would silently count as blended.
    """
    array = np.asarray(values)
    if array.dtype.kind == "b":
        return array.astype(bool)
    if array.dtype.kind in "iuf":
        with np.errstate(invalid="ignore"):
            good = (array == 0) | (array == 1)
        if good.all():
            return array.astype(bool)
        bad = np.unique(array[~good])[:3]
        raise InputError(where, f"column 'blended' must hold 0/1 or True/False; found {', '.join(map(str, bad))}")
    raise InputError(where, f"column 'blended' must hold 0/1 or True/False, not {array.dtype} values")


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------


def _column(truth: Any, name: str) -> np.ndarray | None:
    names = truth.colnames if hasattr(truth, "colnames") else list(truth.keys())
    if name not in names:
        return None
    values = truth[name]
    if isinstance(values, np.ma.MaskedArray):
        if values.dtype.kind == "f":
            return np.ma.filled(values, np.nan)
        return np.asarray(values.data)
    return np.asarray(values)


def truth_blended(truth: Any) -> np.ndarray:
    """The true class of each stamp as a bool array (True = blended).

    Parameters
    ----------
    truth : astropy.table.Table or mapping of str to array
        With a ``blended`` column (bool or 0/1; stamp sets store it as uint8) or, failing that,
        a ``label`` column of ``"blended"`` / ``"isolated"``.
    """
    blended = _column(truth, "blended")
    if blended is not None:
        return np.asarray(blended).astype(bool)
    labels = _column(truth, "label")
    if labels is None:
        raise KeyError("truth needs a 'blended' or a 'label' column")
    labels = np.char.lower(np.asarray(labels).astype(str))
    unknown = set(np.unique(labels)) - set(CLASS_NAMES)
    if unknown:
        raise ValueError(f"labels must be 'blended' or 'isolated', found {sorted(unknown)}")
    return labels == "blended"


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num) / float(den)


def _binomial_error(p: float | None, n: int) -> float | None:
    return None if p is None or n == 0 else math.sqrt(p * (1.0 - p) / n)


def _confusion(true: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    return {
        "tp": int(np.count_nonzero(true & pred)),
        "fn": int(np.count_nonzero(true & ~pred)),
        "fp": int(np.count_nonzero(~true & pred)),
        "tn": int(np.count_nonzero(~true & ~pred)),
    }


def _headline(true: np.ndarray, pred: np.ndarray, separation: np.ndarray, near_px: float) -> dict[str, Any]:
    """Counts and rates of one group of stamps (the whole set or one noise level)."""
    c = _confusion(true, pred)
    n = len(true)
    near = true & (separation < near_px)
    # NaN separations of blends (should not happen) fall in neither class rather than in "far".
    far = true & (separation >= near_px)
    isolated = ~true
    out: dict[str, Any] = {
        "n": n,
        "n_blended": int(np.count_nonzero(true)),
        "n_isolated": int(np.count_nonzero(isolated)),
        "n_near": int(np.count_nonzero(near)),
        "n_far": int(np.count_nonzero(far)),
        "accuracy": _ratio(c["tp"] + c["tn"], n),
        "accuracy_near": _ratio(np.count_nonzero(pred[near]), np.count_nonzero(near)),
        "accuracy_far": _ratio(np.count_nonzero(pred[far]), np.count_nonzero(far)),
        "accuracy_near_with_isolated": _ratio(
            np.count_nonzero(pred[near]) + np.count_nonzero(~pred[isolated]),
            np.count_nonzero(near) + np.count_nonzero(isolated)),
        "accuracy_far_with_isolated": _ratio(
            np.count_nonzero(pred[far]) + np.count_nonzero(~pred[isolated]),
            np.count_nonzero(far) + np.count_nonzero(isolated)),
        "completeness": _ratio(c["tp"], c["tp"] + c["fn"]),
        "purity": _ratio(c["tp"], c["tp"] + c["fp"]),
        "false_positive_rate": _ratio(c["fp"], c["fp"] + c["tn"]),
    }
    p, r = out["purity"], out["completeness"]
    out["f1"] = None if p is None or r is None or p + r == 0 else 2 * p * r / (p + r)
    out["confusion"] = c
    return out


def accuracy_by_separation(blended: np.ndarray, predicted: np.ndarray, separation_px: np.ndarray,
                           bin_px: float = SEPARATION_BIN_PX, max_px: float | None = None) -> dict[str, Any]:
    """Completeness of blended stamps in bins of companion separation.

    Parameters
    ----------
    blended, predicted : array of bool
        True and predicted class per stamp (only blended stamps are binned).
    separation_px : array of float
        Companion separation, pixels (NaN for isolated stamps).
    bin_px : float
        Bin width, pixels; bins are ``[k * bin_px, (k + 1) * bin_px)`` from 0.
    max_px : float, optional
        Upper end of the last bin, pixels; by default the largest separation rounded up.

    Returns
    -------
    dict
        ``edges_px`` (n_bins + 1), ``centres_px``, ``n`` (blends per bin), ``n_correct``,
        ``accuracy`` (fraction predicted blended; ``None`` in empty bins) and ``accuracy_err``
        (binomial standard error).
    """
    blended = np.asarray(blended, bool)
    predicted = np.asarray(predicted, bool)
    separation = np.asarray(separation_px, float)
    chosen = blended & np.isfinite(separation)
    sep = separation[chosen]
    hits = predicted[chosen]
    top = max_px if max_px is not None else (float(np.max(sep)) if sep.size else bin_px)
    n_bins = max(1, int(math.ceil(top / bin_px - 1e-9)))
    # A separation exactly at the top edge would otherwise fall outside the last bin.
    if sep.size and sep.max() >= n_bins * bin_px:
        n_bins += 1
    edges = np.arange(n_bins + 1) * bin_px
    index = np.clip(np.floor(sep / bin_px).astype(int), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    correct = np.bincount(index, weights=hits.astype(float), minlength=n_bins).astype(int)
    accuracy = [_ratio(k, n) for k, n in zip(correct, counts)]
    return {
        "edges_px": edges.tolist(),
        "centres_px": (0.5 * (edges[:-1] + edges[1:])).tolist(),
        "n": counts.tolist(),
        "n_correct": correct.tolist(),
        "accuracy": accuracy,
        "accuracy_err": [_binomial_error(a, int(n)) for a, n in zip(accuracy, counts)],
    }


def psf_fwhm_px(meta) -> float | None:
    """PSF FWHM [pixels] in the first band of a stamp set's metadata (``StampMeta``), None
    where it is not recorded."""
    fwhm = meta.psf_fwhm.get(meta.bands[0], float("nan")) if meta.bands else float("nan")
    if not np.isfinite(fwhm) or not meta.pixel_scale:
        return None
    return float(fwhm) / float(meta.pixel_scale)


def companion_snr(flux: np.ndarray, noise_sigma: np.ndarray, psf_fwhm_px: float) -> np.ndarray:
    """Signal-to-noise ratio of a companion of total ``flux`` [counts] on white noise of
    ``noise_sigma`` [counts per pixel] were it a point source detected with its PSF as the
    matched filter: ``flux / (noise_sigma * sqrt(4 pi) * s)``, ``s`` the PSF's Gaussian sigma
    [px] (``psf_fwhm_px / 2.3548``). It is the most any detection can reach: an extended
    galaxy of the same flux has a lower one. NaN where the flux or noise is unknown."""
    flux = np.asarray(flux, float)
    sigma = np.asarray(noise_sigma, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return flux / (sigma * math.sqrt(4.0 * math.pi) * (psf_fwhm_px / 2.3548))


def accuracy_by_companion_snr(blended: np.ndarray, predicted: np.ndarray, snr: np.ndarray,
                              edges: tuple[float, ...] = SNR_EDGES) -> dict[str, Any]:
    """Completeness of blended stamps in bins ``[edges[k], edges[k + 1])`` of companion S/N
    (:func:`companion_snr`); ``edges`` as lists (the last may be ``None`` for infinity),
    ``n``, ``n_correct``, ``accuracy`` (``None`` in empty bins) and ``accuracy_err``."""
    blended = np.asarray(blended, bool)
    snr = np.asarray(snr, float)
    chosen = blended & np.isfinite(snr)
    index = np.clip(np.searchsorted(np.asarray(edges), snr[chosen], side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1)
    correct = np.bincount(index, weights=np.asarray(predicted, bool)[chosen].astype(float), minlength=len(edges) - 1).astype(int)
    accuracy = [_ratio(k, n) for k, n in zip(correct, counts)]
    return {"edges": [None if math.isinf(e) else float(e) for e in edges], "n": counts.tolist(), "n_correct": correct.tolist(),
            "accuracy": accuracy, "accuracy_err": [_binomial_error(a, int(n)) for a, n in zip(accuracy, counts)]}


def _thin(index_count: int, limit: int) -> np.ndarray:
    if index_count <= limit:
        return np.arange(index_count)
    return np.unique(np.round(np.linspace(0, index_count - 1, limit)).astype(int))


def _probability_metrics(true: np.ndarray, probability: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    out: dict[str, Any] = {}
    both = 0 < np.count_nonzero(true) < len(true)
    if both:
        fpr, tpr, thresholds = roc_curve(true, probability)
        keep = _thin(len(fpr), _MAX_CURVE_POINTS)
        # roc_curve's first threshold is +inf (nothing called blended); JSON has no infinity.
        out["roc"] = {"false_positive_rate": fpr[keep].tolist(), "true_positive_rate": tpr[keep].tolist(),
                      "threshold": [None if not np.isfinite(t) else float(t) for t in thresholds[keep]]}
        out["auc"] = float(roc_auc_score(true, probability))
        out["average_precision"] = float(average_precision_score(true, probability))
    else:
        out["roc"] = None
        out["auc"] = None
        out["average_precision"] = None
    purity, completeness, fpr_grid = [], [], []
    n_pos, n_neg = np.count_nonzero(true), np.count_nonzero(~true)
    for t in THRESHOLD_GRID:
        # The same rule as the headline decision, so that the row of the decision threshold
        # repeats the headline purity and completeness.
        pred = probability > t
        tp = np.count_nonzero(pred & true)
        fp = np.count_nonzero(pred & ~true)
        purity.append(_ratio(tp, tp + fp))
        completeness.append(_ratio(tp, n_pos))
        fpr_grid.append(_ratio(fp, n_neg))
    out["purity_completeness"] = {"threshold": THRESHOLD_GRID.tolist(), "purity": purity,
                                  "completeness": completeness, "false_positive_rate": fpr_grid}
    out["calibration"] = calibration_metrics(true.astype(np.int64), np.stack([1 - probability, probability], axis=1),
                                             ["isolated", "blended"])
    return out


def blend_metrics(truth: Any, probability: np.ndarray | None = None, predicted: np.ndarray | None = None,
                  threshold: float = 0.5, noise_sigma: float | np.ndarray | None = None,
                  near_px: float = NEAR_PX, psf_fwhm_px: float | None = None) -> dict[str, Any]:
    """Blend-identification metrics of one set of predictions against the truth.

    Parameters
    ----------
    truth : astropy.table.Table or mapping of str to array
        Per stamp: ``blended`` (or ``label``), ``separation_px`` (pixels, NaN for isolated
        stamps; needed for near / far and the separation bins) and optionally ``noise_sigma``
        (counts).
    probability : array of float, optional
        Predicted probability of being blended, in [0, 1]; enables ROC, AUC and purity /
        completeness against threshold.
    predicted : array of bool, optional
        Predicted class (True = blended). If omitted, ``probability > threshold``.
    threshold : float
        A stamp is called blended when its probability is strictly above this and
        ``predicted`` is not given (also recorded in the output).
    noise_sigma : float or array of float, optional
        Noise standard deviation per stamp (counts) overriding the truth's ``noise_sigma``
        column, for the breakdown by noise level.
    near_px : float
        Separation (pixels) below which a blend is near.
    psf_fwhm_px : float, optional
        PSF FWHM [pixels]; with the truth's ``flux_companion`` (counts) and the noise, gives
        ``by_companion_snr`` (:func:`accuracy_by_companion_snr`).

    Returns
    -------
    dict
        The headline metrics of the module docstring (``n``, ``accuracy``, ``accuracy_near``,
        ``accuracy_far``, their ``_with_isolated`` variants, ``completeness``, ``purity``,
        ``false_positive_rate``, ``f1``), ``confusion`` (``tp``, ``fn``, ``fp``, ``tn``),
        ``confusion_matrix`` (rows true isolated / blended, columns predicted isolated /
        blended), ``by_separation``, ``by_noise_sigma`` and ``by_companion_snr`` (or ``None``) and, with
        probabilities, ``roc``, ``auc``, ``average_precision``, ``purity_completeness`` and
        ``calibration`` (:func:`~skysort.evaluation.calibration.calibration_metrics`).

    Raises
    ------
    ValueError
        If lengths differ, nothing is predicted, or probabilities fall outside [0, 1].
    """
    true = truth_blended(truth)
    n = len(true)
    if probability is not None:
        probability = np.asarray(probability, float).reshape(-1)
        if len(probability) != n:
            raise ValueError(f"{len(probability)} probabilities for {n} stamps")
        if not np.all(np.isfinite(probability)) or probability.min(initial=0) < 0 or probability.max(initial=0) > 1:
            raise ValueError("probabilities must be finite and within [0, 1]")
    if predicted is None:
        if probability is None:
            raise ValueError("give predicted classes, probabilities, or both")
        # Strictly above, as ``predict`` decides (ClassDecision): a stamp scored here must carry
        # the class written to its predictions.
        pred = probability > threshold
    else:
        pred = np.asarray(predicted).reshape(-1).astype(bool)
        if len(pred) != n:
            raise ValueError(f"{len(pred)} predictions for {n} stamps")
    separation = _column(truth, "separation_px")
    separation = np.full(n, np.nan) if separation is None else np.asarray(separation, float)

    out = _headline(true, pred, separation, near_px)
    c = out["confusion"]
    out["confusion_matrix"] = {"labels": list(CLASS_NAMES), "rows": "true", "columns": "predicted",
                               "matrix": [[c["tn"], c["fp"]], [c["fn"], c["tp"]]]}
    out["threshold"] = float(threshold) if predicted is None else None
    out["near_px"] = float(near_px)
    out["by_separation"] = accuracy_by_separation(true, pred, separation)

    sigma = _column(truth, "noise_sigma") if noise_sigma is None else np.broadcast_to(np.asarray(noise_sigma, float), (n,))
    if sigma is not None:
        sigma = np.asarray(sigma, float)
        # Float32 storage makes equal levels differ in the last digits; group on rounded values.
        levels = np.round(sigma, 4)
        groups = []
        for level in np.unique(levels[np.isfinite(levels)]):
            chosen = levels == level
            group = _headline(true[chosen], pred[chosen], separation[chosen], near_px)
            group.pop("confusion")
            groups.append({"noise_sigma": float(level), **group})
        out["by_noise_sigma"] = groups
    else:
        out["by_noise_sigma"] = None
    flux = _column(truth, "flux_companion")
    out["by_companion_snr"] = None
    if sigma is not None and flux is not None and psf_fwhm_px:
        out["by_companion_snr"] = accuracy_by_companion_snr(true, pred, companion_snr(np.asarray(flux, float), sigma, psf_fwhm_px))

    if probability is not None:
        out.update(_probability_metrics(true, probability))
    return out


# --------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars / arrays as Python objects and non-finite floats as None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_metrics_json(metrics: Mapping[str, Any], path: str | os.PathLike, *, command: str | None = None) -> Path:
    """Write metrics as JSON atomically, with a provenance record.

    Parameters
    ----------
    metrics : mapping
        From :func:`blend_metrics` (or any JSON-like mapping; numpy values are converted and
        NaN / infinities become ``null``, so the file is strict JSON).
    path : path-like
        Output file.
    command : str, optional
        Command line to record (default: this process's).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    document = {"provenance": provenance_record(command), **_jsonable(dict(metrics))}
    text = json.dumps(document, indent=1, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


def source_provenance(model_file: str | os.PathLike, model_meta: Mapping[str, Any],
                      data_seed: int | None = None) -> dict[str, Any]:
    """What identifies the model and data an evaluation scored, for its ``metrics.json``.

    A model name (``sgq-kids``) or a path names a file that a later release or a retraining
    replaces; the checksum, creation time and training seed tell which one was scored, and the
    data's seed which simulated set.

    Parameters
    ----------
    model_file : path-like
        The model file read (a shipped name resolved to its file).
    model_meta : mapping
        Its metadata (:func:`skysort.models.checkpoint.load_model_file`).
    data_seed : int, optional
        Random seed the evaluated set was made with (``StampMeta.seed``; None for real data).

    Returns
    -------
    dict
        ``model_file``, ``model_sha256``, ``model_created``, ``model_training_seed`` (of the
        last training or fine-tuning, None if not recorded) and ``data_seed``.
    """
    from ..inference.manifest import file_sha256

    path = Path(model_file)
    training = model_meta.get("fine_tuning") or model_meta.get("training") or {}
    return {"model_file": str(path.resolve()), "model_sha256": file_sha256(path), "model_created": model_meta.get("created"),
            "model_training_seed": training.get("seed") if isinstance(training, Mapping) else None,
            "data_seed": None if data_seed is None else int(data_seed)}


def read_metrics_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a metrics file written by :func:`write_metrics_json` (provenance included)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------
# BlendHunter's published numbers
# --------------------------------------------------------------------------------------


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: object ``.npy`` files are pickles, and a pickle
    from outside must not be able to run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a reference file")
        return super().find_class(module, name)


def _load_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(fh)
        if not dtype.hasobject:
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
        return _ArrayOnlyUnpickler(io.BytesIO(fh.read())).load()


def load_blendhunter_reference(directory: str | os.PathLike) -> dict[str, Any]:
    """BlendHunter's published result arrays (Farrens et al., arXiv 2110.08180) as a dict.

    Reads the files of the paper's public code (``results/``), saved here with a ``results_``
    prefix: ``results_sigmas.npy``, ``results_acc_results.npy``, ``results_dist_results.npy``
    and ``results_cosmos_results_acc_results.npy``. Object arrays are unpickled with only numpy
    array classes allowed.

    Parameters
    ----------
    directory : path-like
        Folder holding those files; missing files leave their entries out.

    Returns
    -------
    dict
        ``noise_sigma`` : the 6 noise standard deviations (counts) of the parametric test sets;

        ``parametric`` : ``{"blendhunter": {"accuracy_mean", "accuracy_std"}, "sep": {...}}``,
        accuracy over all test stamps per noise level (mean and scatter over 5 noise
        realisations; rows 0-3 of ``acc_results``, as the paper's notebooks read them);

        ``by_separation`` : ``separation_px`` (the 60 values the paper plots on the x axis, the
        mean distance of each bin, pixels) and, per method, a list per noise level of the
        accuracy of blended stamps in each bin;

        ``realistic`` : on the COSMOS (real-galaxy) set at CFIS noise, ``blendhunter`` accuracy
        per noise level of the training set (same ``noise_sigma``) and ``sep`` (one value).
        These are the stored numbers as they are; the stored BlendHunter values (about 0.16 to
        0.20) disagree with the paper's text and are reported without interpretation.

        ``files`` : the files read.
    """
    directory = Path(directory)
    out: dict[str, Any] = {"source": "BlendHunter (Farrens et al. 2022, arXiv 2110.08180), public results files",
                           "files": []}

    def load(name: str) -> np.ndarray | None:
        path = directory / name
        if not path.exists():
            return None
        out["files"].append(str(path))
        return _load_npy(path)

    sigmas = load("results_sigmas.npy")
    if sigmas is not None:
        out["noise_sigma"] = np.asarray(sigmas, float).tolist()
    acc = load("results_acc_results.npy")
    if acc is not None:
        acc = np.asarray(acc, float)
        out["parametric"] = {
            "blendhunter": {"accuracy_mean": acc[0].tolist(), "accuracy_std": acc[2].tolist()},
            "sep": {"accuracy_mean": acc[1].tolist(), "accuracy_std": acc[3].tolist()},
        }
    dist = load("results_dist_results.npy")
    if dist is not None:
        out["by_separation"] = {
            "separation_px": np.asarray(dist[0], float).tolist(),
            "blendhunter": np.asarray(dist[1], float).tolist(),
            "sep": np.asarray(dist[2], float).tolist(),
        }
    cosmos = load("results_cosmos_results_acc_results.npy")
    if cosmos is not None:
        out["realistic"] = {
            "blendhunter": np.asarray(cosmos[0], float).reshape(-1).tolist(),
            "sep": float(np.asarray(cosmos[1], float).reshape(-1)[0]),
        }
    return out


# --------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------


def reference_completeness(reference: Mapping[str, Any], separation_px: np.ndarray, noise_sigma: float) -> dict[str, float]:
    """The published BlendHunter (and SExtractor) completeness of blends, re-weighted to the
    separations of another sample: each separation takes the value of the nearest bin of the
    published curve (:func:`load_blendhunter_reference`, ``by_separation``), linearly
    interpolated in noise between the published levels (clipped to them). It compares a model
    with the paper on one distribution of separations, e.g. that of a test set's near blends.

    Parameters
    ----------
    reference : dict
        From :func:`load_blendhunter_reference`.
    separation_px : array of float
        Companion separations [pixels] of the blends to weight by.
    noise_sigma : float
        Noise level [counts] of the sample.

    Returns
    -------
    dict
        ``blendhunter`` and ``sep``: mean completeness over the given separations.
    """
    curves = reference["by_separation"]
    centres = np.asarray(curves["separation_px"], float)
    levels = np.asarray(reference["noise_sigma"], float)
    separation = np.asarray(separation_px, float)
    separation = separation[np.isfinite(separation)]
    if not len(separation):
        return {"blendhunter": float("nan"), "sep": float("nan")}
    nearest = np.abs(separation[:, None] - centres[None, :]).argmin(axis=1)
    out = {}
    for name in ("blendhunter", "sep"):
        table = np.asarray(curves[name], float)
        at_sigma = np.array([np.interp(noise_sigma, levels, table[:, k]) for k in range(table.shape[1])])
        out[name] = float(np.mean(at_sigma[nearest]))
    return out


def _separation_curve(result: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(centres, accuracy, error or None) from a metrics dict, a ``by_separation`` dict or a pair."""
    if isinstance(result, Mapping):
        if "by_separation" in result:
            result = result["by_separation"]
        x = result.get("centres_px", result.get("separation_px"))
        y = result["accuracy"]
        err = result.get("accuracy_err")
    else:
        x, y = result[0], result[1]
        err = result[2] if len(result) > 2 else None

    def floats(values):
        return np.array([np.nan if v is None else v for v in values], float)

    return floats(x), floats(y), None if err is None else floats(err)


def plot_accuracy_vs_separation(results: Mapping[str, Any], path: str | os.PathLike, *, title: str | None = None,
                                near_px: float = NEAR_PX) -> Path:
    """Completeness of blends against companion separation, one line per method (PNG).

    Like BlendHunter's figures 3 and 5: SEP and one or more models overlaid.

    Parameters
    ----------
    results : mapping of str to result
        Method name to a :func:`blend_metrics` dict, its ``by_separation`` entry, or a pair
        ``(separation_px, accuracy)`` (optionally with a third item, the errors), e.g. the
        paper's curves from :func:`load_blendhunter_reference`.
    path : path-like
        Output PNG, written atomically.
    title : str, optional
        Figure title.
    near_px : float
        Near-blend limit, pixels, drawn as a dotted line.
    """
    from .plots import _save, plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, result in results.items():
        x, y, err = _separation_curve(result)
        line, = ax.plot(x, y, marker=".", lw=1.2, label=name)
        if err is not None and np.isfinite(err).any():
            ax.fill_between(x, y - err, y + err, color=line.get_color(), alpha=0.2, lw=0)
    ax.axvline(near_px, color="grey", ls=":", lw=1)
    ax.axhline(1.0, color="k", ls="--", lw=0.8, alpha=0.3)
    ax.set_xlabel("separation of the two galaxies [pixels]")
    ax.set_ylabel("fraction of blends identified")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(left=0)
    ax.legend(loc="lower right", fontsize=9)
    if title:
        ax.set_title(title)
    return _save(fig, Path(path))


def plot_confusion_matrix(metrics: Mapping[str, Any], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Confusion matrix (counts and fraction of each true class) of a :func:`blend_metrics` dict (PNG)."""
    from .plots import _save, plt

    matrix = np.asarray(metrics["confusion_matrix"]["matrix"], float)
    rows = matrix.sum(axis=1, keepdims=True)
    fraction = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.4, 3.8))
    ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{int(matrix[i, j])}\n{fraction[i, j]:.1%}", ha="center", va="center",
                    color="white" if fraction[i, j] > 0.6 else "black", fontsize=10)
    ax.set_xticks([0, 1], CLASS_NAMES)
    ax.set_yticks([0, 1], CLASS_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = metrics.get("accuracy")
    ax.set_title(title or (f"accuracy {acc:.1%}" if acc is not None else "confusion matrix"), fontsize=10)
    return _save(fig, Path(path))


def plot_roc(results: Mapping[str, Mapping[str, Any]], path: str | os.PathLike, *,
             points: Mapping[str, Mapping[str, Any]] | None = None, title: str | None = None) -> Path:
    """ROC curves of methods with probabilities, and optional single operating points (PNG).

    Parameters
    ----------
    results : mapping of str to metrics dict
        Methods whose :func:`blend_metrics` dict has a ``roc`` entry (others are skipped).
    path : path-like
        Output PNG.
    points : mapping of str to metrics dict, optional
        Methods with hard predictions only (e.g. SEP), drawn as one point at their
        (false-positive rate, completeness).
    """
    from .plots import _save, plt

    fig, ax = plt.subplots(figsize=(5, 4.6))
    for name, metrics in results.items():
        roc = metrics.get("roc")
        if not roc:
            continue
        auc = metrics.get("auc")
        ax.plot(roc["false_positive_rate"], roc["true_positive_rate"], lw=1.4,
                label=f"{name} (AUC {auc:.3f})" if auc is not None else name)
    for name, metrics in (points or {}).items():
        if metrics.get("false_positive_rate") is not None and metrics.get("completeness") is not None:
            ax.plot(metrics["false_positive_rate"], metrics["completeness"], "o", ms=6, label=name)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set_xlabel("false-positive rate (isolated called blended)")
    ax.set_ylabel("completeness (blends found)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=9)
    if title:
        ax.set_title(title)
    return _save(fig, Path(path))


def plot_purity_completeness(results: Mapping[str, Mapping[str, Any]], path: str | os.PathLike, *,
                             title: str | None = None) -> Path:
    """Purity and completeness against probability threshold, per method (PNG)."""
    from .plots import _save, plt

    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    for name, metrics in results.items():
        pc = metrics.get("purity_completeness")
        if not pc:
            continue
        t = np.asarray(pc["threshold"], float)
        purity = np.array([np.nan if v is None else v for v in pc["purity"]], float)
        completeness = np.array([np.nan if v is None else v for v in pc["completeness"]], float)
        line, = ax.plot(t, purity, lw=1.4, label=f"{name} purity")
        ax.plot(t, completeness, lw=1.4, ls="--", color=line.get_color(), label=f"{name} completeness")
    ax.set_xlabel("probability threshold")
    ax.set_ylabel("purity / completeness")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, Path(path))


def plot_accuracy_vs_noise(results: Mapping[str, Any], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Overall accuracy against noise standard deviation, one line per method (PNG).

    ``results`` maps a name to a :func:`blend_metrics` dict (its ``by_noise_sigma`` entry is
    used) or to a pair ``(noise_sigma, accuracy)``, e.g. the paper's values from
    :func:`load_blendhunter_reference`.
    """
    from .plots import _save, plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, result in results.items():
        if isinstance(result, Mapping):
            groups = result.get("by_noise_sigma") or []
            x = [g["noise_sigma"] for g in groups]
            y = [np.nan if g["accuracy"] is None else g["accuracy"] for g in groups]
        else:
            x, y = result[0], result[1]
        ax.plot(x, y, marker="o", lw=1.2, label=name)
    ax.set_xlabel("noise standard deviation [counts]")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title)
    return _save(fig, Path(path))


def write_blend_report(metrics: Mapping[str, Any], out_dir: str | os.PathLike, *, name: str = "model",
                       compare: Mapping[str, Any] | None = None, command: str | None = None) -> list[Path]:
    """Write ``metrics.json`` and the standard plots of one method into ``out_dir``.

    Parameters
    ----------
    metrics : mapping
        From :func:`blend_metrics`.
    out_dir : path-like
        Output folder (created if needed).
    name : str
        Method name used in legends.
    compare : mapping of str to metrics, optional
        Other methods (e.g. ``{"SEP": sep_metrics}``) overlaid on the separation plot and, as
        single points or curves, on the ROC plot.
    command : str, optional
        Command line recorded in the JSON provenance.

    Returns
    -------
    list of pathlib.Path
        ``metrics.json``, ``confusion_matrix.png``, ``accuracy_vs_separation.png`` and, when
        probabilities were given, ``roc.png``, ``purity_completeness.png`` and ``reliability.png``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    everything = {name: metrics, **dict(compare or {})}
    accuracy = metrics.get("accuracy")
    title = f"{name}: accuracy {accuracy:.1%}" if accuracy is not None else name
    written = [write_metrics_json(metrics, out_dir / "metrics.json", command=command),
               plot_confusion_matrix(metrics, out_dir / "confusion_matrix.png", title=title),
               plot_accuracy_vs_separation(everything, out_dir / "accuracy_vs_separation.png")]
    curves = {k: v for k, v in everything.items() if isinstance(v, Mapping) and v.get("roc")}
    if curves:
        points = {k: v for k, v in everything.items() if isinstance(v, Mapping) and not v.get("roc")}
        written.append(plot_roc(curves, out_dir / "roc.png", points=points))
        written.append(plot_purity_completeness(curves, out_dir / "purity_completeness.png"))
    if metrics.get("calibration"):
        written.append(plot_reliability(metrics["calibration"], out_dir / "reliability.png",
                                        title=f"{name}: ECE {metrics['calibration']['ece']:.4f}"))
    return written


__all__ = [
    "NEAR_PX", "blend_metrics", "accuracy_by_separation", "truth_blended", "write_metrics_json",
    "source_provenance", "read_metrics_json", "load_blendhunter_reference", "reference_completeness", "plot_accuracy_vs_separation", "plot_confusion_matrix",
    "plot_roc", "plot_purity_completeness", "plot_accuracy_vs_noise", "write_blend_report",
]
