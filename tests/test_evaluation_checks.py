"""Evaluation metrics and reports checked on small inputs whose answers are known (by hand or
from scikit-learn), at the edges where a metric is undefined or a decision is on a boundary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from skysort.data.catalog import read_catalog
from skysort.data.stampset import StampMeta, write_stampset
from skysort.evaluation.blend_metrics import blend_metrics, write_metrics_json
from skysort.tasks import sgq
from skysort.tasks.blend import evaluate_blend_model


def blend_set(path: Path, separations, noise: float = 5.0, seed: int = 0):
    """A one-band 65 px blend stamp set: a Gaussian galaxy at the centre and, where the
    separation is finite, a companion that far along x (NaN: isolated)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:65, :65]
    separation = np.asarray(separations, float)
    blended = np.isfinite(separation)
    images = np.zeros((len(separation), 1, 65, 65), np.float32)
    for i, dx in enumerate(separation):
        stamp = 400 * np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / 8.0)
        if blended[i]:
            stamp += 300 * np.exp(-((xx - 32 - dx) ** 2 + (yy - 32) ** 2) / 8.0)
        images[i, 0] = stamp + rng.normal(0, noise, (65, 65))
    table = {"label": np.where(blended, "blended", "isolated"), "blended": blended, "companion_dx": separation,
             "companion_dy": np.where(blended, 0.0, np.nan), "noise_sigma": np.full(len(separation), noise, np.float32),
             "separation_px": separation}
    meta = StampMeta(bands=("r",), pixel_scale=0.187, flux_unit="count", survey="cfis", seed=seed)
    return write_stampset(path, images, table, meta)


def strict_json(path: Path) -> dict:
    """The file parsed as strict JSON: NaN or Infinity anywhere is an error."""
    def refuse(token):
        raise ValueError(f"{path} holds {token}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


# ----------------------------------------------------------------------------------------
# sgq: per-class scores where a ratio has no denominator
# ----------------------------------------------------------------------------------------


def test_sgq_per_class_scores_leave_undefined_ratios_undefined_as_sklearn_does(tmp_path):
    # star: 2 objects, one found, the other called qso; galaxy: 2, both found; qso: no object,
    # but one star called qso.
    truth = np.array([0, 0, 1, 1])
    predicted = np.array([0, 2, 1, 1])
    m = sgq.sgq_metrics(truth, np.eye(3)[predicted])
    expected = precision_recall_fscore_support(truth, predicted, labels=[0, 1, 2], zero_division=np.nan)
    for i, name in enumerate(sgq.CLASSES):
        row = m["per_class"][name]
        for key, values in zip(("precision", "recall", "f1", "support"), expected):
            want = None if np.isnan(values[i]) else pytest.approx(float(values[i]))
            assert row[key] == want, (name, key)
    # qso has no object: its recall is undefined, not 0 (a model that misses every quasar);
    # its precision is defined (0 of the 1 object called qso is one).
    assert m["per_class"]["qso"] == {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0}
    # A class present but never predicted: precision undefined, recall and f1 0.
    never = sgq.sgq_metrics(np.array([0, 1, 2]), np.eye(3)[[0, 1, 1]])
    assert never["per_class"]["qso"] == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1}
    path = write_metrics_json(m, tmp_path / "metrics.json", command="test")
    assert strict_json(path)["per_class"]["qso"]["recall"] is None


def test_a_pure_sample_without_labels_reports_no_per_class_scores():
    probabilities = np.eye(3)[[2, 2, 0]]
    m = sgq.sgq_metrics(np.full(3, -1), probabilities, expected_class="qso")
    assert m["expected_class_fraction"] == pytest.approx(2 / 3) and m["accuracy"] is None
    for name in sgq.CLASSES:
        assert m["per_class"][name] == {"precision": None, "recall": None, "f1": None, "support": 0}


# ----------------------------------------------------------------------------------------
# blend: the decision scored is the decision written
# ----------------------------------------------------------------------------------------


def test_blend_threshold_calls_blended_strictly_above_it_as_predict_does():
    truth = {"blended": np.array([1, 1, 0, 0], bool), "separation_px": np.array([4.0, 12.0, np.nan, np.nan])}
    probability = np.array([0.5, 0.9, 0.5, 0.1])
    m = blend_metrics(truth, probability, threshold=0.5)
    # 0.5 is not above 0.5: the blend at 0.5 is missed, the isolated stamp at 0.5 is right.
    assert m["confusion"] == {"tp": 1, "fn": 1, "fp": 0, "tn": 2}
    assert m["accuracy"] == pytest.approx(3 / 4) and m["false_positive_rate"] == 0.0
    # The purity / completeness row of the decision threshold repeats the headline figures.
    pc = m["purity_completeness"]
    k = pc["threshold"].index(0.5)
    assert pc["completeness"][k] == m["completeness"] and pc["purity"][k] == m["purity"]
    assert pc["false_positive_rate"][k] == m["false_positive_rate"]
    # Probabilities of exactly 1 are not above a threshold of 1: nothing is called blended.
    top = blend_metrics(truth, np.array([1.0, 1.0, 0.2, 0.0]), threshold=1.0)
    assert top["confusion"]["tp"] == 0 and top["confusion"]["fp"] == 0


def test_blend_evaluation_scores_the_classes_it_writes(tmp_path):
    blend_set(tmp_path / "s.h5", [3.0, 6.0, 12.0, 16.0, np.nan, np.nan, np.nan, np.nan])
    first = evaluate_blend_model("blend-cfis", tmp_path / "s.h5", tmp_path / "a", with_sep=False)
    p = np.asarray(read_catalog(tmp_path / "a" / "predictions.parquet", require_positions=False)["p_blended"], float)
    assert len(np.unique(p)) == len(p) and first["n"] == len(p)
    # A threshold equal to one stamp's probability puts that stamp on the boundary.
    threshold = float(np.sort(p)[3])
    metrics = evaluate_blend_model("blend-cfis", tmp_path / "s.h5", tmp_path / "b", with_sep=False, threshold=threshold)
    written = read_catalog(tmp_path / "b" / "predictions.parquet", require_positions=False)
    called = np.asarray(written["blended"], bool)
    truth = np.asarray(written["true_blended"], bool)
    assert metrics["confusion"] == {"tp": int(np.sum(truth & called)), "fn": int(np.sum(truth & ~called)),
                                    "fp": int(np.sum(~truth & called)), "tn": int(np.sum(~truth & ~called))}
    assert strict_json(tmp_path / "b" / "metrics.json")["accuracy"] == pytest.approx(np.mean(truth == called))


@pytest.mark.parametrize("separations", [[12.0, 15.0, 20.0, np.nan, np.nan, np.nan], [np.nan] * 5],
                         ids=["far-blends-only", "isolated-only"])
def test_blend_evaluation_beside_sep_without_near_blends(tmp_path, separations):
    blend_set(tmp_path / "s.h5", separations)
    metrics = evaluate_blend_model("blend-cfis", tmp_path / "s.h5", tmp_path / "eval")
    assert metrics["accuracy_near"] is None and metrics["sep"]["accuracy_near"] is None
    assert metrics["accuracy_near_minus_sep"] is None
    written = strict_json(tmp_path / "eval" / "metrics.json")
    assert written["n_near"] == 0 and written["accuracy_near_minus_sep"] is None
    assert written["n"] == len(separations) and written["false_positive_rate"] is not None
    for name in ("confusion_matrix.png", "accuracy_vs_separation.png", "predictions.parquet"):
        assert (tmp_path / "eval" / name).stat().st_size > 0


# ----------------------------------------------------------------------------------------
# sgq catalogues: what is scored, and in which magnitude bin
# ----------------------------------------------------------------------------------------


def _catalogue(r_offsets: dict[int, float] | None = None):
    """Four labelled objects for sgq-sdss: 0 and 2 measured, 1 with the sentinel 99 in every
    band (no mapping masked it), 3 with no magnitude at all."""
    from astropy.table import Table

    base = np.array([20.0, 99.0, 18.0, np.nan])
    columns = {f"mag_{b}": base + (0.3 if b == "u" else 0.0) for b in "ugriz"}
    for row, value in (r_offsets or {}).items():
        columns["mag_r"] = columns["mag_r"].copy()
        columns["mag_r"][row] = value
    return Table({"id": np.arange(4), "label": ["galaxy", "galaxy", "star", "galaxy"], **columns})


def test_catalogue_objects_with_only_sentinel_magnitudes_are_not_scored(tmp_path):
    with pytest.warns(UserWarning, match="outside"):
        m = sgq.evaluate_sgq_catalog("sgq-sdss", _catalogue(), tmp_path / "eval")
    # Object 1 gets no class from the model (inputs_used none), like object 3.
    predictions = read_catalog(tmp_path / "eval" / "catalog_predictions.parquet", require_positions=False)
    assert list(np.asarray(predictions["inputs_used"]).astype(str)) == ["photometry", "none", "photometry", "none"]
    assert m["n"] == 2 and m["n_without_input"] == 2 and m["n_objects"] == 4
    assert np.sum(m["confusion_matrix"]["matrix"]) == 2 and m["calibration"]["n"] == 2
    assert strict_json(tmp_path / "eval" / "metrics.json")["n"] == 2


def test_sentinel_r_magnitudes_fall_in_no_bin_and_are_counted():
    truth = np.array([0, 1, 1, 2])
    probabilities = np.eye(3)[[0, 1, 0, 2]]
    m = sgq.sgq_metrics(truth, probabilities, r_mag=np.array([18.5, -99.0, 99.0, np.nan]))
    # Only the r = 18.5 star is bright; the sentinels are no magnitudes.
    assert m["bright"]["n"] == 1 and m["bright"]["accuracy"] == 1.0
    assert [(row["r_min"], row["r_max"], row["n"]) for row in m["accuracy_vs_r_mag"]] == [(18.0, 19.0, 1)]
    assert m["n_without_r_mag"] == 3


# ----------------------------------------------------------------------------------------
# Provenance: which model file and which simulated set were scored
# ----------------------------------------------------------------------------------------


def test_metrics_json_identifies_the_model_file_and_the_data_seed(tmp_path):
    import hashlib

    from skysort.models.checkpoint import load_model_file
    from skysort.models.registry import resolve_model

    blend_set(tmp_path / "s.h5", [4.0, 14.0, np.nan, np.nan], seed=17)
    evaluate_blend_model("blend-cfis", tmp_path / "s.h5", tmp_path / "eval", with_sep=False)
    record = strict_json(tmp_path / "eval" / "metrics.json")["source_provenance"]
    model_file = resolve_model("blend-cfis")
    meta, _ = load_model_file(model_file)
    assert record["model_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert record["model_file"] == str(model_file.resolve()) and record["model_created"] == meta["created"]
    assert record["model_training_seed"] == meta["training"]["seed"] and record["data_seed"] == 17
    with pytest.warns(UserWarning, match="outside"):
        catalogue = sgq.evaluate_sgq_catalog("sgq-sdss", _catalogue(), tmp_path / "cat")
    assert catalogue["source_provenance"]["model_sha256"] == hashlib.sha256(resolve_model("sgq-sdss").read_bytes()).hexdigest()
    assert catalogue["source_provenance"]["data_seed"] is None
