"""Point-source task: star vs quasar from images with spectral knowledge (encoder, GAN, fusion)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.table import Table

from conftest import SHARED_DATA, require
from skysort.errors import InputError


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    """Two small balanced SDSS point-source sets (16 px stamps, r <= 22) from different seeds."""
    from skysort.simulate.simulator import SimulationConfig, simulate

    folder = tmp_path_factory.mktemp("pointsource")
    sets = {}
    for name, seed, n in (("train", 11, 160), ("test", 12, 64)):
        config = SimulationConfig(survey="sdss", kind="pointsources", seed=seed, balanced=True, stamp_size=16, mag_max=22.0)
        sets[name] = simulate(config, n, folder / f"{name}.h5").path
    return sets


@pytest.fixture(scope="module")
def trained(tiny_sets, tmp_path_factory):
    from skysort.tasks.pointsource import train_pointsource_model

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("model") / "ps.pt"
    record = train_pointsource_model(tiny_sets["train"], out, epochs=1, patience=1, batch_size=32, progress=False, seed=3,
                                     library_stars_per_template=1)
    return out, record


def test_simulated_sets_respect_magnitude_limit_and_stamp_size(tiny_sets):
    from skysort.data.stampset import StampSet

    stamps = StampSet.open(tiny_sets["train"])
    assert stamps.shape[1:] == (5, 16, 16)
    assert np.nanmax(stamps.column("mag_true_r")) <= 22.0
    assert set(stamps.labels()) == {"star", "qso"}
    assert "spectrum" in stamps.array_names


def test_training_runs_three_stages_and_baseline(trained):
    from skysort.models.checkpoint import load_model_file

    path, record = trained
    for key in ("n", "accuracy", "f1", "encoder_f1", "feature_cosine_similarity", "epochs", "seconds", "f1_image_only"):
        assert key in record
    assert 0.0 <= record["accuracy"] <= 1.0
    assert -1.0 <= record["feature_cosine_similarity"] <= 1.0
    meta, state = load_model_file(path)
    assert meta["task"] == "pointsource" and meta["architecture"] == "PointSourceNet"
    assert set(meta["training"]["stages"]) == {"baseline", "encoder", "generator", "fusion"}
    assert meta["image_bands"] == ["u", "g", "r", "i", "z"] and meta["stamp_size"] == [16, 16]
    # The flux unit of the training stamps: stamps on other zero points are rescaled to it.
    assert meta["flux_unit"] == "nanomaggy" and meta["zero_points"] == {b: 22.5 for b in "ugriz"}
    assert any(k.startswith("baseline.") for k in state) and any(k.startswith("spectral.") for k in state)
    # The discriminator is needed for training only.
    assert not any("discriminator" in k for k in state)
    # The encoder's augmentation is recorded: it sets which real spectra the model is trusted on.
    assert meta["encoder_augmentation"] == {"coverage_loss": 0.3, "snr_range": [2.0, 10.0]}


def test_generator_is_frozen_inside_fusion(trained):
    from skysort.tasks.pointsource import load_pointsource_model

    network, _ = load_pointsource_model(trained[0])
    network.train()
    assert not network.fusion.generator.training
    assert all(not p.requires_grad for p in network.fusion.generator.parameters())


def test_evaluate_writes_required_metrics_and_plots(trained, tiny_sets, tmp_path):
    from skysort.tasks.pointsource import evaluate_pointsource_model

    metrics = evaluate_pointsource_model(trained[0], tiny_sets["test"], tmp_path / "eval")
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in ("n", "accuracy", "f1", "f1_image_only", "error_rate_reduction", "encoder_f1", "f1_true_spectral_features",
                "feature_cosine_similarity", "by_magnitude", "by_redshift", "calibration"):
        assert key in written, key
    assert written["calibration"]["n"] == 64 and set(written["calibration"]["reliability"]) == {"top_label", "star", "qso"}
    assert written["n"] == 64
    assert written["source_provenance"]["data_seed"] == 12 and len(written["source_provenance"]["model_sha256"]) == 64
    assert metrics["accuracy"] == pytest.approx(written["accuracy"])
    expected = 1 - (1 - written["accuracy"]) / (1 - written["accuracy_image_only"]) if written["accuracy_image_only"] < 1 else None
    if expected is not None:
        assert written["error_rate_reduction"] == pytest.approx(expected)
    assert sum(row["n"] for row in written["by_magnitude"]) == 64
    for name in ("features_pca.png", "f1_vs_magnitude.png", "qso_completeness_vs_redshift.png", "reliability.png",
                 "predictions.parquet"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    # The card states what the encoder was trained on, hence which real spectra it is trusted with.
    from skysort.tasks.pointsource import write_model_card

    card = write_model_card(trained[0], tmp_path / "eval" / "metrics.json", tmp_path / "card.md", test_description="tiny").read_text()
    assert ("- spectral encoder augmentation: up to 30% of the grid lost at each end, so real spectra covering at least 40% of it "
            "are within its training; half of the spectra degraded to S/N 2-10 per pixel") in card



def test_evaluate_bins_a_real_set_by_its_aperture_r_magnitude(trained, tiny_sets, tmp_path):
    """A stamp set of real objects has no true magnitudes: the magnitude breakdown then uses the
    r magnitude in a 6" aperture of the r stamps (as the sgq evaluation does), not nothing."""
    from skysort.cli import main
    from skysort.data.stampset import StampSet
    from skysort.tasks.pointsource import evaluate_pointsource_model

    simulated = StampSet.open(tiny_sets["test"])
    np.save(tmp_path / "stamps.npy", simulated.read_images())
    Table({"label": simulated.column("label")}).write(tmp_path / "objects.csv")
    real = tmp_path / "real.h5"
    assert main(["import", "--images", str(tmp_path / "stamps.npy"), "--table", str(tmp_path / "objects.csv"),
                 "--bands", "u,g,r,i,z", "--pixel-scale", str(simulated.meta.pixel_scale), "--flux-unit", "nanomaggy",
                 "--out", str(real), "--quiet"]) == 0
    imported = StampSet.open(real)
    assert not any(np.isfinite(np.asarray(imported.column(c), float)).any() for c in imported.columns if c.startswith("mag_"))
    metrics = evaluate_pointsource_model(trained[0], real, tmp_path / "eval")
    assert metrics["magnitude_source"] == "6 arcsec diameter aperture on the r stamps"
    assert 0 < sum(row["n"] for row in metrics["by_magnitude"]) <= 64
    assert (tmp_path / "eval" / "f1_vs_magnitude.png").stat().st_size > 0
    measured = pd.read_parquet(tmp_path / "eval" / "predictions.parquet")["r_mag"].to_numpy()
    true = np.asarray(simulated.column("mag_true_r"), float)
    bright = np.isfinite(measured) & (true < 20)
    assert bright.sum() > 5 and np.median(np.abs(measured[bright] - true[bright])) < 0.3
    simulated_metrics = evaluate_pointsource_model(trained[0], tiny_sets["test"], tmp_path / "eval_sim")
    assert simulated_metrics["magnitude_source"] == "simulated mag_true_r"

def test_image_only_baseline_uses_same_split_and_compares(tiny_sets, trained, tmp_path):
    from skysort.models.checkpoint import load_model_file
    from skysort.tasks.pointsource import evaluate_pointsource_model, train_pointsource_model

    out = tmp_path / "base.pt"
    record = train_pointsource_model(tiny_sets["train"], out, baseline="image-only", epochs=1, batch_size=32, progress=False, seed=3)
    meta, _ = load_model_file(out)
    full_meta, _ = load_model_file(trained[0])
    assert meta["architecture"] == "ImageClassifier"
    assert meta["training"]["n_train"] == full_meta["training"]["n_train"] and meta["normalisation"] == full_meta["normalisation"]
    assert "f1" in record
    metrics = evaluate_pointsource_model(trained[0], tiny_sets["test"], tmp_path / "eval", baseline_model=out)
    assert metrics["image_only_source"] == str(out)
    # The stand-alone baseline is itself a point-source model: it evaluates without spectral metrics.
    alone = evaluate_pointsource_model(out, tiny_sets["test"], tmp_path / "alone")
    assert alone["n"] == 64 and "encoder_f1" not in alone and "f1_image_only" not in alone


def test_predictor_needs_images_only(trained, tiny_sets, tmp_path):
    from skysort.data.stampset import StampSet, write_stampset
    from skysort.inference.predictor import load_predictor, predict_stampset

    source = StampSet.open(tiny_sets["test"])
    # A stamp set with images and no spectra, as real survey cutouts are.
    bare = write_stampset(tmp_path / "bare.h5", source.read_images(), {"id": source.column("id")}, source.meta)
    assert "spectrum" not in bare.array_names
    predictor = load_predictor(trained[0], device="cpu")
    assert predictor.classes == ["star", "qso"] and predictor.spec.image_bands == ["u", "g", "r", "i", "z"]
    table = predict_stampset(predictor, bare)
    p = np.stack([table["p_star"], table["p_qso"]], axis=1)
    assert len(table) == 64 and np.allclose(p.sum(1), 1, atol=1e-5)
    assert set(np.asarray(table["class"])) <= {"star", "qso"}
    with pytest.raises(InputError):
        predictor.predict({"image": source.read_images()}, images_available=False)
    # The training balance is recorded, so a field's star / quasar mix can be given as a prior.
    from skysort.inference.predictor import ClassDecision, training_class_fractions

    counts = predictor.meta["training"]["class_counts"]
    assert sum(counts.values()) == predictor.meta["training"]["n_train"]
    starry = predict_stampset(predictor, bare, decision=ClassDecision(prior={"star": 0.85, "qso": 0.15}))
    shift = np.array([0.85, 0.15]) / training_class_fractions(predictor)
    expected = p * shift / (p * shift).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.stack([starry["p_star"], starry["p_qso"]], axis=1), expected, rtol=1e-4, atol=1e-6)
    # Larger stamps (e.g. 64 px cutouts made for other models) are centre-cropped to the
    # training size: padding a stamp with 7 px of noise-free sky on each side changes nothing.
    images = source.read_images()
    size = images.shape[-1]
    assert predictor.spec.stamp_size_to_cut == (size, size)
    padded = np.pad(images, ((0, 0), (0, 0), (7, 7), (7, 7)))
    np.testing.assert_allclose(predictor.predict({"image": padded})["probabilities"],
                               predictor.predict({"image": images})["probabilities"], atol=1e-6)
    with pytest.raises(InputError, match="at least"):
        predictor.predict({"image": images[..., 1:, 1:]})


def test_training_rejects_sets_without_point_source_labels(tmp_path):
    from skysort.data.stampset import StampMeta, write_stampset
    from skysort.tasks.pointsource import train_pointsource_model

    meta = StampMeta(bands=("r",), pixel_scale=0.4)
    path = write_stampset(tmp_path / "g.h5", np.zeros((4, 1, 8, 8), np.float32), {"label": ["galaxy"] * 4}, meta).path
    with pytest.raises(InputError, match="point-source"):
        train_pointsource_model(path, tmp_path / "m.pt", epochs=1, progress=False)
    with pytest.raises(InputError, match="coverage_loss"):
        train_pointsource_model(path, tmp_path / "m.pt", epochs=1, progress=False, coverage_loss=0.5)
    assert not (tmp_path / "m.pt").exists()


def test_resampling_conserves_flux_and_masks_gaps():
    from skysort.simulate.spectra import SDSS_DLOGLAM, SDSS_LOGLAM0
    from skysort.data.spectra import resample_spectrum

    grid = {"loglam_start": SDSS_LOGLAM0, "loglam_step": SDSS_DLOGLAM, "n_pixels": 3840}
    # A fine linear grid of a linear spectrum: each coarse pixel gets its mean flux.
    wave = np.arange(3500.0, 9500.0, 0.4)
    flux, valid = resample_spectrum(wave, 2.0 + 1e-3 * wave, **grid)
    centres = 10 ** (SDSS_LOGLAM0 + SDSS_DLOGLAM * np.arange(3840))
    assert valid.all()
    assert np.allclose(flux, 2.0 + 1e-3 * centres, rtol=1e-4)
    # An input on the grid itself is copied; missing coverage and bad pixels are masked.
    on_grid = centres[100:2000]
    values = np.random.default_rng(0).normal(size=on_grid.size)
    good = np.ones(on_grid.size, bool)
    good[500] = False
    flux, valid = resample_spectrum(on_grid, values, good, **grid)
    assert not valid[:100].any() and not valid[2000:].any() and not valid[600]
    assert valid.sum() == on_grid.size - 1
    assert np.allclose(flux[valid], values[np.flatnonzero(valid) - 100], atol=1e-9)


def test_air_to_vacuum_matches_known_line():
    from skysort.data.spectra import air_to_vacuum

    # H-alpha: 6562.80 A in air, 6564.61 A in vacuum.
    assert air_to_vacuum(np.array([6562.80]))[0] == pytest.approx(6564.61, abs=0.02)


def test_spectrum_normalisation_ignores_brightness():
    from skysort.models.pointsource import normalise_spectra

    flux = np.abs(np.random.default_rng(1).normal(5, 1, size=(1, 300)))
    a, valid = normalise_spectra(flux)
    b, _ = normalise_spectra(flux * 1e4)
    assert valid.all() and np.allclose(a.astype(float), b.astype(float), atol=1e-3)
    flux[0, :10] = np.nan
    c, valid = normalise_spectra(flux)
    assert not valid[0, :10].any() and np.all(c[0, :10] == 0)


def _real_spectra():
    files = [(p, "star") for p in sorted((SHARED_DATA / "seds" / "stars_indo_us").glob("*.fits"))]
    files.append((SHARED_DATA / "spectra" / "sdss_real" / "spec-0332-52367-0639.fits", "qso"))
    return files


def test_shipped_model_classifies_real_spectra():
    """The shipped encoder on the real SDSS quasar (z = 0.10) and the 31 real Indo-US stars."""
    from skysort.models.registry import shipped_model_names
    from skysort.tasks.pointsource import encode_real_spectrum, load_pointsource_model, read_real_spectrum

    if "pointsource-sdss" not in shipped_model_names():
        pytest.skip("pointsource-sdss is not shipped in this build")
    require(SHARED_DATA / "seds" / "stars_indo_us")
    require(SHARED_DATA / "spectra" / "sdss_real")
    files = _real_spectra()
    assert sum(1 for _, truth in files if truth == "star") == 31
    network, meta = load_pointsource_model("pointsource-sdss")
    wrong = []
    for path, truth in files:
        spectrum = read_real_spectrum(path)
        result = encode_real_spectrum(network, spectrum["wave"], spectrum["flux"], spectrum["valid"], grid=meta["spectrum_grid"])
        assert result["coverage"] > 0.95 and result["feature"].shape == (128,)
        if result["class"] != truth:
            wrong.append((path.name, result["p_qso"]))
    assert not wrong, f"misclassified real spectra: {wrong}"


def test_magnitude_limit_is_validated(tmp_path):
    from skysort.simulate.simulator import SimulationConfig, simulate

    with pytest.raises(InputError, match="--mag-max"):
        SimulationConfig(survey="cfis", kind="blends", mag_max=22.0)
    with pytest.raises(InputError, match="--mag-max"):
        simulate(SimulationConfig(survey="sdss", kind="pointsources", mag_max=10.0, stamp_size=16), 4, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_evaluate_centre_crops_larger_stamps(trained, tiny_sets, tmp_path):
    """As predict does: stamps larger than the model's input give the same classes as the input size."""
    from skysort.data.stampset import StampSet, write_stampset
    from skysort.tasks.pointsource import evaluate_pointsource_model

    stamps = StampSet.open(tiny_sets["test"])
    padded = np.pad(stamps.read_images(np.arange(len(stamps))), ((0, 0), (0, 0), (2, 2), (2, 2)))
    larger = write_stampset(tmp_path / "larger.h5", padded, stamps.table, stamps.meta).path
    same = evaluate_pointsource_model(trained[0], tiny_sets["test"], tmp_path / "same")
    cropped = evaluate_pointsource_model(trained[0], larger, tmp_path / "cropped")
    assert cropped["accuracy"] == pytest.approx(same["accuracy"])
    assert cropped["f1_image_only"] == pytest.approx(same["f1_image_only"])


def _spectrum_files(folder, name, loglam, flux, ivar):
    """The same spectrum written in the layouts read_real_spectrum understands besides SDSS's COADD."""
    from astropy.io import fits

    n = flux.size
    # SDSS's grid: 1e-4 dex steps from a start with four decimals (loglam is stored as float32).
    coeff = {"COEFF0": round(float(loglam[0]), 4), "COEFF1": 1e-4}
    wave = 10.0 ** (coeff["COEFF0"] + coeff["COEFF1"] * np.arange(n))
    error = np.where(ivar > 0, 1 / np.sqrt(np.where(ivar > 0, ivar, 1)), 0.0)
    files = {}
    header = fits.Header(coeff)
    files["spspec"] = folder / f"spSpec-{name}.fit"
    fits.PrimaryHDU(np.stack([flux, flux * 0, error, np.zeros(n)]).astype(np.float32), header).writeto(files["spspec"])
    files["lamost-image"] = folder / f"lamost-{name}.fits"
    fits.PrimaryHDU(np.stack([flux, ivar, wave, np.zeros(n), np.zeros(n)]).astype(np.float32),
                    fits.Header({**coeff, "TELESCOP": "LAMOST", "VACUUM": True})).writeto(files["lamost-image"])
    files["lamost-table"] = folder / f"lamost-dr9-{name}.fits"
    row = fits.BinTableHDU.from_columns([fits.Column(name=c, format=f"{n}E", array=v[None, :].astype(np.float32))
                                         for c, v in (("FLUX", flux), ("IVAR", ivar), ("WAVELENGTH", wave))])
    fits.HDUList([fits.PrimaryHDU(header=fits.Header({"TELESCOP": "LAMOST"})), row]).writeto(files["lamost-table"])
    files["table"] = folder / f"table-{name}.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([
        fits.Column(name="loglam", format="D", array=np.log10(wave)), fits.Column(name="flux", format="E", array=flux),
        fits.Column(name="ivar", format="E", array=ivar)])]).writeto(files["table"])
    files["image-1d"] = folder / f"image-{name}.fits"
    fits.PrimaryHDU(flux.astype(np.float32), header).writeto(files["image-1d"])
    return files


def test_real_spectrum_layouts_of_sdss_and_lamost_give_the_coadd_result(tmp_path):
    """The real SDSS quasar written as an SDSS spSpec, both LAMOST layouts, a plain table and a 1-D
    image: read to the same wavelengths and usable pixels, and encoded to the same probability."""
    from astropy.io import fits

    from skysort.models.registry import shipped_model_names
    from skysort.tasks.pointsource import encode_real_spectrum, load_pointsource_model, read_real_spectrum

    path = require(SHARED_DATA / "spectra" / "sdss_real" / "spec-0332-52367-0639.fits")
    coadd = fits.getdata(path, "COADD")
    loglam, flux, ivar = (np.asarray(coadd[c], float) for c in ("loglam", "flux", "ivar"))
    reference = read_real_spectrum(path)
    files = _spectrum_files(tmp_path, "qso", loglam, flux, ivar)
    network, meta = (load_pointsource_model("pointsource-sdss") if "pointsource-sdss" in shipped_model_names() else (None, None))
    expected = None if network is None else encode_real_spectrum(network, reference["wave"], reference["flux"], reference["valid"],
                                                                 grid=meta["spectrum_grid"])
    for layout, file in files.items():
        got = read_real_spectrum(file)
        assert got["source"] == {"spspec": "sdss-spspec", "lamost-image": "lamost", "lamost-table": "lamost"}.get(
            layout, "linear" if layout == "image-1d" else "table"), layout
        assert np.allclose(got["wave"], reference["wave"], rtol=1e-6), layout
        assert np.allclose(got["flux"], reference["flux"], rtol=1e-6), layout
        if layout != "image-1d":  # a bare image says nothing about unusable pixels
            assert np.array_equal(got["valid"], reference["valid"]), layout
        if network is not None and layout != "image-1d":
            result = encode_real_spectrum(network, got["wave"], got["flux"], got["valid"], grid=meta["spectrum_grid"])
            assert result["class"] == expected["class"] == "qso" and result["p_qso"] == pytest.approx(expected["p_qso"], abs=1e-4)


@pytest.mark.parametrize("layout, fragment", [
    ("three rows", "neither an SDSS spSpec"),
    ("rows without grid", "without COEFF0/COEFF1"),
    ("table without flux", "no spectrum found"),
    ("1-d without axis", "without a wavelength axis"),
    ("table of several spectra", "holds 2 spectra"),
])
def test_unreadable_spectrum_layouts_are_named(tmp_path, layout, fragment):
    from astropy.io import fits

    from skysort.data.spectra import read_real_spectrum

    path = tmp_path / "s.fits"
    coeff = fits.Header({"COEFF0": 3.58, "COEFF1": 1e-4})
    if layout == "three rows":
        fits.PrimaryHDU(np.ones((3, 50), np.float32), coeff).writeto(path)
    elif layout == "rows without grid":
        fits.PrimaryHDU(np.ones((4, 50), np.float32)).writeto(path)
    elif layout == "table without flux":
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column(name="mag", format="E", array=np.ones(3))])]
                     ).writeto(path)
    elif layout == "table of several spectra":
        columns = [fits.Column(name=name, format="50E", array=np.ones((2, 50), np.float32)) for name in ("FLUX", "WAVELENGTH")]
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(path)
    else:
        fits.PrimaryHDU(np.ones(50, np.float32)).writeto(path)
    with pytest.raises(InputError, match=fragment):
        read_real_spectrum(path)


def test_spectrum_noise_reaches_the_drawn_snr_on_usable_pixels_only():
    from skysort.models.pointsource import normalise_spectra
    from skysort.tasks.pointsource import SpectrumNoise

    rng = np.random.default_rng(2)
    flux = 1.0 + rng.normal(0.0, 0.1, (64, 2000))  # S/N 10, the simulated spectra's
    values, valid = normalise_spectra(flux)
    valid[:, :100] = False
    values[:, :100] = 0
    batch = {"spectrum": torch.as_tensor(values), "spectrum_valid": torch.as_tensor(valid), "label": torch.zeros(64)}
    noisy = SpectrumNoise((3.0, 3.0), probability=1.0, seed=1)(batch)
    recovered = torch.sinh(noisy["spectrum"][:, 100:].float())
    assert noisy["spectrum"].dtype == batch["spectrum"].dtype and torch.equal(noisy["spectrum_valid"], batch["spectrum_valid"])
    assert torch.all(noisy["spectrum"][:, :100] == 0)
    assert float(recovered.median(1).values.mean()) == pytest.approx(1.0, abs=0.02)
    assert float(recovered.std(1).mean()) == pytest.approx(1 / 3, rel=0.05)
    untouched = SpectrumNoise((3.0, 3.0), probability=0.0)(batch)
    assert torch.equal(untouched["spectrum"], batch["spectrum"])
    with pytest.raises(ValueError, match="snr_range"):
        SpectrumNoise((5.0, 2.0))


def test_trained_coverage_comes_from_the_model_file():
    from skysort.tasks.pointsource import min_trained_coverage

    assert min_trained_coverage({"encoder_augmentation": {"coverage_loss": 0.3, "snr_range": [2.0, 10.0]}}) == pytest.approx(0.4)
    # Files written before the augmentation was recorded were trained with 10% lost at each end.
    assert min_trained_coverage({}) == pytest.approx(0.8)


def test_shipped_encoder_calls_independent_quasar_templates_quasars():
    """Quasar spectra the simulator never draws: the mean spectra of SDSS DR16Q quasars (DESI
    redrock), SDSS's eigenspectra, Yip et al.'s and Cristiani & Vio's composites, redshifted
    0.1-4.5 with intergalactic absorption, at S/N 10 per pixel."""
    import importlib.util

    from conftest import REPO
    from skysort.models.registry import shipped_model_names

    if "pointsource-sdss" not in shipped_model_names():
        pytest.skip("pointsource-sdss is not shipped in this build")
    require(SHARED_DATA / "seds" / "qso")
    spec = importlib.util.spec_from_file_location("templates", REPO / "benchmarks" / "pointsource_encoder_templates.py")
    templates = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(templates)
    table = templates.template_probabilities("pointsource-sdss", snr=10.0, seed=0)
    empirical = ("dr16q-lowz", "dr16q-highz", "speigen", "brodzeller", "yip", "cristiani")
    scored = {(name, z): p for name in empirical for z, p in table[name].items() if p is not None}
    assert len(scored) >= 45  # each redshift 0.1-4.5 is covered by several templates
    assert {z for _, z in scored} == set(templates.REDSHIFTS)
    missed = {key: round(p, 3) for key, p in scored.items() if p <= 0.5}
    assert not missed, f"quasar templates called stars: {missed}"


@pytest.mark.parametrize("kept", ["< 4500", "< 6000", "< 7000", "> 5000", "> 6000"])
def test_a_real_spectrum_covering_less_than_the_training_is_flagged(kept):
    """The real quasar with part of its spectrum masked: flagged, with a warning, where it covers
    less of the grid than the model's encoder was trained on; called a quasar where it does not."""
    import warnings

    from skysort.models.checkpoint import load_model_file
    from skysort.models.registry import resolve_model, shipped_model_names
    from skysort.tasks.pointsource import encode_real_spectrum, min_trained_coverage, read_real_spectrum

    if "pointsource-sdss" not in shipped_model_names():
        pytest.skip("pointsource-sdss is not shipped in this build")
    trained_on = min_trained_coverage(load_model_file(resolve_model("pointsource-sdss"))[0])
    spectrum = read_real_spectrum(require(SHARED_DATA / "spectra" / "sdss_real" / "spec-0332-52367-0639.fits"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole = encode_real_spectrum("pointsource-sdss", spectrum["wave"], spectrum["flux"], spectrum["valid"])
    assert whole["reliable"] and whole["class"] == "qso"
    side, cut = kept.split()
    part_valid = spectrum["valid"] & ((spectrum["wave"] < float(cut)) if side == "<" else (spectrum["wave"] > float(cut)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        part = encode_real_spectrum("pointsource-sdss", spectrum["wave"], spectrum["flux"], part_valid)
    if part["coverage"] < trained_on:
        assert not part["reliable"]
        assert [str(w.message) for w in caught] == [
            f"the spectrum covers {part['coverage']:.0%} of the model's wavelength grid; the encoder was trained on spectra "
            f"covering at least {trained_on:.0%}, so its class is unreliable"]
    else:
        assert part["reliable"] and not caught and part["class"] == "qso"


def test_predict_classifies_real_spectrum_files(tmp_path, capsys):
    """``skysort predict --spectra``: one row per file with the encoder's class, p_qso, the grid
    coverage and whether the encoder was trained on such coverage; the same as the Python call."""
    from astropy.io import fits
    from astropy.table import Table

    from skysort.cli import main
    from skysort.models.registry import shipped_model_names
    from skysort.tasks.pointsource import encode_real_spectrum, read_real_spectrum

    if "pointsource-sdss" not in shipped_model_names():
        pytest.skip("pointsource-sdss is not shipped in this build")
    stars = sorted((require(SHARED_DATA / "seds" / "stars_indo_us")).glob("G8*.fits"))
    quasar = require(SHARED_DATA / "spectra" / "sdss_real" / "spec-0332-52367-0639.fits")
    coadd = fits.getdata(quasar, "COADD")
    blue = np.asarray(coadd["loglam"]) < np.log10(4600.0)  # about a fifth of the grid
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(Table({c: np.asarray(coadd[c])[blue] for c in ("loglam", "flux", "ivar")}))]
                 ).writeto(tmp_path / "blue_part.fits")
    pattern = str(stars[0].parent / "G8*.fits")
    out = tmp_path / "classes.parquet"
    assert main(["predict", "--model", "pointsource-sdss", "--spectra", f"{pattern},{quasar}", "--spectra", str(tmp_path / 'blue_part.fits'),
                 "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "1 spectrum file(s) cover less of the wavelength grid than the encoder was trained on" in err
    import pandas as pd
    import pyarrow.parquet as pq

    table = Table.from_pandas(pd.read_parquet(out))
    recorded = json.loads(pq.read_schema(out).metadata[b"skysort"])
    assert recorded["min_trained_coverage"] == pytest.approx(0.8) and recorded["threshold"] == 0.5
    assert recorded["model"].endswith("pointsource-sdss.pt") and recorded["provenance"]["creator"].startswith("skysort")
    assert list(table["file"]) == [*map(str, stars), str(quasar), str(tmp_path / "blue_part.fits")]
    assert list(table["class"][:-1]) == ["star"] * len(stars) + ["qso"]
    assert list(table["reliable"]) == [True] * (len(stars) + 1) + [False]
    assert list(table["layout"]) == ["linear"] * len(stars) + ["sdss", "table"]
    assert np.allclose(table["p_star"] + table["p_qso"], 1.0)
    spectrum = read_real_spectrum(quasar)
    direct = encode_real_spectrum("pointsource-sdss", spectrum["wave"], spectrum["flux"], spectrum["valid"])
    assert table["p_qso"][len(stars)] == pytest.approx(direct["p_qso"]) and table["coverage"][len(stars)] == pytest.approx(direct["coverage"])
    # The threshold moves the decision as for images.
    strict = tmp_path / "strict.csv"
    assert main(["predict", "--model", "pointsource-sdss", "--spectra", str(quasar), "--threshold", "0.9999999", "--out", str(strict),
                 "--quiet"]) == 0
    assert list(Table.read(strict, format="ascii.ecsv")["class"]) == ["star"]


@pytest.mark.parametrize("extra, fragment", [
    (["--spectra", "NOWHERE/*.fits"], "no spectrum file matches this path or pattern"),
    (["--spectra", "{star},{bad}"], "bad.fits"),
    (["--spectra", "{star}", "--keep", "ra"], "applies to --data and --catalog"),
    (["--spectra", "{star}", "--data", "{star}"], "give exactly one of --data (a stamp set), --catalog or --spectra"),
    (["--spectra", "{star}", "--out", "{folder}/"], "not a folder"),
])
def test_predict_spectra_refuses_bad_input_with_one_line(tmp_path, capsys, extra, fragment):
    from skysort.cli import main
    from skysort.models.registry import shipped_model_names

    if "pointsource-sdss" not in shipped_model_names():
        pytest.skip("pointsource-sdss is not shipped in this build")
    star = sorted(require(SHARED_DATA / "seds" / "stars_indo_us").glob("*.fits"))[0]
    (tmp_path / "bad.fits").write_text("not a FITS file")
    names = {"star": star, "bad": tmp_path / "bad.fits", "folder": tmp_path / "parts"}
    args = [a.format(**names) for a in extra]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "classes.parquet")]
    code = main(["predict", "--model", "pointsource-sdss", *args, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "classes.parquet").exists() and not (tmp_path / "parts").exists()
