"""The SEP blend baseline: labelling rules on hand-made detections, sep on simple stamps, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table

from skysort.baselines.sep_blend import (
    OBJ_MERGED,
    label_from_detections,
    run_sep_baseline,
    sep_predict,
    stamp_centre,
)

CENTRE = (32.0, 32.0)
COMPANION = [(44.0, 27.0)]


def det(*rows):
    """A sep-like structured array of detections from (x, y, flag) triples."""
    out = np.zeros(len(rows), dtype=[("x", "f8"), ("y", "f8"), ("flag", "i2")])
    for k, (x, y, flag) in enumerate(rows):
        out[k] = (x, y, flag)
    return out


# ----------------------------------------------------------------------------- labelling rules


def test_merged_flag_is_seps():
    sep = pytest.importorskip("sep")
    assert OBJ_MERGED == sep.OBJ_MERGED


def test_stamp_centre_is_true_centre():
    assert stamp_centre((65, 65)) == (32.0, 32.0)
    assert stamp_centre((1, 51, 65)) == (32.0, 25.0)


def test_zero_detections_predict_isolated_without_failure():
    assert label_from_detections(det(), CENTRE, [], 1) == (False, False)
    assert label_from_detections(det(), CENTRE, COMPANION, 2) == (False, False)


@pytest.mark.parametrize("flag, position, expected", [
    (OBJ_MERGED, (32.5, 31.2), True),         # merged, at the centre
    (0, (32.5, 31.2), False),                 # not merged
    (OBJ_MERGED, (35.0, 32.0), False),        # merged but 3 px from the centre
    (OBJ_MERGED | 2, (32.0, 33.9), True),     # other flag bits do not matter
    (2, (32.0, 32.0), False),
])
def test_one_detection(flag, position, expected):
    detections = det((position[0], position[1], flag))
    # The rule does not depend on the truth: one merged object at the centre reads as a blend.
    assert label_from_detections(detections, CENTRE, COMPANION, 2) == (expected, False)
    assert label_from_detections(detections, CENTRE, [], 1) == (expected, False)


def test_one_merged_detection_at_companion_is_not_a_blend():
    assert label_from_detections(det((44.0, 27.0, OBJ_MERGED)), CENTRE, COMPANION, 2) == (False, False)


def test_two_detections_at_true_positions_are_a_blend():
    assert label_from_detections(det((32.4, 31.5, 0), (43.1, 27.6, 0)), CENTRE, COMPANION, 2) == (True, False)
    # Order of the detections does not matter.
    assert label_from_detections(det((43.1, 27.6, 0), (32.4, 31.5, 0)), CENTRE, COMPANION, 2) == (True, False)


def test_two_detections_one_misplaced_are_not_a_blend():
    assert label_from_detections(det((32.4, 31.5, 0), (47.0, 27.0, 0)), CENTRE, COMPANION, 2) == (False, False)
    # Flags are read per detection: a merged flag on the misplaced one does not rescue it.
    assert label_from_detections(det((32.4, 31.5, 0), (47.0, 27.0, OBJ_MERGED)), CENTRE, COMPANION, 2) == (False, False)
    # Both detections on the central galaxy: the companion has none.
    assert label_from_detections(det((32.4, 31.5, 0), (31.0, 32.5, 0)), CENTRE, COMPANION, 2) == (False, False)


def test_matching_is_one_to_one_and_maximal():
    # Detection A is within 2 px of both true positions, B only of the centre: the only full
    # matching is A-companion, B-centre; a greedy nearest-first match would miss it.
    centre, companion = (32.0, 32.0), [(34.5, 32.0)]
    detections = det((33.3, 32.0, 0), (30.5, 32.0, 0))
    assert label_from_detections(detections, centre, companion, 2) == (True, False)


def test_boundary_is_strictly_less_than_radius():
    assert label_from_detections(det((34.0, 32.0, OBJ_MERGED)), CENTRE, [], 1) == (False, False)
    assert label_from_detections(det((33.99, 32.0, OBJ_MERGED)), CENTRE, [], 1) == (True, False)


def test_more_detections_than_truth_is_a_failure():
    # Blend with three detections, both true positions found: blended, and a SEP failure.
    assert label_from_detections(det((32.2, 32.1, 0), (44.3, 27.1, 0), (10.0, 50.0, 0)), CENTRE, COMPANION, 2) == (True, True)
    # Only one true position among three detections: not blended, still a failure.
    assert label_from_detections(det((32.2, 32.1, 0), (40.0, 20.0, 0), (10.0, 50.0, 0)), CENTRE, COMPANION, 2) == (False, True)
    # Isolated galaxy split in two, centre among them: SEP claims a blend (false positive).
    assert label_from_detections(det((32.2, 32.1, 0), (36.0, 35.0, OBJ_MERGED)), CENTRE, [], 1) == (True, True)
    # Isolated galaxy, two detections neither at the centre.
    assert label_from_detections(det((29.0, 32.0, 0), (36.0, 35.0, 0)), CENTRE, [], 1) == (False, True)


def test_each_stamp_is_labelled_from_its_own_detections():
    blend = det((32.4, 31.5, 0), (43.1, 27.6, 0))
    unresolved = det((32.4, 31.5, 0), (47.0, 27.0, 0))
    # A verdict must not leak from one call to the next.
    assert label_from_detections(blend, CENTRE, COMPANION, 2)[0] is True
    assert label_from_detections(unresolved, CENTRE, COMPANION, 2)[0] is False


def test_detection_formats_and_validation():
    expected = (True, False)
    assert label_from_detections([(32.0, 32.5, 0), (44.0, 27.0, 0)], CENTRE, COMPANION, 2) == expected
    assert label_from_detections([{"x": 32.0, "y": 32.5, "flag": 0}, {"x": 44.0, "y": 27.0}], CENTRE, COMPANION, 2) == expected
    assert label_from_detections({"x": [32.0, 44.0], "y": [32.5, 27.0]}, CENTRE, COMPANION, 2) == expected
    assert label_from_detections(Table({"x": [32.0, 44.0], "y": [32.5, 27.0], "flag": [0, 0]}), CENTRE, COMPANION, 2) == expected
    with pytest.raises(ValueError, match="companion"):
        label_from_detections(det(), CENTRE, COMPANION, 1)


# ----------------------------------------------------------------------------- sep on stamps


def gaussian_stamps(positions_per_stamp, noise=5.0, flux=2.0e4, sigma_px=2.0, seed=0, size=65, pad=7):
    """Stamps of round Gaussian galaxies at given offsets from the centre, with zero padding."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    c = (size - 1) / 2
    stamps = np.zeros((len(positions_per_stamp), 1, size, size), np.float32)
    for k, offsets in enumerate(positions_per_stamp):
        image = np.zeros((size, size))
        for dx, dy in offsets:
            image += flux / (2 * np.pi * sigma_px**2) * np.exp(-((xx - c - dx) ** 2 + (yy - c - dy) ** 2) / (2 * sigma_px**2))
        image += rng.normal(0, noise, image.shape)
        image[:pad], image[-pad:], image[:, :pad], image[:, -pad:] = 0, 0, 0, 0
        stamps[k, 0] = image
    return stamps


def blend_truth(companions, noise=5.0):
    blended = np.array([c is not None for c in companions])
    dx = np.array([np.nan if c is None else c[0] for c in companions])
    dy = np.array([np.nan if c is None else c[1] for c in companions])
    return Table({"id": np.arange(len(companions)), "blended": blended, "n_sources": 1 + blended.astype(int),
                  "companion_dx": dx, "companion_dy": dy, "noise_sigma": np.full(len(companions), noise)})


@pytest.mark.parametrize("noise", ["stamp", "known"])
def test_sep_isolated_and_separated_blend(noise):
    companions = [None, (13.0, -6.0), None, (-9.0, 11.0)]
    stamps = gaussian_stamps([[(0, 0)] if c is None else [(0, 0), c] for c in companions])
    out = sep_predict(stamps, blend_truth(companions), noise=noise)
    assert list(out["n_detected"]) == [1, 2, 1, 2]
    assert list(out["sep_blended"]) == [False, True, False, True]
    assert not out["sep_failure"].any()
    assert list(out["n_matched"]) == [1, 2, 1, 2]
    assert list(out["id"]) == [0, 1, 2, 3]
    if noise == "known":
        assert np.allclose(out["noise_rms"], 5.0)
    else:
        # The stamp's global rms includes the zero border, so it is below the true sigma.
        assert np.all((out["noise_rms"] > 2.0) & (out["noise_rms"] < 5.0))


def test_sep_handles_nan_byte_order_and_3d_input():
    companions = [None, (13.0, -6.0)]
    stamps = gaussian_stamps([[(0, 0)], [(0, 0), (13.0, -6.0)]])[:, 0]
    stamps[:, 10:14, 10:14] = np.nan
    swapped = stamps.astype(stamps.dtype.newbyteorder(">"))
    out = sep_predict(swapped, blend_truth(companions), noise="known")
    assert list(out["sep_blended"]) == [False, True]


def test_sep_rejects_zero_noise_and_missing_columns():
    stamps = np.zeros((1, 65, 65), np.float32)
    with pytest.raises(ValueError, match="noise rms"):
        sep_predict(stamps, blend_truth([None]), noise="stamp")
    with pytest.raises(ValueError, match="noise rms"):
        sep_predict(stamps, blend_truth([None]), noise=0.0)
    truth = blend_truth([None])
    del truth["noise_sigma"]
    with pytest.raises(ValueError, match="noise_sigma"):
        sep_predict(stamps, truth, noise="known")
    with pytest.raises(ValueError, match="single-band"):
        sep_predict(np.zeros((1, 2, 65, 65)), blend_truth([None]))


def test_sep_on_simulated_low_noise_stamps():
    from skysort.simulate.blends import make_blend_stamps

    images, truth = make_blend_stamps(80, seed=3, mode="parametric", noise_sigma=2.0)
    out = sep_predict(images, truth, noise="known")
    blended = np.asarray(truth["blended"], bool)
    isolated = ~blended
    # Nearly noiseless single galaxies: one detection, not a blend.
    single = (out["n_detected"] == 1) & ~out["sep_blended"]
    assert single[isolated].mean() >= 0.9
    # Companions well inside the stamp and far from the centre are found where they are.
    dx, dy = np.asarray(truth["companion_dx"]), np.asarray(truth["companion_dy"])
    easy = blended & (np.hypot(dx, dy) > 12) & (np.abs(dx) < 18) & (np.abs(dy) < 18)
    assert easy.sum() >= 5
    assert np.asarray(out["sep_blended"])[easy].mean() >= 0.8


def test_run_sep_baseline_writes_predictions_and_metrics(tmp_path):
    import pyarrow.parquet as pq

    from skysort.simulate.simulator import SimulationConfig, simulate

    stamps = simulate(SimulationConfig(survey="cfis", kind="blends", seed=5, noise_sigma=5.0), 48, tmp_path / "b.h5", block=48)
    metrics = run_sep_baseline(stamps, tmp_path / "sep", command="test")
    written = json.loads((tmp_path / "sep" / "metrics.json").read_text())
    assert written["provenance"]["command"] == "test"
    assert written["n"] == 48 and written["method"] == "sep"
    assert written["accuracy"] == pytest.approx(metrics["accuracy"])
    assert set(written["sep"]) >= {"n_failures", "n_zero_detections", "accuracy_strict", "stamps_per_second", "settings"}
    # Completeness by companion S/N, from the set's PSF and noise, over every blend.
    assert sum(written["by_companion_snr"]["n"]) == int(stamps.column("blended").astype(bool).sum())
    table = pq.read_table(tmp_path / "sep" / "predictions.parquet").to_pandas()
    assert len(table) == 48
    assert {"id", "n_detected", "sep_blended", "sep_failure", "merged_flag", "blended", "separation_px"} <= set(table.columns)
    truth = stamps.column("blended").astype(bool)
    assert metrics["accuracy"] == pytest.approx(np.mean(table["sep_blended"].to_numpy() == truth))
    assert not [p for p in (tmp_path / "sep").iterdir() if p.name.endswith(".tmp")]
    # A view of the set works too, in several batches.
    view = stamps[np.arange(0, 48, 3)]
    assert run_sep_baseline(view, tmp_path / "sep_view", batch_size=5, predictions_format="csv")["n"] == 16
    assert (tmp_path / "sep_view" / "predictions.csv").exists()


def test_run_sep_baseline_rejects_non_blend_sets(tmp_path):
    from skysort.data.stampset import StampMeta, write_stampset
    from skysort.errors import InputError

    stamps = write_stampset(tmp_path / "s.h5", np.zeros((2, 1, 65, 65), np.float32), {"label": np.array(["star", "galaxy"])},
                            StampMeta(bands=("r",), pixel_scale=0.187))
    with pytest.raises(InputError, match="not a blend stamp set"):
        run_sep_baseline(stamps, tmp_path / "out")
