"""Blend-identification metrics on hand-made predictions with known answers; JSON; plots; reference."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from skysort.evaluation.blend_metrics import (
    accuracy_by_companion_snr,
    accuracy_by_separation,
    blend_metrics,
    companion_snr,
    load_blendhunter_reference,
    plot_accuracy_vs_noise,
    plot_accuracy_vs_separation,
    plot_confusion_matrix,
    plot_purity_completeness,
    plot_roc,
    read_metrics_json,
    write_blend_report,
    write_metrics_json,
)

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reference" / "blendhunter"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: Four blends (2.5, 5, 12, 20 px) then four isolated stamps.
BLENDED = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=np.uint8)
SEPARATION = np.array([2.5, 5.0, 12.0, 20.0, np.nan, np.nan, np.nan, np.nan])
PREDICTED = np.array([False, True, True, True, False, False, True, False])
SIGMA = np.array([5, 5, 5, 5, 10, 10, 10, 10], np.float32)


def truth(**extra):
    return {"blended": BLENDED, "separation_px": SEPARATION, **extra}


def test_headline_metrics():
    m = blend_metrics(truth(), None, PREDICTED)
    assert m["n"] == 8 and m["n_blended"] == 4 and m["n_isolated"] == 4
    assert m["accuracy"] == pytest.approx(6 / 8)
    # Near / far: blended stamps of the class only (completeness).
    assert (m["n_near"], m["n_far"]) == (2, 2)
    assert m["accuracy_near"] == pytest.approx(0.5)
    assert m["accuracy_far"] == pytest.approx(1.0)
    # With every isolated stamp added: near 1 + 3 correct of 6, far 2 + 3 of 6.
    assert m["accuracy_near_with_isolated"] == pytest.approx(4 / 6)
    assert m["accuracy_far_with_isolated"] == pytest.approx(5 / 6)
    assert m["false_positive_rate"] == pytest.approx(0.25)
    assert m["completeness"] == pytest.approx(0.75)
    assert m["purity"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(0.75)
    assert m["confusion"] == {"tp": 3, "fn": 1, "fp": 1, "tn": 3}
    assert m["confusion_matrix"]["matrix"] == [[3, 1], [1, 3]]
    assert m["confusion_matrix"]["labels"] == ["isolated", "blended"]
    assert m["by_noise_sigma"] is None
    assert "auc" not in m and m["threshold"] is None


def test_separation_bins():
    m = blend_metrics(truth(), None, PREDICTED)["by_separation"]
    assert m["edges_px"][:3] == [0.0, 1.0, 2.0]
    # 20.0 px exactly must fall into a bin [20, 21).
    assert m["edges_px"][-1] == 21.0
    n = np.array(m["n"])
    assert n.sum() == 4
    assert n[2] == 1 and n[5] == 1 and n[12] == 1 and n[20] == 1
    assert m["accuracy"][2] == 0.0 and m["accuracy"][5] == 1.0 and m["accuracy"][20] == 1.0
    assert m["accuracy"][0] is None  # empty bin
    assert m["accuracy_err"][2] == 0.0
    assert m["centres_px"][2] == 2.5

    custom = accuracy_by_separation([1, 1, 1], [1, 0, 1], [0.2, 1.4, 2.9], bin_px=1.5, max_px=3.0)
    assert custom["edges_px"] == [0.0, 1.5, 3.0]
    assert custom["n"] == [2, 1] and custom["n_correct"] == [1, 1]


def test_noise_sigma_breakdown_from_column_and_argument():
    m = blend_metrics(truth(noise_sigma=SIGMA), None, PREDICTED)
    groups = {g["noise_sigma"]: g for g in m["by_noise_sigma"]}
    assert set(groups) == {5.0, 10.0}
    assert groups[5.0]["n"] == 4 and groups[5.0]["accuracy"] == pytest.approx(0.75)
    assert groups[5.0]["false_positive_rate"] is None  # no isolated stamps at this level
    assert groups[10.0]["accuracy"] == pytest.approx(0.75)
    assert groups[10.0]["false_positive_rate"] == pytest.approx(0.25)
    single = blend_metrics(truth(), None, PREDICTED, noise_sigma=14.5)
    assert [g["noise_sigma"] for g in single["by_noise_sigma"]] == [14.5]


def test_companion_snr_is_the_matched_filter_snr_of_a_point_source():
    """For a Gaussian PSF of sigma s px on white noise sigma_n, the matched filter's S/N for a
    point source of flux F is F / (sigma_n sqrt(4 pi) s): checked against the sum of the
    squared, noise-weighted PSF profile, and binned as the module says."""
    s = 1.5
    yy, xx = np.mgrid[-25:26, -25:26]
    profile = np.exp(-(xx ** 2 + yy ** 2) / (2 * s ** 2))
    profile /= profile.sum()
    flux, noise = 300.0, 2.0
    matched = flux * np.sqrt(np.sum(profile ** 2)) / noise
    assert companion_snr(flux, noise, 2.3548 * s) == pytest.approx(matched, rel=1e-3)

    blended = np.array([1, 1, 1, 1, 0], bool)
    predicted = np.array([0, 1, 1, 1, 1], bool)
    binned = accuracy_by_companion_snr(blended, predicted, np.array([3.0, 6.0, 60.0, np.nan, 1.0]))
    assert binned["n"] == [1, 1, 0, 0, 0, 0, 0, 1] and binned["accuracy"][0] == 0.0 and binned["accuracy"][-1] == 1.0
    assert binned["edges"][-1] is None  # infinity, as strict JSON allows

    table = truth(noise_sigma=SIGMA)
    table["flux_companion"] = np.where(np.asarray(table["blended"]).astype(bool), 400.0, np.nan)
    assert blend_metrics(table, None, PREDICTED)["by_companion_snr"] is None  # no PSF given
    with_psf = blend_metrics(table, None, PREDICTED, psf_fwhm_px=3.0)["by_companion_snr"]
    assert sum(with_psf["n"]) == int(np.sum(np.asarray(table["blended"]).astype(bool)))


def test_labels_masked_table_and_probabilities():
    table = Table({"label": ["blended"] * 4 + ["isolated"] * 4,
                   "separation_px": MaskedColumn(np.nan_to_num(SEPARATION), mask=np.isnan(SEPARATION))})
    probability = np.array([0.4, 0.9, 0.8, 0.7, 0.1, 0.2, 0.6, 0.3])
    m = blend_metrics(table, probability)  # predicted from the 0.5 threshold
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["threshold"] == 0.5
    assert m["accuracy_near"] == pytest.approx(0.5)
    # Positives 0.4, 0.9, 0.8, 0.7 vs negatives 0.1, 0.2, 0.6, 0.3: 15 of 16 pairs ordered.
    assert m["auc"] == pytest.approx(15 / 16)
    pc = m["purity_completeness"]
    k = pc["threshold"].index(0.5)
    assert pc["completeness"][k] == pytest.approx(0.75) and pc["purity"][k] == pytest.approx(0.75)
    assert pc["completeness"][0] == 1.0 and pc["purity"][-1] is None  # nothing >= 1.0
    roc = m["roc"]
    assert roc["false_positive_rate"][0] == 0.0 and roc["true_positive_rate"][-1] == 1.0
    assert roc["threshold"][0] is None  # sklearn's +inf
    perfect = blend_metrics(table, np.array([0.9] * 4 + [0.1] * 4))
    assert perfect["auc"] == 1.0 and perfect["accuracy"] == 1.0


def test_input_validation():
    with pytest.raises(ValueError, match="predictions for"):
        blend_metrics(truth(), None, PREDICTED[:-1])
    with pytest.raises(ValueError, match="within"):
        blend_metrics(truth(), np.full(8, 1.5))
    with pytest.raises(ValueError, match="give predicted"):
        blend_metrics(truth(), None, None)
    with pytest.raises(ValueError, match="labels"):
        blend_metrics({"label": np.array(["star"] * 8)}, None, PREDICTED)
    one_class = blend_metrics({"blended": np.ones(3, bool)}, np.array([0.2, 0.6, 0.9]))
    assert one_class["auc"] is None and one_class["false_positive_rate"] is None


def test_metrics_json_round_trip(tmp_path):
    m = blend_metrics(truth(noise_sigma=SIGMA), np.array([0.4, 0.9, 0.8, 0.7, 0.1, 0.2, 0.6, 0.3]))
    m["extra"] = {"nan": float("nan"), "array": np.arange(3), "scalar": np.float32(0.5)}
    path = write_metrics_json(m, tmp_path / "m" / "metrics.json", command="skysort evaluate x")
    text = path.read_text()
    assert "NaN" not in text
    back = read_metrics_json(path)
    assert back["provenance"]["command"] == "skysort evaluate x"
    assert back["accuracy"] == m["accuracy"] and back["confusion"] == m["confusion"]
    assert back["by_separation"] == m["by_separation"]
    assert back["roc"] == m["roc"]
    assert back["extra"] == {"nan": None, "array": [0, 1, 2], "scalar": 0.5}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_plots_and_report(tmp_path):
    probability = np.array([0.4, 0.9, 0.8, 0.7, 0.1, 0.2, 0.6, 0.3])
    model = blend_metrics(truth(noise_sigma=SIGMA), probability)
    sep = blend_metrics(truth(noise_sigma=SIGMA), None, PREDICTED)
    paths = [
        plot_accuracy_vs_separation({"SEP": sep, "model": model, "paper": ([1.0, 2.0, 3.0], [0.1, 0.5, None])},
                                    tmp_path / "sep.png", title="test"),
        plot_confusion_matrix(model, tmp_path / "cm.png"),
        plot_roc({"model": model}, tmp_path / "roc.png", points={"SEP": sep}),
        plot_purity_completeness({"model": model}, tmp_path / "pc.png"),
        plot_accuracy_vs_noise({"model": model, "paper": ([5, 14], [0.97, 0.95])}, tmp_path / "noise.png"),
    ]
    written = write_blend_report(model, tmp_path / "report", name="cnn", compare={"SEP": sep}, command="t")
    assert {p.name for p in written} == {"metrics.json", "confusion_matrix.png", "accuracy_vs_separation.png",
                                         "roc.png", "purity_completeness.png", "reliability.png"}
    assert model["calibration"]["n"] == 8 and sep.get("calibration") is None  # SEP gives no probabilities
    for path in paths + [p for p in written if p.suffix == ".png"]:
        assert path.read_bytes()[:8] == PNG_MAGIC
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_blendhunter_reference():
    if not REFERENCE.exists():
        pytest.skip(f"reference numbers not available: {REFERENCE}")
    ref = load_blendhunter_reference(REFERENCE)
    assert ref["noise_sigma"] == [5.0, 14.0, 18.0, 26.0, 35.0, 40.0]
    assert len(ref["parametric"]["sep"]["accuracy_mean"]) == 6
    assert ref["parametric"]["blendhunter"]["accuracy_mean"][0] == pytest.approx(0.972725)
    assert len(ref["by_separation"]["separation_px"]) == 60
    assert np.shape(ref["by_separation"]["sep"]) == (6, 60)
    assert ref["realistic"]["sep"] == pytest.approx(0.9115)
    json.dumps(ref)  # plain Python values only
    # The paper's SEP curve plots against our separation plot.
    curve = (ref["by_separation"]["separation_px"], ref["by_separation"]["sep"][1])
    assert math.isfinite(curve[1][30])


def test_reference_completeness_reweights_the_published_curve():
    """Separations at one published bin give that bin's value; a noise between two published
    levels gives the value between them; the mean follows the separations given."""
    from skysort.evaluation.blend_metrics import reference_completeness

    centres = [1.0, 2.0, 3.0]
    reference = {"noise_sigma": [10.0, 20.0],
                 "by_separation": {"separation_px": centres, "blendhunter": [[0.2, 0.6, 1.0], [0.0, 0.4, 0.8]],
                                   "sep": [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]}}
    assert reference_completeness(reference, np.array([2.1, 1.9]), 10.0)["blendhunter"] == pytest.approx(0.6)
    assert reference_completeness(reference, np.array([2.0]), 15.0)["blendhunter"] == pytest.approx(0.5)
    assert reference_completeness(reference, np.array([1.0, 3.0, 3.0, np.nan]), 40.0)["blendhunter"] == pytest.approx((0.0 + 1.6) / 3)
    assert reference_completeness(reference, np.array([1.0, 3.0]), 5.0)["sep"] == pytest.approx(0.2)


def test_reference_loader_refuses_arbitrary_pickles(tmp_path):
    np.save(tmp_path / "results_sigmas.npy", np.array([Fraction(1, 2)], dtype=object), allow_pickle=True)
    with pytest.raises(Exception, match="refusing"):
        load_blendhunter_reference(tmp_path)
    assert load_blendhunter_reference(tmp_path / "nowhere")["files"] == []
