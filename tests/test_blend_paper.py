"""BlendHunter reproduction: feature cache, paper head, train / predict end to end."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from skysort.data.stampset import StampMeta, StampSet, write_stampset
from skysort.models.checkpoint import load_model_file
from skysort.models.heads import PaperHead, binary_loss
from skysort.simulate.blends import make_blend_stamps
from skysort.tasks import blend_paper
from skysort.training import features as feature_module
from skysort.training.module import TaskModule, fit

warnings.filterwarnings("ignore", ".*does not have many workers.*")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One torch thread: these tiny batches gain nothing from more, and on a loaded shared CPU
    multi-threaded oneDNN kernels stall waiting for descheduled threads."""
    monkeypatch.setenv("SKYSORT_THREADS", "1")


@pytest.fixture(scope="module")
def blend_set(tmp_path_factory):
    """300 parametric CFIS-like blend stamps (sigma 14.5 counts), central 33 x 33 px.

    Cropped from 65 x 65 to keep the backbone passes of these tests 4 times cheaper; every code
    path is the same for any stamp size >= 32 px.
    """
    images, truth = make_blend_stamps(300, seed=5, noise_sigma=14.5)
    images = np.ascontiguousarray(images[:, :, 16:49, 16:49])
    table = {name: np.asarray(truth[name]) for name in ("blended", "separation_px", "near")}
    table.update(id=np.arange(300), ra=np.zeros(300), dec=np.zeros(300), x=np.full(300, 32.0), y=np.full(300, 32.0),
                 label=np.where(truth["blended"], "blended", "isolated"), flags=np.zeros(300, np.uint32),
                 noise_sigma=np.full(300, 14.5))
    meta = StampMeta.with_provenance(bands=("r",), pixel_scale=0.187, flux_unit="count", survey="cfis", seed=5)
    path = tmp_path_factory.mktemp("blends") / "blends.h5"
    write_stampset(path, images, table, meta)
    return path


def test_split_sizes_follow_the_paper():
    train, val, test = blend_paper.split_indices(80_000, seed=0)
    assert (len(train), len(val), len(test)) == (36_000, 36_000, 8_000)
    assert len(np.unique(np.concatenate([train, val, test]))) == 80_000


def test_feature_cache_is_reused(blend_set, tmp_path, monkeypatch):
    stamps = StampSet.open(blend_set)[:16]
    first = feature_module.cached_features(stamps, "efficientnet-lite0", cache_dir=tmp_path, progress=False)
    assert first.computed and first.features.shape == (16, 1280) and np.isfinite(first.features).all()
    mtime = first.path.stat().st_mtime_ns

    calls = []
    original = feature_module.compute_features
    monkeypatch.setattr(feature_module, "compute_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    again = feature_module.cached_features(stamps, "efficientnet-lite0", cache_dir=tmp_path, progress=False)
    assert not again.computed and calls == [] and again.path == first.path
    assert again.path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.features, first.features)

    # Another input transform or another row selection is another cache entry.
    other = feature_module.cached_features(stamps, "efficientnet-lite0", input_mode="float", cache_dir=tmp_path, progress=False)
    assert other.computed and other.path != first.path
    subset = feature_module.cached_features(StampSet.open(blend_set)[:8], "efficientnet-lite0", cache_dir=tmp_path, progress=False)
    assert subset.computed and subset.path != first.path
    np.testing.assert_allclose(subset.features, first.features[:8], rtol=1e-4, atol=1e-5)


def test_paper_head_learns_separable_features():
    rng = np.random.default_rng(0)
    n, dim = 800, 64
    labels = (rng.random(n) < 0.5).astype(np.float32)
    feats = rng.normal(size=(n, dim)).astype(np.float32)
    feats[:, :4] += 2.5 * (2 * labels[:, None] - 1)
    head = PaperHead(dim)
    assert [type(m).__name__ for m in head.layers] == ["Flatten", "Linear", "Dropout", "Linear", "ReLU", "Linear"]
    assert head.layers[1].out_features == 256 and head.layers[3].out_features == 1024
    train = blend_paper._feature_batches(feats[:500], labels[:500])
    val = blend_paper._feature_batches(feats[500:], labels[500:])
    module = TaskModule(head, binary_loss, blend_paper.paper_optim())
    with feature_module.all_cores():
        result = fit(module, blend_paper._loader(train, 250, True, 0), blend_paper._loader(val, 400, False, 0),
                     max_epochs=8, patience=10, progress=False, accelerator="cpu")
    logits = blend_paper._predict_logits(head, blend_paper._loader(val, 400, False, 0))
    assert result["epochs"] >= 1
    assert np.mean((logits > 0) == (labels[500:] > 0.5)) > 0.95


def test_train_and_predict_paper_model(blend_set, tmp_path, capsys):
    model_path = tmp_path / "paper.pt"
    metrics = blend_paper.train_paper_model(blend_set, model_path, max_epochs=2, seed=1, cache_dir=tmp_path / "cache",
                                            progress=False)
    assert metrics["split_sizes"] == {"train": 135, "validation": 135, "test": 30}
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["epochs"] == 2

    meta, state = load_model_file(model_path)
    assert meta["task"] == "blend" and meta["architecture"] == "paper-head"
    assert meta["classes"] == ["isolated", "blended"]
    assert meta["backbone"]["name"] == "efficientnet-lite0" and meta["backbone"]["weights_id"].startswith("sha256:")
    assert meta["backbone"]["input_mode"] == "paper8bit" and meta["backbone"]["weights_source"] == "package"
    assert meta["stamp_size"] == [33, 33] and meta["pixel_scale"] == pytest.approx(0.187)
    assert meta["training"]["seed"] == 1 and meta["training"]["data"][0].endswith("blends.h5")
    assert meta["training"]["split_sizes"]["test"] == 30 and meta["training"]["seconds"] > 0
    assert "test_accuracy" in meta["metrics"] and meta["training"]["noise_sigma"] == 14.5
    assert not any(k.startswith("backbone.") for k in state)  # package weights are not copied

    prob = blend_paper.predict_paper_model(model_path, blend_set)
    assert prob.shape == (300,) and np.all((prob >= 0) & (prob <= 1))
    # A stamp without a finite pixel gets no probability, as from a BlendNet model.
    from skysort.tasks.blend import predict_any_blend_model

    stamps = StampSet.open(blend_set)
    images = stamps.images()
    images[:2] = np.nan
    table = predict_any_blend_model(model_path, write_stampset(tmp_path / "blank.h5", images, stamps.table, stamps.meta))
    assert np.isnan(table["p_blended"][:2]).all() and np.isfinite(table["p_blended"][2:]).all()
    assert list(table["n_sources"][:2]) == [0, 0] and not table["blended"][:2].any()

    # What the command line cannot do with it is refused before any warning about the stamps.
    from skysort.cli import main

    capsys.readouterr()
    for extra, fragment in ((["--prior", "isolated=0.5,blended=0.5", "--out", str(tmp_path / "p.csv")], "--prior: not available"),
                            (["--out", f"{tmp_path / 'parts'}/"], "--out: model")):
        assert main(["predict", "--model", str(model_path), "--data", str(blend_set), "--quiet", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("skysort: error: ") and fragment in err, err
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "parts").exists()

    # A model whose recorded backbone identity no longer matches is refused.
    torch.save({"skysort_model": {**meta, "backbone": {**meta["backbone"], "weights_id": "sha256:0"}}, "state_dict": state},
               tmp_path / "tampered.pt")
    with pytest.raises(Exception, match="weights differ"):
        blend_paper.predict_paper_model(tmp_path / "tampered.pt", blend_set)


def test_fine_tune_top_block(blend_set, tmp_path):
    stamps = StampSet.open(blend_set)
    small = tmp_path / "small.h5"
    view = stamps[:40]
    write_stampset(small, view.images(), {name: view.column(name) for name in view.columns}, stamps.meta)
    model_path = tmp_path / "ft.pt"
    metrics = blend_paper.train_paper_model(small, model_path, max_epochs=1, fine_tune_top=True, fine_tune_epochs=1,
                                            cache_dir=tmp_path / "cache", progress=False)
    assert metrics["fine_tune"]["epochs"] == 1
    meta, state = load_model_file(model_path)
    assert meta["backbone"]["fine_tuned_top"]
    tuned = [k for k in state if k.startswith("backbone.")]
    assert tuned and all("_blocks.15." in k or "_conv_head" in k or "_bn1" in k for k in tuned)
    prob = blend_paper.predict_paper_model(model_path, small)
    assert prob.shape == (40,) and np.all((prob >= 0) & (prob <= 1))
