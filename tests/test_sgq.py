"""Star / galaxy / quasar task: simulation options, training, prediction paths, evaluation, real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, require
from skysort.evaluation.magnitudes import aperture_magnitudes
from skysort.errors import InputError
from skysort.inference.predictor import MISSING_INPUT_FLAG, load_predictor
from skysort.models.registry import shipped_model_names
from skysort.simulate.simulator import SimulationConfig, simulate
from skysort.tasks import sgq

SPECPHOT = SHARED_DATA / "catalogs" / "sdss_dr17_specphot" / "dr17_random10pct.csv"


@pytest.fixture(scope="module")
def kids_small(tmp_path_factory):
    """A balanced KiDS set: r-band 32 px stamps, photometry in all nine bands."""
    out = tmp_path_factory.mktemp("sgq") / "kids.h5"
    config = SimulationConfig(survey="kids", kind="sources", seed=3, balanced=True, image_bands=("r",), stamp_size=32)
    return simulate(config, 360, out)


@pytest.fixture(scope="module")
def kids_model(kids_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("sgq_model") / "model.pt"
    record = sgq.train_sgq_model(kids_small.path, out, epochs=1, batch_size=64, progress=False, seed=0)
    return out, record


def test_simulate_image_bands_and_stamp_size(kids_small, tmp_path):
    assert kids_small.shape[1:] == (1, 32, 32)
    assert kids_small.meta.bands == ("r",)
    assert kids_small.meta.extra["photometry_bands"] == ["u", "g", "r", "i", "Z", "Y", "J", "H", "Ks"]
    assert kids_small.meta.extra["simulation"]["image_bands"] == ["r"]
    for band in ("u", "Ks"):
        assert f"mag_{band}" in kids_small.columns
    # Object i depends only on (seed, i): a shorter set holds the same first objects.
    again = simulate(SimulationConfig(survey="kids", kind="sources", seed=3, balanced=True, image_bands=("r",), stamp_size=32),
                     5, tmp_path / "again.h5", block=2)
    np.testing.assert_array_equal(again.read_images(), kids_small.read_images(np.arange(5)))
    np.testing.assert_array_equal(again.column("mag_g"), kids_small.column("mag_g", np.arange(5)))


def test_simulate_rejects_unknown_band(tmp_path):
    with pytest.raises(InputError, match="image-bands"):
        simulate(SimulationConfig(survey="sdss", image_bands=("Ks",)), 2, tmp_path / "x.h5")
    with pytest.raises(InputError, match="stamp-size"):
        SimulationConfig(survey="sdss", stamp_size=4)


def test_training_is_reproducible_from_its_seed(kids_model, kids_small, tmp_path):
    # torch seeds its default generator differently in every process, so the initial weights
    # must come from the seed too; a second run in this process starts from another RNG state.
    first, _, _ = sgq.load_sgq_model(kids_model[0])
    sgq.train_sgq_model(kids_small.path, tmp_path / "again.pt", epochs=1, batch_size=64, progress=False, seed=0)
    sgq.train_sgq_model(kids_small.path, tmp_path / "other.pt", epochs=1, batch_size=64, progress=False, seed=1)
    again, _, _ = sgq.load_sgq_model(tmp_path / "again.pt")
    other, _, _ = sgq.load_sgq_model(tmp_path / "other.pt")
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name
    assert not all(torch.equal(t, other.state_dict()[n]) for n, t in first.state_dict().items())


def test_train_records_inputs(kids_model):
    path, record = kids_model
    for key in ("n", "accuracy", "f1_star", "f1_galaxy", "f1_qso", "epochs", "seconds"):
        assert key in record
    assert record["epochs"] == 1
    network, meta, _ = sgq.load_sgq_model(path)
    assert meta["image_bands"] == ["r"]
    assert meta["photometry_bands"] == ["u", "g", "r", "i", "Z", "Y", "J", "H", "Ks"]
    assert meta["stamp_size"] == [20, 20] and meta["training_stamp_size"] == [32, 32]
    assert meta["classes"] == ["star", "galaxy", "qso"]
    assert sum(meta["training"]["class_counts"].values()) == meta["training"]["n_train"]


def test_photometry_features_mask_missing_values():
    import torch

    from skysort.models.sgq import photometry_features

    mag = torch.tensor([[20.0, float("nan"), 19.0], [21.0, 20.5, 20.0]])
    features = photometry_features(mag, torch.tensor([20.0, 20.0, 20.0]), torch.ones(3), torch.zeros(2), torch.ones(2))
    assert torch.isfinite(features).all()
    # magnitudes (3), colours (2), mask bits (3)
    assert features.shape == (2, 8)
    np.testing.assert_allclose(features[0].numpy(), [0, 0, -1, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(features[1].numpy(), [1, 0.5, 0, 0.5, 0.5, 0, 0, 0])


def test_predictor_paths(kids_model, kids_small):
    path, _ = kids_model
    predictor = load_predictor(path, device="cpu")
    assert predictor.classes == ["star", "galaxy", "qso"]
    mags = np.stack([kids_small.column(f"mag_{b}", np.arange(6)) for b in predictor.spec.photometry_bands], axis=1).astype(np.float32)
    mags[1, :3] = np.nan
    mags[2, :] = np.nan
    out = predictor.predict({"mag": mags}, images_available=False)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1, rtol=1e-5)
    assert list(out["inputs_used"]) == ["photometry", "photometry", "none", "photometry", "photometry", "photometry"]
    assert out["n_missing_bands"][1] >= 3 and out["n_missing_bands"][2] == 9
    np.testing.assert_allclose(out["probabilities"][2], 1 / 3, rtol=1e-6)
    # Larger stamps are centre-cropped; the same centre gives the same answer.
    images = kids_small.read_images(np.arange(6))
    padded = np.pad(images, ((0, 0), (0, 0), (4, 4), (4, 4)))
    a = predictor.predict({"image": images, "mag": mags})
    b = predictor.predict({"image": padded, "mag": mags})
    np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-5)
    assert a["inputs_used"][2] == "image" and a["inputs_used"][0] == "both"
    with pytest.raises(InputError, match="smaller"):
        predictor.predict({"image": images[..., :10, :10], "mag": mags})


def test_predict_api_flags_missing_photometry(kids_model, kids_small):
    path, _ = kids_model
    table = sgq.predict_sgq(path, kids_small)
    assert len(table) == len(kids_small)
    for column in ("id", "p_star", "p_galaxy", "p_qso", "class", "flags", "inputs_used"):
        assert column in table.colnames
    missing = ~np.isfinite(np.stack([kids_small.column(f"mag_{b}") for b in ("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks")], 1)).all(1)
    assert missing.any()
    flagged = (np.asarray(table["flags"]) & MISSING_INPUT_FLAG) > 0
    np.testing.assert_array_equal(flagged, missing)
    catalogue_only = sgq.predict_sgq(path, mag=np.full((2, 9), 20.0, np.float32))
    assert list(catalogue_only["inputs_used"]) == ["photometry", "photometry"]
    assert catalogue_only.meta["images_used"] is False


def test_evaluate_writes_metrics(kids_model, kids_small, tmp_path):
    path, _ = kids_model
    metrics = sgq.evaluate_sgq_model(path, kids_small.path, tmp_path / "eval", expected_class="galaxy")
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["n"] == len(kids_small)
    for name in ("star", "galaxy", "qso"):
        assert set(written["per_class"][name]) >= {"precision", "recall", "f1"}
        assert f"f1_{name}" in written
        assert written["purity_completeness"][name]["threshold"][0] == 0.0
    assert np.sum(written["confusion_matrix"]["matrix"]) == len(kids_small)
    assert written["accuracy_vs_r_mag"] and written["r_mag_source"] == "catalogue mag_r"
    predicted_galaxy = np.mean(np.asarray(sgq.predict_sgq(path, kids_small)["class"]) == "galaxy")
    assert metrics["expected_class_fraction"] == pytest.approx(predicted_galaxy)
    for plot in ("confusion_matrix.png", "purity_completeness.png", "accuracy_vs_r_mag.png", "reliability.png",
                 "predictions.parquet"):
        assert (tmp_path / "eval" / plot).stat().st_size > 0
    assert written["calibration"]["n"] == len(kids_small) and 0 <= written["calibration"]["ece"] <= 1
    # A set labelled for another task is refused before any prediction, and nothing is written.
    from skysort.data.stampset import write_stampset
    few = kids_small[:20]
    table = few.table
    table["label"] = ["blended"] * 10 + ["isolated"] * 10
    write_stampset(tmp_path / "blends.h5", few.read_images(), table, few.meta)
    with pytest.raises(InputError, match="no object has a star / galaxy / qso label .labels found: blended, isolated"):
        sgq.evaluate_sgq_model(path, tmp_path / "blends.h5", tmp_path / "eval_blends")
    assert not (tmp_path / "eval_blends").exists()


def test_class_prior_is_bayes_rule_with_the_training_balance(kids_model, kids_small, tmp_path):
    from skysort.inference.predictor import ClassDecision, parse_prior, training_class_fractions

    path, _ = kids_model
    predictor = load_predictor(path, device="cpu")
    counts = predictor.meta["training"]["class_counts"]
    weights = np.asarray(predictor.meta["training"]["class_weights"])
    trained = np.array([counts[c] for c in predictor.classes]) * weights
    np.testing.assert_allclose(training_class_fractions(predictor), trained / trained.sum())
    assert parse_prior("star=1, galaxy=6,qso=1") == {"star": 0.125, "galaxy": 0.75, "qso": 0.125}
    for bad, message in (("star=0.2,galaxy", "CLASS=FRACTION"), ("star=-1,galaxy=1,qso=1", "positive"),
                         ("star=x,galaxy=1,qso=1", "CLASS=FRACTION"), ("star=1,star=2", "twice")):
        with pytest.raises(InputError, match=message):
            parse_prior(bad)
    with pytest.raises(InputError, match="one fraction for each class"):
        ClassDecision(prior={"star": 0.5, "galaxy": 0.5}).check(predictor)

    plain = sgq.predict_sgq(path, kids_small)
    prior = {"star": 0.12, "galaxy": 0.86, "qso": 0.02}
    shifted = sgq.predict_sgq(path, kids_small, prior=prior)
    p = np.stack([np.asarray(plain[f"p_{c}"], float) for c in predictor.classes], axis=1)
    expected = p * np.array([prior[c] for c in predictor.classes]) / training_class_fractions(predictor)
    expected /= expected.sum(axis=1, keepdims=True)
    q = np.stack([np.asarray(shifted[f"p_{c}"], float) for c in predictor.classes], axis=1)
    np.testing.assert_allclose(q, expected, rtol=1e-5, atol=1e-6)
    assert np.mean(np.asarray(shifted["class"]) == "galaxy") > np.mean(np.asarray(plain["class"]) == "galaxy")
    assert shifted.meta["prior"] == prior
    # The training balance itself as the prior changes nothing.
    same = dict(zip(predictor.classes, training_class_fractions(predictor)))
    np.testing.assert_allclose(np.asarray(sgq.predict_sgq(path, kids_small, prior=same)["p_qso"]), p[:, 2], rtol=1e-5)
    metrics = sgq.evaluate_sgq_model(path, kids_small.path, tmp_path / "eval", prior=prior)
    assert metrics["prior"] == prior
    assert metrics["accuracy"] == pytest.approx(np.mean(np.asarray(shifted["class"]) == kids_small.column("label")))


def test_class_prior_estimated_from_predictions_alone():
    from skysort.inference.predictor import estimate_class_prior

    # Three classes with Gaussian likelihoods on one feature; posteriors under equal training
    # fractions are exact, so the estimate should find the mix the objects were drawn with.
    rng = np.random.default_rng(5)
    truth = np.array([0.12, 0.86, 0.02])
    classes = rng.choice(3, size=40_000, p=truth)
    x = rng.normal(np.array([-2.0, 0.0, 2.0])[classes], 1.0)
    likelihood = np.exp(-0.5 * (x[:, None] - np.array([-2.0, 0.0, 2.0])) ** 2)
    posterior = likelihood / likelihood.sum(axis=1, keepdims=True)
    estimate = estimate_class_prior(posterior, np.full(3, 1 / 3))
    np.testing.assert_allclose(estimate, truth, atol=0.01)
    assert estimate.sum() == pytest.approx(1)
    # Rows that are not finite are left out; no rows leaves the training balance.
    with_nan = np.vstack([posterior, np.full((10, 3), np.nan)])
    np.testing.assert_allclose(estimate_class_prior(with_nan, np.full(3, 1 / 3)), estimate, atol=1e-9)
    np.testing.assert_allclose(estimate_class_prior(np.zeros((0, 3)), np.array([0.2, 0.3, 0.5])), [0.2, 0.3, 0.5])


def test_class_prior_on_the_command_line(kids_model, kids_small, tmp_path, capsys):
    from skysort.cli import main
    from skysort.data.catalog import read_catalog

    path, _ = kids_model
    out = tmp_path / "pred.parquet"
    assert main(["predict", "--model", str(path), "--data", str(kids_small.path), "--out", str(out), "--quiet",
                 "--prior", "star=12,galaxy=86,qso=2"]) == 0
    table = read_catalog(out, require_positions=False)
    expected = sgq.predict_sgq(path, kids_small, prior={"star": 0.12, "galaxy": 0.86, "qso": 0.02})
    np.testing.assert_allclose(np.asarray(table["p_galaxy"]), np.asarray(expected["p_galaxy"]), rtol=1e-5)
    # A resumable run records the prior in its manifest; resuming with another is refused.
    parts = tmp_path / "parts"
    assert main(["predict", "--model", str(path), "--data", str(kids_small.path), "--out", f"{parts}/", "--quiet",
                 "--prior", "star=0.12,galaxy=0.86,qso=0.02"]) == 0
    manifest = json.loads((parts / "manifest.json").read_text())
    assert manifest["options"]["prior"] == {"star": 0.12, "galaxy": 0.86, "qso": 0.02}
    capsys.readouterr()
    assert main(["predict", "--model", str(path), "--data", str(kids_small.path), "--out", f"{parts}/", "--quiet",
                 "--prior", "star=0.3,galaxy=0.6,qso=0.1"]) == 2
    assert "prior" in capsys.readouterr().err
    for prior, fragment in (("star=0.5,galaxy=0.5", "one fraction for each class"), ("star=a", "CLASS=FRACTION")):
        bad = tmp_path / f"bad{len(prior)}.parquet"
        assert main(["predict", "--model", str(path), "--data", str(kids_small.path), "--out", str(bad), "--quiet",
                     "--prior", prior]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--prior" in err[0] and fragment in err[0]
        assert not bad.exists()
    # "auto": estimated from the set's own predictions, printed and recorded; a streamed run refuses it.
    auto = tmp_path / "auto.parquet"
    assert main(["predict", "--model", str(path), "--data", str(kids_small.path), "--out", str(auto), "--quiet", "--prior", "auto"]) == 0
    assert "class prior estimated from the predictions: star=" in capsys.readouterr().out
    estimated = sgq.predict_sgq(path, kids_small, prior="auto")
    assert estimated.meta["prior_estimated"] and sum(estimated.meta["prior"].values()) == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(np.asarray(read_catalog(auto, require_positions=False)["p_qso"]), np.asarray(estimated["p_qso"]), rtol=1e-5)
    assert main(["predict", "--model", str(path), "--data", str(kids_small.path), "--out", f"{tmp_path / 'auto_parts'}/", "--quiet",
                 "--prior", "auto"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--prior" in err[0] and "estimate it on a sample" in err[0]
    assert not (tmp_path / "auto_parts" / "manifest.json").exists()
    metrics = sgq.evaluate_sgq_model(path, kids_small.path, tmp_path / "eval_auto", prior="auto")
    assert metrics["prior_estimated"] and metrics["prior"] == estimated.meta["prior"]
    # A model file that records no training class counts cannot take a prior.
    from skysort.models.checkpoint import load_model_file, save_model_file

    meta, state = load_model_file(path)
    del meta["training"]["class_counts"]
    save_model_file(tmp_path / "no_counts.pt", state, meta)
    assert main(["predict", "--model", str(tmp_path / "no_counts.pt"), "--data", str(kids_small.path), "--out",
                 str(tmp_path / "nc.parquet"), "--quiet", "--prior", "star=0.2,galaxy=0.7,qso=0.1"]) == 2
    assert "no training class counts" in capsys.readouterr().err
    assert not (tmp_path / "nc.parquet").exists()


def test_write_model_card_from_metadata_and_metrics(kids_model, kids_small, tmp_path):
    path, record = kids_model
    sgq.evaluate_sgq_model(path, kids_small.path, tmp_path / "eval")
    metrics_path = tmp_path / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    sections = {"Accuracy vs r magnitude": sgq.magnitude_table(metrics_path),
                "Purity and completeness": sgq.purity_completeness_table(metrics_path),
                "Ablations": sgq.ablation_table({"both branches": metrics_path})}
    card = sgq.write_model_card(path, {"tiny test": metrics_path}, tmp_path / "card.md", title="tiny model",
                                notes=["a remark given by the caller"], sections=sections)
    text = card.read_text()
    assert text.startswith("# model: tiny model")
    assert f"`{kids_small.path}`" in text                              # training data from the metadata
    assert f"{100 * metrics['accuracy']:.2f}%" in text.split("| tiny test |")[1].splitlines()[0]
    assert text.count("| both branches |") == 1 and "- a remark given by the caller" in text
    assert len([line for line in text.splitlines() if line.startswith("| ") and "-" in line.split("|")[1]
                and line.split("|")[1].strip()[:2].isdigit()]) == len(metrics["accuracy_vs_r_mag"])
    assert "threshold 0.5: purity, completeness | 0.9: purity, completeness" in text
    with pytest.raises(InputError):
        sgq.write_model_card(path, {"missing": tmp_path / "nothing.json"}, tmp_path / "bad.md")
    assert not (tmp_path / "bad.md").exists()


def test_metrics_on_known_answers():
    truth = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.eye(3)[[0, 2, 1, 1, 2, 0]]
    m = sgq.sgq_metrics(truth, probabilities, r_mag=np.array([15, 16, 20, 22, 18, 19.5]))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["galaxy"]["f1"] == 1.0
    assert m["per_class"]["star"]["recall"] == 0.5
    # star <-> qso confusions keep point-source agreement
    assert m["point_extended_agreement"] == 1.0
    assert m["bright"]["n"] == 5
    assert m["confusion_matrix"]["matrix"][0] == [1, 0, 1]


def test_magnitude_balance_weights_equalise_distributions():
    rng = np.random.default_rng(0)
    # Class 0 mostly bright, class 1 mostly faint: weighted, both have the pooled distribution.
    mag = np.concatenate([rng.uniform(15, 19, 3000), rng.uniform(15, 23, 1000), rng.uniform(19, 23, 3000)])
    labels = np.repeat([0, 0, 1], [3000, 1000, 3000])
    labels[3000:4000] = np.tile([0, 1], 500)
    weights = sgq.magnitude_balance_weights(mag, labels)
    bright = mag < 19
    fractions = [np.sum(weights[(labels == c) & bright]) / np.sum(weights[labels == c]) for c in (0, 1)]
    assert fractions[0] == pytest.approx(fractions[1], abs=0.02)
    assert [np.mean(weights[labels == c]) for c in (0, 1)] == pytest.approx([1, 1])
    assert sgq.magnitude_balance_weights(np.array([np.nan, 20.0]), np.array([0, 1]))[0] == 1.0


def test_ablations_and_bad_input(kids_small, tmp_path):
    record = sgq.train_sgq_model(kids_small.path, tmp_path / "phot.pt", branches="photometry", epochs=8, batch_size=32,
                                 progress=False, seed=1, magnitude_balance=True)
    # Nine-band photometry separates the three classes far better than chance after a few epochs.
    assert record["accuracy"] > 0.6
    sgq.train_sgq_model(kids_small.path, tmp_path / "img.pt", branches="image", epochs=1, batch_size=64, progress=False)
    image_only = load_predictor(tmp_path / "img.pt", device="cpu")
    assert image_only.spec.photometry_bands == []
    with pytest.raises(InputError):
        image_only.predict({"mag": np.zeros((2, 9), np.float32)}, images_available=False)
    with pytest.raises(InputError, match="branches"):
        sgq.train_sgq_model(kids_small.path, tmp_path / "x.pt", branches="spectra", progress=False)
    with pytest.raises(InputError, match="image band"):
        sgq.train_sgq_model(kids_small.path, tmp_path / "x.pt", image_bands=["g"], progress=False)
    with pytest.raises(InputError, match="labels"):
        sgq.class_indices(["star", "planet"])
    stars = kids_small[kids_small.labels() == "star"]
    only_stars = tmp_path / "stars.h5"
    from skysort.data.stampset import write_stampset
    write_stampset(only_stars, stars.read_images(), stars.table, stars.meta)
    with pytest.raises(InputError, match=r"fewer than 2 classes \(star 1\d\d, galaxy 0, qso 0\)"):
        sgq.train_sgq_model(only_stars, tmp_path / "x.pt", epochs=1, progress=False)
    assert not (tmp_path / "x.pt").exists()


def test_fine_tune_photometry(kids_model, kids_small, tmp_path):
    path, _ = kids_model
    bands = ["u", "g", "r", "i", "Z", "Y", "J", "H", "Ks"]
    mags = np.stack([kids_small.column(f"mag_{b}") for b in bands], axis=1)
    record = sgq.fine_tune_photometry(path, mags, kids_small.column("label"), tmp_path / "tuned.pt", epochs=2)
    assert 0 <= record["accuracy"] <= 1
    _, meta, _ = sgq.load_sgq_model(tmp_path / "tuned.pt")
    assert meta["fine_tuning"]["part"] == "photometry branch and head"
    before, _, _ = sgq.load_sgq_model(path)
    after, _, _ = sgq.load_sgq_model(tmp_path / "tuned.pt")
    # Only the photometry branch moves.
    assert all(np.array_equal(a.detach().numpy(), b.detach().numpy())
               for a, b in zip(before.encoder.parameters(), after.encoder.parameters()))
    assert not all(np.array_equal(a.detach().numpy(), b.detach().numpy())
                   for a, b in zip(before.photometry.parameters(), after.photometry.parameters()))
    # A prior refers to the class balance of the fine-tuning set (unweighted here).
    from skysort.inference.predictor import training_class_fractions

    tuned = load_predictor(tmp_path / "tuned.pt", device="cpu")
    counts = meta["fine_tuning"]["class_counts"]
    assert sum(counts.values()) == meta["fine_tuning"]["n_train"]
    np.testing.assert_allclose(training_class_fractions(tuned), [counts[c] / meta["fine_tuning"]["n_train"] for c in tuned.classes])


# ---------------------------------------------------------------------------- shipped models

def _needs(name):
    if name not in shipped_model_names():
        pytest.skip(f"shipped model {name} not present")


def test_sgq_kids_on_fresh_simulation(tmp_path):
    _needs("sgq-kids")
    stamps = simulate(SimulationConfig(survey="kids", seed=4242, balanced=True, image_bands=("r",), stamp_size=32), 300, tmp_path / "k.h5")
    table = sgq.predict_sgq("sgq-kids", stamps)
    accuracy = np.mean(np.asarray(table["class"]) == stamps.column("label"))
    # Measured 99.3% on these 300 (99.2% on the card's 50,000-source test); the floor is 5 points lower.
    assert accuracy > 0.93
    # The model reads each object's seeing: told it is 30% better than it is, it sees point sources
    # wider than the PSF and calls them galaxies (measured 52% on these 300).
    understated = 0.7 * np.asarray(stamps.column("psf_fwhm_arcsec"), float)
    table = sgq.predict_sgq("sgq-kids", stamps, psf_fwhm=understated)
    assert np.mean(np.asarray(table["class"]) == stamps.column("label")) < accuracy - 0.2
    assert np.mean(np.asarray(table["class"]) == "galaxy") > 0.5


def test_sgq_sdss_photometry_on_real_spectroscopic_objects():
    _needs("sgq-sdss")
    from skysort.data.catalog import photometry_arrays, read_catalog

    table = read_catalog(require(SPECPHOT), mapping="sdss-specphot", require_positions=False)[:600]
    mags, _, _ = photometry_arrays(table, ["u", "g", "r", "i", "z"])
    out = sgq.predict_sgq("sgq-sdss", mag=mags)
    accuracy = np.mean(np.asarray(out["class"]) == np.asarray(np.ma.filled(table["label"], "")))
    # Measured 81.5% on these 600 rows (80.8% on all 18,983 unique objects, see the model card).
    assert accuracy > 0.77
    assert table.meta["ab_offsets"] == {"u": -0.04, "z": 0.02}  # SDSS magnitudes put on AB, as the model learnt
    network, meta, _ = sgq.load_sgq_model("sgq-sdss")
    assert meta["catalogue_magnitudes"]["system"] == "asinh"  # as the real SDSS catalogue


def test_predict_on_a_catalogue_puts_its_magnitudes_on_ab_as_read_catalog_does(tmp_path):
    """The sdss presets' ab_offsets (u_AB = u - 0.04, z_AB = z + 0.02) were applied by read_catalog
    (cutout, evaluate, the Python API) but not by skysort predict --catalog, so one catalogue
    got two sets of probabilities."""
    _needs("sgq-sdss")
    import pandas as pd

    from skysort.cli import main
    from skysort.data.catalog import photometry_arrays, read_catalog

    rows = pd.read_csv(require(SPECPHOT)).drop_duplicates("obj_ID").iloc[:300]
    rows.to_csv(tmp_path / "real.csv", index=False)
    assert main(["predict", "--model", "sgq-sdss", "--catalog", str(tmp_path / "real.csv"), "--mapping", "sdss-specphot",
                 "--out", str(tmp_path / "p.parquet"), "--quiet"]) == 0
    streamed = pd.read_parquet(tmp_path / "p.parquet")
    table = read_catalog(tmp_path / "real.csv", mapping="sdss-specphot", require_positions=False)
    mags, _, _ = photometry_arrays(table, ["u", "g", "r", "i", "z"])  # the table has no errors
    direct = sgq.predict_sgq("sgq-sdss", mag=mags)
    assert len(streamed) == len(table) == 300
    for name in ("p_star", "p_galaxy", "p_qso"):
        np.testing.assert_allclose(streamed[name].to_numpy(), np.asarray(direct[name]), atol=2e-6)


def test_evaluate_command_scores_a_labelled_catalogue_and_a_pure_sample(tmp_path, capsys):
    """skysort evaluate --catalog: the photometry branch on real DR17 spectroscopic objects, as
    the Python API scores it; with --expect, the fraction of a pure sample (here its stars)
    given that class, as the KiDS network was validated on Gaia stars."""
    _needs("sgq-sdss")
    import pandas as pd

    from skysort.cli import main
    from skysort.data.catalog import read_catalog

    rows = pd.read_csv(require(SPECPHOT)).drop_duplicates("obj_ID").iloc[:400]
    rows.loc[rows.index[0], ["u", "g", "r", "i", "z"]] = -9999.0  # no magnitude at all: not scored
    rows.to_csv(tmp_path / "real.csv", index=False)
    assert main(["evaluate", "--model", "sgq-sdss", "--catalog", str(tmp_path / "real.csv"), "--mapping", "sdss-specphot",
                 "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    table = read_catalog(tmp_path / "real.csv", mapping="sdss-specphot", require_positions=False)
    direct = sgq.evaluate_sgq_catalog("sgq-sdss", table, tmp_path / "direct")
    assert metrics["n"] == direct["n"] == 399 and metrics["n_without_input"] == 1
    assert metrics["accuracy"] == pytest.approx(direct["accuracy"]) and metrics["accuracy"] > 0.75
    assert (tmp_path / "eval" / "confusion_matrix.png").exists() and metrics["provenance"]["creator"].startswith("skysort")
    stars = rows[rows["class"] == "STAR"].drop(columns="class")
    stars.to_csv(tmp_path / "stars.csv", index=False)
    mapping = "id=obj_ID,mag={band},bands=u g r i z,sentinels=-9999,ab_offsets=u:-0.04 z:0.02"
    assert main(["evaluate", "--model", "sgq-sdss", "--catalog", str(tmp_path / "stars.csv"), "--mapping", mapping,
                 "--expect", "star", "--out", str(tmp_path / "pure"), "--quiet"]) == 0
    pure = json.loads((tmp_path / "pure" / "metrics.json").read_text())
    labelled = pd.read_parquet(tmp_path / "eval" / "catalog_predictions.parquet")
    star_rows = labelled[labelled["true_label"] == "star"]
    assert pure["n_expected_class_sample"] == len(star_rows)
    assert pure["expected_class_fraction"] == pytest.approx(np.mean(star_rows["class"] == "star"))
    capsys.readouterr()
    # A catalogue without labels and without --expect, a model that reads no photometry, and
    # both inputs at once are one error line each.
    for argv, fragment in ((["--model", "sgq-sdss", "--catalog", tmp_path / "stars.csv", "--mapping", mapping], "no label column"),
                           # A column that looks like the classes is named, with the mapping that reads it.
                           (["--model", "sgq-sdss", "--catalog", tmp_path / "real.csv", "--mapping", mapping],
                            "no label column: map the catalogue's class column as label (column 'class' looks like it: "
                            "label=class in the mapping)"),
                           (["--model", "blend-cfis", "--catalog", tmp_path / "stars.csv"], "applies to sgq models"),
                           (["--model", "sgq-sdss", "--catalog", tmp_path / "stars.csv", "--data", tmp_path / "x.h5"],
                            "give one of --data")):
        code = main(["evaluate", *map(str, argv), "--out", str(tmp_path / "bad"), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err


def test_missing_labels_name_the_preset_option_that_reads_them(tmp_path):
    _needs("sgq-sdss")
    from astropy.table import Table

    table = Table({"ra": [1.0], "dec": [2.0], **{f"mag_{b}": [20.0] for b in "ugriz"}, "CLASS": ["STAR"]},
                  meta={"mapping": "sdss (kind=model)"})
    with pytest.raises(InputError, match=r"column 'CLASS' looks like it: --mapping sdss:kind=model,label=CLASS\)"):
        sgq.evaluate_sgq_catalog("sgq-sdss", table, tmp_path / "e")
    del table["CLASS"]
    with pytest.raises(InputError) as info:
        sgq.evaluate_sgq_catalog("sgq-sdss", table, tmp_path / "e")
    assert "looks like" not in info.value.problem
    assert not (tmp_path / "e").exists()


def test_catalogue_evaluation_with_the_class_mix_estimated(tmp_path):
    """On real spectroscopic objects (about 60% galaxies) the mix estimated from the predictions
    leans to galaxies, is recorded, and the card table shows the row."""
    _needs("sgq-sdss")
    from skysort.data.catalog import read_catalog

    table = read_catalog(require(SPECPHOT), mapping="sdss-specphot", require_positions=False)[:600]
    balanced = sgq.evaluate_sgq_catalog("sgq-sdss", table, tmp_path / "balanced")
    mixed = sgq.evaluate_sgq_catalog("sgq-sdss", table, tmp_path / "mixed", prior="auto")
    assert balanced["prior"] is None
    assert sum(mixed["prior"].values()) == pytest.approx(1.0, abs=1e-3)
    assert mixed["prior"]["galaxy"] > 0.45 > mixed["prior"]["star"]
    summary = {"n_unique": 600, "n_test": 300, "n_fine_tune": 300, "prior_estimated": mixed["prior"],
               "simulation_only_prior_auto_accuracy": mixed["accuracy"], "test_half_simulation_only_accuracy": 0.8,
               "simulation_only_accuracy": balanced["accuracy"], "fine_tuned_accuracy": 0.85,
               **{f"{kind}_f1_{c}": 0.8 for kind in ("simulation_only", "simulation_only_prior_auto", "fine_tuned")
                  for c in sgq.CLASSES}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    rows = sgq.specphot_table(tmp_path / "summary.json")
    assert len(rows) == 6 and "class mix estimated" in rows[3] and f"{100 * mixed['accuracy']:.2f}%" in rows[3]


def test_sgq_sdss_on_real_field(sdss_stamps):
    _needs("sgq-sdss")
    table = sgq.predict_sgq("sgq-sdss", sdss_stamps)
    assert set(np.asarray(table["inputs_used"])) == {"image"}  # the field's catalogue has no magnitudes
    point = np.isin(np.asarray(table["class"]), ["star", "qso"])
    agree = point == (sdss_stamps.column("label") == "star")
    r = aperture_magnitudes(sdss_stamps.read_images()[:, list(sdss_stamps.meta.bands).index("r")],
                            sdss_stamps.meta.zero_points["r"], sdss_stamps.meta.pixel_scale)
    # Measured 81.5% overall and 96.4% for r < 21 (model card; background removed and seeing measured as cutout does);
    # floors about 5 points lower.
    assert np.mean(agree) > 0.77
    assert np.mean(agree[r < 21]) > 0.89


def test_stamps_on_another_zero_point_are_brought_to_the_models_flux_unit(kids_small, kids_model, tmp_path):
    """The same stamps in nanomaggies (AB zero point 22.5) instead of the training set's counts
    (30): the model sees identical inputs, so identical probabilities."""
    import dataclasses

    from skysort.data.stampset import write_stampset
    from skysort.inference.predictor import flux_scale

    model, _ = kids_model
    factor = 10 ** (0.4 * (30.0 - 22.5))
    meta = dataclasses.replace(kids_small.meta, flux_unit="nanomaggy", zero_points={b: 22.5 for b in kids_small.meta.zero_points})
    rescaled = write_stampset(tmp_path / "nmgy.h5", kids_small.read_images() / factor, kids_small.table, meta)
    before, after = sgq.predict_sgq(model, kids_small), sgq.predict_sgq(model, rescaled)
    np.testing.assert_allclose(np.asarray(after["p_galaxy"]), np.asarray(before["p_galaxy"]), atol=1e-4)
    assert flux_scale(["r"], {"r": 30.0}, {"r": 22.5})[0] == pytest.approx(factor, rel=1e-6)
    assert flux_scale(["r"], {"r": 30.0}, {"r": 30.0}) is None and flux_scale(["r"], {"r": 30.0}, {}) is None  # as they are


def test_freeze_keeps_a_branch_fixed(kids_small, kids_model, tmp_path):
    from skysort.models.checkpoint import load_model_file

    start, _ = kids_model
    out = tmp_path / "frozen.pt"
    sgq.train_sgq_model(kids_small.path, out, init=start, freeze=("image",), epochs=1, batch_size=64, progress=False, seed=1)
    _, before = load_model_file(start)
    meta, after = load_model_file(out)
    assert meta["training"]["frozen_branches"] == ["image"]
    image_keys = [k for k in before if k.startswith(("encoder.", "image_head."))]
    assert any("running_mean" in k for k in image_keys)  # batch-norm statistics are kept too
    for key in image_keys:
        assert np.array_equal(before[key].numpy(), after[key].numpy()), key
    changed = [k for k in before if k.startswith(("photometry.", "fused_head.")) and not np.array_equal(before[k].numpy(), after[k].numpy())]
    assert changed
    with pytest.raises(InputError, match="--init"):
        sgq.train_sgq_model(kids_small.path, tmp_path / "x.pt", freeze=("image",), epochs=1, progress=False)
    with pytest.raises(InputError, match="unknown branches"):
        sgq.train_sgq_model(kids_small.path, tmp_path / "x.pt", init=start, freeze=("pixels",), epochs=1, progress=False)


def test_freezing_the_only_branch_is_refused_in_one_line(kids_small, tmp_path):
    # A single-branch model's head belongs to its branch: fixing it leaves nothing to fit.
    start = tmp_path / "photometry.pt"
    sgq.train_sgq_model(kids_small.path, start, branches="photometry", epochs=1, batch_size=64, progress=False, seed=1)
    with pytest.raises(InputError, match="nothing left to train"):
        sgq.train_sgq_model(kids_small.path, tmp_path / "x.pt", branches="photometry", init=start,
                            freeze=("photometry",), epochs=1, progress=False)
    assert not (tmp_path / "x.pt").exists()


def test_magnitude_jitter_augmentation():
    mags = torch.tensor([[20.0, 19.0, float("nan")]] * 4000)
    augment = sgq.SGQAugmentation(mag_dropout=0.0, seed=3, mag_jitter=[0.3, 0.0, 0.1])
    out = augment({"mag": mags})["mag"]
    shift = (out - mags).numpy()
    assert abs(shift[:, 0].std() - 0.3) < 0.02 and abs(shift[:, 0].mean()) < 0.02
    assert np.all(shift[:, 1] == 0)  # a band without jitter is untouched
    assert torch.isnan(out[:, 2]).all()  # missing stays missing
    assert sgq.SGQAugmentation(mag_jitter=[0.0, 0.0, 0.0]).mag_jitter is None


def test_train_with_magnitude_jitter_records_it(kids_small, tmp_path):
    from skysort.models.checkpoint import load_model_file

    out = tmp_path / "jitter.pt"
    sgq.train_sgq_model(kids_small.path, out, branches="photometry", photometry_bands=["u", "g", "r"], epochs=1,
                        batch_size=64, progress=False, mag_jitter={"u": 0.3, "r": 0.05})
    meta, _ = load_model_file(out)
    assert meta["training"]["mag_jitter"] == {"u": 0.3, "r": 0.05}
    card = sgq.write_model_card(out, {}, tmp_path / "card.md")
    assert "mag_jitter u 0.3, r 0.05 mag" in Path(card).read_text()
    with pytest.raises(InputError, match="not photometric bands"):
        sgq.train_sgq_model(kids_small.path, tmp_path / "x.pt", branches="photometry", photometry_bands=["u", "g"],
                            epochs=1, progress=False, mag_jitter={"Ks": 0.1})
    with pytest.raises(InputError, match=">= 0"):
        sgq.train_sgq_model(kids_small.path, tmp_path / "x.pt", branches="photometry", photometry_bands=["u", "g"],
                            epochs=1, progress=False, mag_jitter={"u": -0.1})


def test_seeing_input_network_reads_the_psf_and_accepts_unknown_seeing():
    from skysort.models.sgq import SGQNet

    torch.manual_seed(0)
    plain = SGQNet(1, 0, branches="image", crop=16, softening=[1.0])
    seeing = SGQNet(1, 0, branches="image", crop=16, softening=[1.0], seeing_band="r", seeing_reference=0.7)
    assert "seeing_band" not in plain.config and seeing.config["seeing_band"] == "r"
    seeing.eval()
    images = torch.randn(4, 1, 20, 20)
    sharp = seeing({"image": images, "psf_fwhm": torch.full((4,), 0.6)})["logits"]
    blurred = seeing({"image": images, "psf_fwhm": torch.full((4,), 1.2)})["logits"]
    unknown = seeing({"image": images})["logits"]
    assert not torch.allclose(sharp, blurred)
    assert torch.isfinite(unknown).all()
    assert torch.allclose(unknown, seeing({"image": images, "psf_fwhm": torch.full((4,), float("nan"))})["logits"])


def test_seeing_augmentation_scatters_and_hides():
    fwhm = torch.full((20000,), 0.7)
    out = sgq.SGQAugmentation(mag_dropout=0.0, seed=1, seeing_dropout=0.2, seeing_jitter=0.05)({"psf_fwhm": fwhm})["psf_fwhm"]
    hidden = torch.isnan(out)
    assert abs(hidden.float().mean().item() - 0.2) < 0.02
    assert abs(torch.log(out[~hidden] / 0.7).std().item() - 0.05) < 0.005


def test_train_and_predict_with_seeing_input(kids_small, tmp_path):
    from skysort.data.seeing import object_seeing
    from skysort.models.checkpoint import load_model_file

    per_object = object_seeing(kids_small, "r")
    assert np.isfinite(per_object).all()
    np.testing.assert_allclose(per_object, kids_small.column("psf_fwhm_arcsec"), atol=1e-4)  # r is the selection band
    assert len(np.unique(per_object)) > 1  # the simulated PSF varies between objects

    out = tmp_path / "seeing.pt"
    sgq.train_sgq_model(kids_small.path, out, epochs=1, batch_size=64, progress=False, seeing_input=True)
    meta, _ = load_model_file(out)
    assert meta["architecture_config"]["seeing_band"] == "r"
    assert meta["architecture_config"]["seeing_reference"] == pytest.approx(float(np.median(per_object)), abs=1e-3)
    assert meta["psf_fwhm_range"]["r"] == [pytest.approx(per_object.min(), abs=1e-3), pytest.approx(per_object.max(), abs=1e-3)]

    table = sgq.predict_sgq(out, kids_small)
    images = kids_small.read_images()[:, [0]]
    mag = np.stack([kids_small.column(f"mag_{b}") for b in meta["photometry_bands"]], axis=1)
    by_hand = sgq.predict_sgq(out, images=images, mag=mag, psf_fwhm=per_object)
    np.testing.assert_allclose(np.asarray(table["p_star"]), np.asarray(by_hand["p_star"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(table["psf_fwhm"]), per_object)  # the seeing used, per object
    unknown = sgq.predict_sgq(out, images=images, mag=mag, psf_fwhm=np.nan)  # unknown seeing: allowed, and it matters
    assert unknown.meta["seeing"]["source"] == "unknown"
    assert not np.allclose(np.asarray(by_hand["p_galaxy"]), np.asarray(unknown["p_galaxy"]))
    # Fine-tuning keeps the seeing input of the starting model.
    again = tmp_path / "again.pt"
    sgq.train_sgq_model(kids_small.path, again, init=out, epochs=1, batch_size=64, progress=False)
    assert load_model_file(again)[0]["architecture_config"]["seeing_band"] == "r"
    with pytest.raises(InputError, match="does not read the seeing"):
        sgq.train_sgq_model(kids_small.path, tmp_path / "x.pt", init=sgq_model_without_seeing(tmp_path, kids_small),
                            branches="image", epochs=1, progress=False, seeing_input=True)


def sgq_model_without_seeing(tmp_path, stamps):
    out = tmp_path / "plain.pt"
    sgq.train_sgq_model(stamps.path, out, branches="image", epochs=1, batch_size=64, progress=False)
    return out


def test_seeing_input_needs_a_set_that_records_its_seeing(tmp_path):
    from astropy.table import Table

    from skysort.data.ingest import import_to_stampset

    rng = np.random.default_rng(0)
    path = tmp_path / "imported.h5"
    import_to_stampset(None, Table({"label": ["star", "galaxy", "qso"] * 10}), path, bands=["r"], pixel_scale=0.2,
                       array=rng.normal(size=(30, 1, 24, 24)).astype(np.float32))
    with pytest.raises(InputError, match="records no seeing"):
        sgq.train_sgq_model(path, tmp_path / "x.pt", branches="image", epochs=1, progress=False, seeing_input=True)
    # The seeing is an input of the image branch: a photometry-only model cannot take it.
    with pytest.raises(InputError, match="photometry has none"):
        sgq.train_sgq_model(path, tmp_path / "x.pt", branches="photometry", epochs=1, progress=False, seeing_input=True)


def test_python_api_takes_paths_and_checks_what_it_is_given(kids_model, kids_small, tmp_path):
    """predict_sgq: a path works like the opened set; priors are checked (text read as on the
    command line); arrays of different lengths and sentinel magnitudes are caught; the command
    line's input warnings reach Python callers."""
    import dataclasses
    import warnings

    from skysort.data.stampset import write_stampset

    path, _ = kids_model
    by_path = sgq.predict_sgq(path, kids_small.path)
    opened = sgq.predict_sgq(path, kids_small)
    np.testing.assert_array_equal(np.asarray(by_path["p_star"]), np.asarray(opened["p_star"]))
    text = sgq.predict_sgq(path, kids_small, prior="star=12,galaxy=86,qso=2")
    assert text.meta["prior"] == pytest.approx({"star": 0.12, "galaxy": 0.86, "qso": 0.02})
    for prior in ({"star": -1, "galaxy": 1, "qso": 1}, {"star": 0, "galaxy": 0, "qso": 0},
                  {"star": float("nan"), "galaxy": 1, "qso": 1}):
        with pytest.raises(InputError, match="--prior"):
            sgq.predict_sgq(path, kids_small, prior=prior)
    unnormalised = sgq.predict_sgq(path, kids_small, prior={"star": 12, "galaxy": 86, "qso": 2})
    assert unnormalised.meta["prior"] == pytest.approx(text.meta["prior"])
    images = kids_small.read_images(np.arange(20))
    bands = kids_small.meta.extra["photometry_bands"]
    mag = np.stack([kids_small.column(f"mag_{b}")[:20] for b in bands], axis=1)
    with pytest.raises(InputError, match="images 20, mag 10"):
        sgq.predict_sgq(path, images=images, mag=mag[:10], psf_fwhm=0.7)
    wild = mag.copy()
    wild[0, 0], wild[1, 1] = 99.0, -9999.0
    with pytest.warns(UserWarning, match="2 magnitude"):
        table = sgq.predict_sgq(path, mag=wild)
    reference = mag.copy()
    reference[0, 0] = reference[1, 1] = np.nan
    np.testing.assert_array_equal(np.asarray(table["p_star"]), np.asarray(sgq.predict_sgq(path, mag=reference)["p_star"]))
    assert list(table["n_missing_bands"][:2]) == [1, 1]
    # Stamps at another pixel scale: the warning `skysort predict` prints, as a Python warning.
    meta = dataclasses.replace(kids_small.meta, pixel_scale=0.4)
    coarse = write_stampset(tmp_path / "coarse.h5", kids_small.images(), kids_small.table, meta)
    with pytest.warns(UserWarning, match="pixel scale 0.4"):
        sgq.predict_sgq(path, coarse)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sgq.predict_sgq(path, kids_small, psf_fwhm=0.7)
