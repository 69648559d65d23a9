"""The single-model blend classifier: augmentation geometry, noise handling, train / predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skysort.data.stampset import StampMeta, write_stampset
from skysort.errors import InputError
from skysort.models.blend import BlendNet, noise_normalise
from skysort.tasks.blend import BlendAugmentation, dihedral_offsets, load_blend_model, predict_blends, train_blend_model


def test_offsets_follow_the_image_transforms():
    """A bright pixel at the companion offset ends where the transformed offset says."""
    size, centre = 65, 32
    rng = np.random.default_rng(0)
    for _ in range(20):
        dx, dy = rng.integers(-20, 21, 2)
        image = torch.zeros(1, 1, size, size)
        image[0, 0, centre + dy, centre + dx] = 1.0
        for k in range(4):
            for flip in (False, True):
                out = torch.rot90(image, k, dims=(-2, -1))
                out = torch.flip(out, dims=(-1,)) if flip else out
                row, col = np.unravel_index(int(out.argmax()), (size, size))
                predicted = dihedral_offsets(torch.tensor([[float(dx), float(dy)]]), torch.tensor([k]), torch.tensor([flip]))[0]
                assert (col - centre, row - centre) == (predicted[0].item(), predicted[1].item())


def test_augmentation_reaches_the_target_noise_and_keeps_the_padding():
    images = torch.zeros(400, 1, 65, 65)
    images[..., 7:-7, 7:-7] = 5.0 * torch.randn(400, 1, 51, 51)
    batch = {"image": images, "noise_sigma": torch.full((400,), 5.0), "offset": torch.zeros(400, 2), "blended": torch.zeros(400)}
    out = BlendAugmentation(noise_range=(20.0, 20.0), seed=1)(batch)
    assert torch.all(out["image"][..., :7, :] == 0) and torch.all(out["image"][..., :, -7:] == 0)
    assert out["image"][..., 7:-7, 7:-7].std().item() == pytest.approx(20.0, rel=0.02)
    assert torch.all(batch["image"] == images)  # the input batch is not modified


def test_noise_normalisation_is_in_units_of_the_stamp_noise():
    images = torch.zeros(3, 1, 65, 65)
    for i, sigma in enumerate((5.0, 14.5, 35.0)):
        images[i, :, 7:-7, 7:-7] = sigma * torch.randn(1, 51, 51)
    normalised = noise_normalise(images)
    region = normalised[..., 7:-7, 7:-7]
    spread = [float(torch.sinh(region[i]).std()) for i in range(3)]
    assert spread == pytest.approx([1.0, 1.0, 1.0], rel=0.1)


def make_blend_set(path, n=240, seed=0):
    """Tiny synthetic blends: a Gaussian galaxy at the centre, a second one where blended."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:65, :65]
    images = np.zeros((n, 1, 65, 65), np.float32)
    blended = rng.random(n) < 0.5
    dx = np.where(blended, rng.integers(8, 18, n) * rng.choice([-1, 1], n), np.nan)
    dy = np.where(blended, rng.integers(-10, 10, n), np.nan)
    for i in range(n):
        stamp = 400 * np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / 8.0)
        if blended[i]:
            stamp += 300 * np.exp(-((xx - 32 - dx[i]) ** 2 + (yy - 32 - dy[i]) ** 2) / 8.0)
        stamp[7:-7, 7:-7] += rng.normal(0, 5, (51, 51))
        stamp[:7] = stamp[-7:] = 0
        stamp[:, :7] = stamp[:, -7:] = 0
        images[i, 0] = stamp
    table = {"label": np.where(blended, "blended", "isolated"), "blended": blended, "companion_dx": dx, "companion_dy": dy,
             "noise_sigma": np.full(n, 5.0, np.float32), "separation_px": np.hypot(dx, dy)}
    meta = StampMeta(bands=("r",), pixel_scale=0.187, flux_unit="count", survey="cfis", seed=seed)
    return write_stampset(path, images, table, meta)


def test_train_save_load_and_predict(tmp_path):
    stamps = make_blend_set(tmp_path / "train.h5")
    record = train_blend_model(tmp_path / "train.h5", tmp_path / "model.pt", epochs=6, batch_size=32, noise_range=(3.0, 10.0), lr=5e-3,
                               widths=(8, 16, 32, 32), progress=False, seed=0)
    assert record["epochs"] >= 1 and len(record["history"]) == record["epochs"]
    network, meta = load_blend_model(tmp_path / "model.pt")
    assert isinstance(network, BlendNet) and meta["task"] == "blend" and meta["classes"] == ["isolated", "blended"]
    assert meta["training"]["n_train"] + meta["training"]["n_val"] == len(stamps)
    # The class balance p_blended refers to is recorded (--prior needs it).
    counts = meta["training"]["class_counts"]
    assert set(counts) == {"isolated", "blended"} and sum(counts.values()) == meta["training"]["n_train"]
    table = predict_blends(tmp_path / "model.pt", stamps)
    assert len(table) == len(stamps)
    assert np.all((table["p_blended"] >= 0) & (table["p_blended"] <= 1))
    assert np.all(np.isnan(table["companion_dx"][~table["blended"]]))
    # Easy, bright blends: even a few epochs of a tiny network separate them well above chance
    # (the exact figure moves with the number of torch threads, hence the margin).
    assert np.mean(table["blended"] == stamps.column("blended").astype(bool)) > 0.7
    # A path works like the opened set; a set with more bands gives the model its own band.
    by_path = predict_blends(tmp_path / "model.pt", tmp_path / "train.h5")
    np.testing.assert_array_equal(np.asarray(by_path["p_blended"]), np.asarray(table["p_blended"]))
    assert str(by_path["companion_dx"].unit) == "pix"
    images = stamps.images()
    three = write_stampset(tmp_path / "gri.h5", np.concatenate([images * 0, images, images * 0], axis=1), stamps.table,
                           StampMeta(bands=("g", "r", "i"), pixel_scale=0.187, flux_unit="count"))
    np.testing.assert_allclose(np.asarray(predict_blends(tmp_path / "model.pt", three)["p_blended"]),
                               np.asarray(table["p_blended"]), atol=1e-6)
    only_g = write_stampset(tmp_path / "g.h5", images, stamps.table, StampMeta(bands=("g",), pixel_scale=0.187))
    with pytest.raises(InputError, match=r"no image band\(s\) \[.r.\]"):
        predict_blends(tmp_path / "model.pt", only_g)
    with pytest.raises(InputError, match="threshold"):
        predict_blends(tmp_path / "model.pt", stamps, threshold=50)


def test_shipped_blend_model_works_by_name(tmp_path, capsys):
    from skysort.cli import main
    from skysort.models.registry import list_models

    names = [row["name"] for row in list_models()]
    assert "blend-cfis" in names
    row = next(r for r in list_models() if r["name"] == "blend-cfis")
    assert row["size_mb"] < 20 and row["card"] and row["task"] == "blend"
    stamps = make_blend_set(tmp_path / "s.h5", n=40)
    assert main(["predict", "--model", "blend-cfis", "--data", str(tmp_path / "s.h5"), "--out", str(tmp_path / "p.parquet"), "--quiet"]) == 0
    from skysort.data.catalog import read_catalog

    table = read_catalog(tmp_path / "p.parquet", require_positions=False)
    assert len(table) == len(stamps) and "p_blended" in table.colnames
    assert main(["models", "list"]) == 0 and "blend-cfis" in capsys.readouterr().out


def test_training_is_reproducible_from_its_seed(tmp_path):
    make_blend_set(tmp_path / "train.h5", n=80)
    for name in ("a", "b"):
        train_blend_model(tmp_path / "train.h5", tmp_path / f"{name}.pt", epochs=1, batch_size=32, widths=(4, 8, 8, 8),
                          progress=False, seed=2)
    a, _ = load_blend_model(tmp_path / "a.pt")
    b, _ = load_blend_model(tmp_path / "b.pt")
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name


def test_the_decision_can_be_set_to_a_false_positive_rate_on_a_validation_set(tmp_path):
    """--false-positive-rate with --val: the blend logit's bias moves so that p_blended > 0.5
    calls that share of the validation set's isolated stamps blended; the ranking is kept."""
    make_blend_set(tmp_path / "train.h5", n=120)
    make_blend_set(tmp_path / "val.h5", n=400, seed=9)
    common = dict(epochs=1, batch_size=32, widths=(4, 8, 8, 8), progress=False, seed=2, val_data=tmp_path / "val.h5")
    plain = train_blend_model(tmp_path / "train.h5", tmp_path / "plain.pt", **common)
    record = train_blend_model(tmp_path / "train.h5", tmp_path / "set.pt", false_positive_rate=0.1, **common)
    assert record["val_false_positive_rate"] == pytest.approx(0.1, abs=0.02)
    assert record["val_false_positive_rate"] != pytest.approx(plain["val_false_positive_rate"], abs=1e-6)
    a, _ = load_blend_model(tmp_path / "plain.pt")
    b, meta = load_blend_model(tmp_path / "set.pt")
    calibration = meta["training"]["decision_calibration"]
    assert calibration["false_positive_rate"] == 0.1 and calibration["n_isolated"] > 100
    assert float((b.blend.bias - a.blend.bias).detach()) == pytest.approx(-calibration["logit_shift"], rel=1e-5)
    with pytest.raises(InputError, match="--val"):
        train_blend_model(tmp_path / "train.h5", tmp_path / "x.pt", epochs=1, batch_size=32, widths=(4, 8, 8, 8),
                          progress=False, false_positive_rate=0.05)


def test_fine_tuning_starts_from_the_given_model(tmp_path):
    make_blend_set(tmp_path / "train.h5", n=120)
    train_blend_model(tmp_path / "train.h5", tmp_path / "base.pt", epochs=1, batch_size=32, widths=(8, 16, 32, 32), progress=False)
    base, _ = load_blend_model(tmp_path / "base.pt")
    # lr 0: the fine-tuned weights must be exactly the starting ones, whatever widths says.
    train_blend_model(tmp_path / "train.h5", tmp_path / "tuned.pt", epochs=1, batch_size=32, lr=0.0, init=tmp_path / "base.pt",
                      widths=(4, 4, 4, 4), progress=False)
    tuned, meta = load_blend_model(tmp_path / "tuned.pt")
    assert list(meta["architecture_config"]["widths"]) == [8, 16, 32, 32]
    assert meta["training"]["init"]["model"] == str(tmp_path / "base.pt")
    # Weights only: batch-norm running statistics legitimately move during training.
    tuned_parameters = dict(tuned.named_parameters())
    for name, tensor in base.named_parameters():
        assert torch.equal(tensor, tuned_parameters[name]), name
