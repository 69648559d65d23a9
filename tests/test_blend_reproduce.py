"""`skysort reproduce blendhunter`: the whole experiment runs and reports (tiny sizes here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from skysort.tasks.blend_reproduce import ReproduceConfig, reproduce_blendhunter

SHARED_DATA = Path(os.environ.get("SKYSORT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="skysort reference data (../shared/data) not available")


def test_tiny_reproduction_writes_a_complete_report(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYSORT_THREADS", "1")
    monkeypatch.setenv("SKYSORT_CACHE", str(tmp_path / "cache"))
    config = ReproduceConfig.quick(sigmas=(5.0, 30.0), n_per_sigma=200, n_realistic=200, max_epochs=3, workers=1)
    report = reproduce_blendhunter(tmp_path / "out", config, single_model=None,
                                   reference_dir=SHARED_DATA / "reference" / "blendhunter", progress=False)
    text = report.read_text()
    assert "| 5 |" in text and "| 30 |" in text and "| SEP |" in text and "Published reference" in text
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [row["sigma"] for row in results["parametric"]] == [5.0, 30.0]
    assert set(results["realistic"]) == {"SEP", "paper_sigma5", "paper_sigma30"}
    assert (tmp_path / "out" / "accuracy_vs_separation_realistic.png").stat().st_size > 1000


@pytest.mark.slow
def test_quick_reproduction_from_the_command_line(tmp_path):
    from skysort.cli import main

    assert main(["reproduce", "blendhunter", "--quick", "--out", str(tmp_path / "bh"), "--quiet"]) == 0
    assert (tmp_path / "bh" / "report.md").exists()


def test_hsc_peaks_are_centred_in_their_stamps():
    from skysort.tasks.blend_reproduce import hsc_scene_stamps

    directory = SHARED_DATA / "blends" / "hsc_real_scenes"
    images, table = hsc_scene_stamps(directory)
    assert images.shape == (len(table), 1, 65, 65) and len(table) >= 10
    assert (images[:, :, :7] == 0).all() and (images[:, :, :, -7:] == 0).all()
    # For the brightest peak of each scene, the stamp's maximum sits at the centre.
    for scene in set(table["scene"]):
        rows = [i for i in range(len(table)) if table["scene"][i] == scene]
        brightest = max(rows, key=lambda i: images[i, 0, 30:35, 30:35].max())
        row, col = divmod(int(np.argmax(images[brightest, 0])), 65)
        assert abs(row - 32) <= 2 and abs(col - 32) <= 2


def test_hsc_real_pixels_with_the_shipped_model():
    from skysort.tasks.blend_reproduce import hsc_real_pixels

    table = hsc_real_pixels("blend-cfis", SHARED_DATA / "blends" / "hsc_real_scenes")
    assert np.all((table["p_blended"] >= 0) & (table["p_blended"] <= 1))
    assert np.all(table["sep_n_detected"] >= 1)
