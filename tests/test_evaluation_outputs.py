"""An evaluation's output folder appears whole or not at all, and a pure sample (``--expect``) is
scored alike from a stamp set and from a catalogue."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from skysort.cli import main
from skysort.data.catalog import write_catalog
from skysort.data.stampset import StampSet, write_stampset


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files and folders left in ``folder`` (recursively)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Small simulated sets: SDSS sources (labelled, and the same unlabelled as stamps and as a
    catalogue of their magnitudes), SDSS point sources and CFIS blends."""
    from skysort.simulate.simulator import SimulationConfig, simulate

    folder = tmp_path_factory.mktemp("evaluation_outputs")
    sources = simulate(SimulationConfig(survey="sdss", kind="sources", seed=6, stamp_size=20), 30, folder / "sources.h5")
    table = sources.table
    table.remove_column("label")
    unlabelled = write_stampset(folder / "unlabelled.h5", sources.read_images(np.arange(len(sources))), table, sources.meta)
    write_catalog(table[["id", *(f"mag_{b}" for b in "ugriz")]], folder / "unlabelled.parquet")
    labelled = sources.table[["id", "label", *(f"mag_{b}" for b in "ugriz")]]
    write_catalog(labelled, folder / "labelled.parquet")
    points = simulate(SimulationConfig(survey="sdss", kind="pointsources", seed=12, balanced=True, stamp_size=20, mag_max=22.0),
                      24, folder / "points.h5")
    blends = simulate(SimulationConfig(survey="cfis", kind="blends", seed=5, noise_sigma=5.0), 24, folder / "blends.h5", block=24)
    return {"sources": sources.path, "unlabelled": unlabelled.path, "catalog": folder / "unlabelled.parquet",
            "labelled_catalog": folder / "labelled.parquet", "points": points.path, "blends": blends.path}


def _evaluate(kind: str, sets, out: Path) -> None:
    """One evaluation of each kind, through its Python function."""
    if kind == "sgq":
        from skysort.tasks.sgq import evaluate_sgq_model

        evaluate_sgq_model("sgq-sdss", sets["sources"], out)
    elif kind == "sgq-catalog":
        from skysort.data.catalog import read_catalog
        from skysort.tasks.sgq import evaluate_sgq_catalog

        evaluate_sgq_catalog("sgq-sdss", read_catalog(sets["labelled_catalog"], require_positions=False), out)
    elif kind == "blend":
        from skysort.tasks.blend import evaluate_blend_model

        evaluate_blend_model("blend-cfis", sets["blends"], out)
    elif kind == "pointsource":
        from skysort.tasks.pointsource import evaluate_pointsource_model

        evaluate_pointsource_model("pointsource-sdss", sets["points"], out)
    else:
        from skysort.baselines.sep_blend import run_sep_baseline

        run_sep_baseline(StampSet.open(sets["blends"]), out)


@pytest.mark.parametrize("kind", ["sgq", "sgq-catalog", "blend", "pointsource", "sep"])
def test_an_evaluation_that_fails_midway_leaves_no_folder(kind, sets, tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    # metrics.json is written after other files (predictions, plots, the SEP baseline's folder).
    with monkeypatch.context() as patch:
        patch.setattr("skysort.evaluation.blend_metrics.write_metrics_json", disk_full)
        with pytest.raises(OSError, match="No space left"):
            _evaluate(kind, sets, tmp_path / "deeper" / "failed")
    assert not (tmp_path / "deeper" / "failed").exists()
    assert leftovers(tmp_path) == []
    _evaluate(kind, sets, tmp_path / "done")
    assert (tmp_path / "done" / "metrics.json").is_file() and leftovers(tmp_path) == []
    from skysort.evaluation import EVALUATION_OUTPUTS

    # Every name an evaluation writes is known, so that a rerun can replace it.
    assert {p.name for p in (tmp_path / "done").iterdir()} <= EVALUATION_OUTPUTS


def test_an_interrupted_rerun_leaves_the_earlier_evaluation_as_it_was(sets, tmp_path, monkeypatch):
    from skysort.tasks.sgq import evaluate_sgq_model

    out = tmp_path / "eval"
    evaluate_sgq_model("sgq-sdss", sets["sources"], out)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    assert "confusion_matrix.png" in before

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # Ctrl-C while the plots are drawn, after metrics.json and the predictions.
    monkeypatch.setattr("skysort.evaluation.plots._save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate_sgq_model("sgq-sdss", sets["sources"], out, prior="auto")
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []


def test_a_rerun_replaces_the_earlier_outputs_and_keeps_other_files(sets, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", "sgq-sdss", "--data", str(sets["sources"]), "--out", str(out), "--quiet"]) == 0
    assert (out / "confusion_matrix.png").is_file()
    (out / "notes.txt").write_text("mine")
    (out / "extra").mkdir()
    (out / "extra" / "table.csv").write_text("a,b\n1,2\n")
    (out / "link").symlink_to("notes.txt")
    mode = out.stat().st_mode
    # A pure sample has no confusion matrix, purity or reliability to plot: the earlier run's
    # plots must not stay beside the new metrics.
    assert main(["evaluate", "--model", "sgq-sdss", "--data", str(sets["unlabelled"]), "--expect", "star",
                 "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["expected_class_fraction_vs_r_mag.png", "extra", "link", "metrics.json",
                                                      "notes.txt", "predictions.parquet"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "extra" / "table.csv").read_text() == "a,b\n1,2\n"
    assert os.readlink(out / "link") == "notes.txt"
    assert json.loads((out / "metrics.json").read_text())["expected_class"] == "star"
    assert out.stat().st_mode == mode and leftovers(tmp_path) == []


def test_the_temporary_folder_goes_on_termination_and_a_linked_folder_stays_a_link(tmp_path):
    from skysort._io import _TEMPORARIES, discard_temporaries
    from skysort.evaluation import evaluation_folder

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "eval").symlink_to(tmp_path / "elsewhere")
    with evaluation_folder(tmp_path / "eval") as folder:
        (folder / "metrics.json").write_text("{}")
        assert folder.parent == tmp_path and folder in _TEMPORARIES
    assert (tmp_path / "eval").is_symlink() and (tmp_path / "elsewhere" / "metrics.json").is_file()
    with pytest.raises(FileNotFoundError):
        with evaluation_folder(tmp_path / "new") as folder:
            (folder / "metrics.json").write_text("{}")
            discard_temporaries()  # what SIGTERM does
            assert not folder.exists()
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


def test_a_pure_sample_is_scored_alike_from_stamps_and_from_a_catalogue(sets, tmp_path, capsys):
    import pandas as pd

    common = ["--model", "sgq-sdss", "--expect", "star", "--quiet"]
    assert main(["evaluate", *common, "--data", str(sets["unlabelled"]), "--out", str(tmp_path / "stamps")]) == 0
    assert main(["evaluate", *common, "--catalog", str(sets["catalog"]), "--out", str(tmp_path / "catalog")]) == 0
    n = len(StampSet.open(sets["unlabelled"]))
    for folder, predictions in (("catalog", "catalog_predictions.parquet"), ("stamps", "predictions.parquet")):
        metrics = json.loads((tmp_path / folder / "metrics.json").read_text())
        table = pd.read_parquet(tmp_path / folder / predictions)
        # The expected class is no label: nothing but the fraction given it is scored.
        assert metrics["n"] == 0 and metrics["n_unlabelled"] == n, folder
        assert metrics["accuracy"] is None and metrics["f1_star"] is None and metrics["point_extended_agreement"] is None
        assert metrics["confusion_matrix"]["matrix"] == [] and metrics["purity_completeness"] == {} and not metrics["calibration"]
        assert not (table["true_label"] != "").any()
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == sorted(
            ["metrics.json", predictions, "expected_class_fraction_vs_r_mag.png"])
        assert metrics["n_labelled_other_class"] == {}
        assert metrics["n_expected_class_sample"] == n
        assert metrics["expected_class_fraction"] == pytest.approx(np.mean(table["class"] == "star"))
        bins = metrics["expected_class_fraction_vs_r_mag"]
        assert sum(row["n"] for row in bins) == n
        assert sum(row["n"] * row["fraction"] for row in bins) == pytest.approx(np.sum(table["class"] == "star"))
    capsys.readouterr()
    # Objects that carry labels are scored against them, from stamps and catalogue alike; labels
    # of another class than the expected one say the sample is not pure.
    labels = StampSet.open(sets["sources"]).column("label").astype(str)
    others = {c: int(np.sum(labels == c)) for c in ("galaxy", "qso") if np.any(labels == c)}
    assert others, "the labelled set should hold more than stars"
    for folder, option, path in (("labelled_stamps", "--data", sets["sources"]),
                                 ("labelled_catalog", "--catalog", sets["labelled_catalog"])):
        assert main(["evaluate", *common, option, str(path), "--out", str(tmp_path / folder)]) == 0
        err = " ".join(capsys.readouterr().err.split())
        assert f"{sum(others.values())} of the {n} objects are labelled as another class than --expect star" in err
        metrics = json.loads((tmp_path / folder / "metrics.json").read_text())
        assert metrics["n"] == n and metrics["accuracy"] is not None and metrics["n_expected_class_sample"] == n
        assert metrics["n_labelled_other_class"] == others
