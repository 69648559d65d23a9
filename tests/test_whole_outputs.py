"""Experiments that write several evaluations and a summary of them (the SDSS spectroscopic
evaluation of the photometry branch, the BlendHunter reproduction) write their folder whole or
not at all; ``baseline sep`` refuses an output that would overwrite its input; ``info`` reads an
image's weight map as ``cutout`` does, chosen with the same ``--weight-hdu``."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from skysort.cli import main
from skysort.models.registry import shipped_model_names

SHARED_DATA = Path(os.environ.get("SKYSORT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SPECPHOT = SHARED_DATA / "catalogs" / "sdss_dr17_specphot" / "dr17_random10pct.csv"


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files and folders left in ``folder`` (recursively)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("skysort: error: "), err
    return lines[0]


# ----------------------------------------------------------------------------------------
# evaluate_sgq_specphot
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def specphot_tables(tmp_path_factory):
    """Two small excerpts of the real SDSS DR17 spectroscopic table (80 and 60 objects)."""
    if not SPECPHOT.is_file():
        pytest.skip("the SDSS DR17 spectroscopic table (../shared/data) is not available")
    if "sgq-sdss" not in shipped_model_names():
        pytest.skip("shipped model sgq-sdss not present")
    folder = tmp_path_factory.mktemp("specphot")
    lines = SPECPHOT.read_text().splitlines(keepends=True)
    for name, n in (("eighty.csv", 80), ("sixty.csv", 60)):
        (folder / name).write_text("".join(lines[: n + 1]))
    return folder / "eighty.csv", folder / "sixty.csv"


def test_the_spectroscopic_evaluation_is_written_whole(specphot_tables, tmp_path, monkeypatch):
    from skysort.tasks import sgq

    eighty, sixty = specphot_tables
    out = tmp_path / "specphot"
    sgq.evaluate_sgq_specphot("sgq-sdss", [eighty], out, epochs=1)
    names = {p.name for p in out.iterdir()}
    assert names == {"all", "all_prior_auto", "test_half_simulation_only", "test_half_fine_tuned", "fine_tuned.pt", "summary.json"}
    assert leftovers(tmp_path) == []
    # The fine-tuned model was scored inside the temporary folder; its metrics name it where it lies.
    metrics = json.loads((out / "test_half_fine_tuned" / "metrics.json").read_text())
    assert metrics["model"] == str(out.resolve() / "fine_tuned.pt")
    assert metrics["source_provenance"]["model_file"] == str(out.resolve() / "fine_tuned.pt")
    assert ".tmp" not in "".join(p.read_text() for p in out.rglob("*.json"))
    # So does its prediction table's metadata.
    tables = sorted(out.rglob("*.parquet"))
    assert tables and not any(b".tmp" in b"".join(pq.read_schema(p).metadata.values()) for p in tables)
    assert str(out.resolve() / "fine_tuned.pt").encode() in pq.read_schema(
        out / "test_half_fine_tuned" / "catalog_predictions.parquet").metadata[b"skysort"]

    # A rerun without fine-tuning leaves no earlier tuned model beside its summary.
    (out / "notes.txt").write_text("mine")
    summary = sgq.evaluate_sgq_specphot("sgq-sdss", [eighty], out, fine_tune=False)
    assert sorted(p.name for p in out.iterdir()) == ["all", "all_prior_auto", "notes.txt", "summary.json"]
    assert "fine_tuned_accuracy" not in summary and (out / "notes.txt").read_text() == "mine"
    before = snapshot(out)

    # Stopped before its summary, a rerun on other objects leaves the earlier evaluation as it was.
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(sgq, "fine_tune_photometry", disk_full)
        with pytest.raises(OSError, match="No space left"):
            sgq.evaluate_sgq_specphot("sgq-sdss", [sixty], out)
        with pytest.raises(OSError, match="No space left"):
            sgq.evaluate_sgq_specphot("sgq-sdss", [sixty], tmp_path / "new" / "specphot")
    assert snapshot(out) == before
    assert not (tmp_path / "new" / "specphot").exists() and leftovers(tmp_path) == []


# ----------------------------------------------------------------------------------------
# reproduce_blendhunter
# ----------------------------------------------------------------------------------------


@pytest.fixture
def cheap_paper_models(monkeypatch):
    """The paper models' training and prediction (a backbone over every stamp) replaced by a
    file and random probabilities: what is tested is where the outputs go."""
    import skysort.tasks.blend_paper as blend_paper

    def train(data_path, model_path, **kwargs):
        Path(model_path).parent.mkdir(parents=True, exist_ok=True)
        Path(model_path).write_bytes(b"model")
        return {"test_accuracy": 0.9, "test_accuracy_near_blends": 0.8, "test_accuracy_far_blends": 0.95,
                "head_training_seconds": 1.0, "model_path": str(model_path)}

    def predict(model_path, stamps, **kwargs):
        assert Path(model_path).read_bytes() == b"model"
        return np.random.default_rng(0).uniform(size=len(stamps))

    monkeypatch.setattr(blend_paper, "train_paper_model", train)
    monkeypatch.setattr(blend_paper, "predict_paper_model", predict)


def test_the_blendhunter_reproduction_is_written_whole(cheap_paper_models, tmp_path, monkeypatch):
    from skysort.tasks.blend_reproduce import ReproduceConfig, reproduce_blendhunter

    monkeypatch.setenv("SKYSORT_THREADS", "1")
    out = tmp_path / "bh"
    two = ReproduceConfig.quick(sigmas=(5.0, 30.0), n_per_sigma=40, n_realistic=40, max_epochs=1, workers=1)
    report = reproduce_blendhunter(out, two, single_model=None, progress=False)
    assert report == out / "report.md" and report.is_file()
    assert sorted(p.name for p in out.iterdir()) == ["accuracy_vs_separation_realistic.png", "data", "models", "report.md",
                                                     "results.json", "sep"]
    assert leftovers(tmp_path) == []
    results = json.loads((out / "results.json").read_text())
    # The models were trained inside the temporary folder; results.json names them where they lie.
    assert [row["model"] for row in results["parametric"]] == [str(out.resolve() / "models" / f"paper_sigma{s}.pt") for s in (5, 30)]
    assert all(".tmp" not in p.read_text() for p in out.rglob("*.json"))
    assert not any(b".tmp" in b"".join((pq.read_schema(p).metadata or {}).values()) for p in out.rglob("*.parquet"))

    # A rerun with one noise level leaves no model, set or SEP run of the other behind.
    (out / "notes.txt").write_text("mine")
    one = ReproduceConfig.quick(sigmas=(5.0,), n_per_sigma=40, n_realistic=40, max_epochs=1, workers=1)
    reproduce_blendhunter(out, one, single_model=None, progress=False)
    assert sorted(p.name for p in (out / "models").iterdir()) == ["paper_sigma5.pt"]
    assert sorted(p.name for p in (out / "sep").iterdir()) == ["parametric_sigma5", "realistic"]
    assert not (out / "data" / "parametric_sigma30.h5").exists() and (out / "notes.txt").read_text() == "mine"
    before = snapshot(out)

    # Stopped at the plot, after the sets, models and SEP runs: the earlier run stays whole.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("skysort.evaluation.blend_metrics.plot_accuracy_vs_separation", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reproduce_blendhunter(out, two, single_model=None, progress=False)
    with pytest.raises(KeyboardInterrupt):
        reproduce_blendhunter(tmp_path / "new", two, single_model=None, progress=False)
    assert snapshot(out) == before
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


# ----------------------------------------------------------------------------------------
# skysort baseline sep
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blends(tmp_path_factory):
    from skysort.simulate.simulator import SimulationConfig, simulate

    folder = tmp_path_factory.mktemp("sep_blends")
    return simulate(SimulationConfig(survey="cfis", kind="blends", seed=5, noise_sigma=5.0), 24, folder / "blends.h5",
                    block=24).path


def test_baseline_sep_refuses_to_write_over_its_stamp_set(blends, capsys):
    before = Path(blends).read_bytes()
    code, _, err = run(["baseline", "sep", "--data", blends, "--out", blends, "--quiet"], capsys)
    line = one_line_error(code, err)
    assert "blends.h5" in line and "names an input" in line
    assert Path(blends).read_bytes() == before and leftovers(Path(blends).parent) == []


# ----------------------------------------------------------------------------------------
# skysort info on an image with several weight maps
# ----------------------------------------------------------------------------------------

SHAPE = (40, 50)
DEAD = 12  # columns x < DEAD have weight 0 in WHT


@pytest.fixture
def i2d(tmp_path) -> Path:
    """A JWST-like image file: SCI beside ERR (an rms map, all pixels with data) and WHT."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [SHAPE[1] / 2 + 0.5, SHAPE[0] / 2 + 0.5]
    w.wcs.cd = [[-0.4 / 3600, 0], [0, 0.4 / 3600]]
    h = w.to_header()
    h["FILTER"] = "r"
    h["BUNIT"] = "nanomaggy"
    weight = np.ones(SHAPE, np.float32)
    weight[:, :DEAD] = 0.0
    science = np.random.default_rng(0).normal(0.0, 1.0, SHAPE).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(science, h, name="SCI"),
                  fits.ImageHDU(np.full(SHAPE, 0.5, np.float32), h, name="ERR"),
                  fits.ImageHDU(weight, h, name="WHT")]).writeto(tmp_path / "jw_r_i2d.fits")
    return tmp_path / "jw_r_i2d.fits"


def test_info_reads_the_weight_map_chosen_with_weight_hdu(i2d, blends, capsys):
    line = one_line_error(*run(["info", i2d], capsys)[::2])
    assert "(ERR, WHT)" in line and "--weight-hdu" in line
    code, stdout, _ = run(["info", i2d, "--json", "--weight-hdu", "WHT"], capsys)
    assert code == 0
    summary = json.loads(stdout)
    # The pixels cutout would take as without data, counted as it would count them.
    assert summary["weight_map"]["hdu"] == "WHT" and summary["n_nan_pixels"] == SHAPE[0] * DEAD
    code, stdout, _ = run(["info", i2d, "--json", "--weight-hdu", "none"], capsys)
    assert code == 0 and json.loads(stdout)["weight_map"] is None and json.loads(stdout)["n_nan_pixels"] == 0
    code, stdout, _ = run(["info", i2d, "--weight-hdu", "ERR"], capsys)
    assert code == 0 and "ERR" in stdout
    # Given for a file that has no weight map to choose, the option would do nothing.
    line = one_line_error(*run(["info", blends, "--weight-hdu", "WHT"], capsys)[::2])
    assert "--weight-hdu" in line and "FITS image" in line
