"""What users' own survey presets, population overrides and training inputs meet: one clear
error naming the file or option, nothing half written, no silent wrong answer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from skysort.errors import InputError
from skysort.simulate import simulator as simulator_module
from skysort.simulate.presets import _PRESET_DIR, shared_data_dir
from skysort.simulate.simulator import SimulationConfig, simulate
from conftest import preset_refused as refused

SHARED_DATA = Path(os.environ.get("SKYSORT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="skysort reference data (../shared/data) not available")


def shipped(name: str) -> dict:
    """A shipped preset as a mapping, its filter curves as absolute paths (so a copy works anywhere)."""
    preset = yaml.safe_load((_PRESET_DIR / f"{name}.yaml").read_text())
    for band in preset["bands"]:
        band["filter"] = str(shared_data_dir() / band["filter"])
    return preset


def write_preset(folder: Path, preset: dict, name: str = "mine.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(preset))
    return path


# ------------------------------------------------------------------------- preset files


def test_misspelt_key_is_named_with_the_nearest_known_one(tmp_path):
    preset = shipped("kids")
    preset["pixelscale"] = preset.pop("pixel_scale")
    problem = refused(write_preset(tmp_path, preset))
    assert "pixelscale" in problem and "'pixel_scale'" in problem


def test_pixel_scale_in_degrees_is_refused(tmp_path):
    preset = shipped("kids")
    preset["pixel_scale"] = 0.2 / 3600
    problem = refused(write_preset(tmp_path, preset))
    assert "arcsec" in problem and "degrees" in problem


def test_depth_given_as_a_flux_is_refused(tmp_path):
    preset = shipped("kids")
    preset["bands"][0]["depth"] = 1e-3
    problem = refused(write_preset(tmp_path, preset))
    assert "band u" in problem and "AB magnitude" in problem


@pytest.mark.parametrize("key,value", [("depth", float("nan")), ("pixel_scale", float("inf"))])
def test_non_finite_numbers_are_refused(tmp_path, key, value):
    preset = shipped("kids")
    if key == "depth":
        preset["bands"][0]["depth"] = value
    else:
        preset[key] = value
    assert "finite" in refused(write_preset(tmp_path, preset))


def test_selection_magnitudes_in_the_wrong_order_name_the_preset(tmp_path):
    preset = shipped("kids")
    preset["selection"].update(mag_min=23.0, mag_max=14.0)
    assert "mag_min" in refused(write_preset(tmp_path, preset))


def test_unknown_population_parameter_of_a_preset_names_the_file(tmp_path):
    preset = shipped("sdss")
    preset["population"] = {"galaxy_fraction": 0.5}
    problem = refused(write_preset(tmp_path, preset))
    assert "galaxy_fraction" in problem and "'galaxy_target_fraction'" in problem


def test_missing_filter_curve_names_the_preset_and_the_band(tmp_path):
    preset = shipped("kids")
    preset["bands"][0]["filter"] = "filters/no_such_curve.res"
    path = write_preset(tmp_path, preset)
    with pytest.raises(InputError) as info:
        simulate(SimulationConfig(survey=str(path), stamp_size=16), 4, tmp_path / "out.h5")
    assert info.value.where == str(path.resolve()) and "band u" in info.value.problem
    assert not any(tmp_path.glob("*.h5")) and not any(tmp_path.glob(".out.h5*"))


@pytest.mark.parametrize("scale,hint", [(0.1, "nanometres"), (1e-4, "micrometres")])
def test_filter_curve_in_other_units_is_refused_before_any_output(tmp_path, scale, hint):
    wave, throughput = np.loadtxt(shared_data_dir() / "filters/kids_viking/KiDSVIKING_aibn139_u.res", unpack=True)
    curve = tmp_path / "u.res"
    np.savetxt(curve, np.c_[wave * scale, throughput])
    preset = shipped("kids")
    preset["bands"][0]["filter"] = str(curve)
    out = tmp_path / "out.h5"
    with pytest.raises(InputError) as info:
        simulate(SimulationConfig(survey=str(write_preset(tmp_path, preset)), stamp_size=16, image_bands=("r",)), 4, out)
    assert info.value.where == str(curve) and "Angstrom" in info.value.problem and hint in info.value.problem
    assert not out.exists()


# ------------------------------------------------------------------ --population overrides


@pytest.mark.parametrize("key,value,words", [
    ("galaxy_fraction", 0.5, "did you mean 'galaxy_target_fraction'"),
    ("qso_z_median", "abc", "finite number"),
    ("qso_z_median", -1.0, "must lie within"),
    ("galaxy_z_range", 0.5, "range"),
    ("galaxy_z_range", [1.5, 0.02], "low < high"),
    ("qso_host", "maybe", "flag"),
    ("ebv_max", -1.0, "must lie within"),
])
def test_population_override_errors_name_the_option(key, value, words):
    with pytest.raises(InputError) as info:
        SimulationConfig(survey="kids", population=((key, value),))
    assert info.value.where == "--population" and key in info.value.problem and words in info.value.problem


def test_population_override_of_names_accepts_one_name():
    from skysort.simulate.population import PopulationModel

    config = SimulationConfig(survey="sdss", population=(("galaxy_targets", "main"),))
    assert PopulationModel.from_preset(config.load_preset()).galaxy_targets == ("main",)


# ------------------------------------------------------------------------------- simulate


def test_simulating_into_a_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("simulated objects before checking the output")

    monkeypatch.setattr(simulator_module, "simulate_block", no_work)
    with pytest.raises(InputError) as info:
        simulate(SimulationConfig(survey="kids", stamp_size=16), 4, tmp_path)
    assert "folder" in info.value.problem


def test_workers_beyond_blocks_and_cores_are_not_started(tmp_path, monkeypatch):
    started = []
    real = simulator_module.ProcessPoolExecutor

    def recording(max_workers=None, **kwargs):
        started.append(max_workers)
        return real(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(simulator_module, "ProcessPoolExecutor", recording)
    config = SimulationConfig(survey="kids", stamp_size=16, image_bands=("r",), seed=2)
    many = simulate(config, 12, tmp_path / "many.h5", workers=64, block=6)
    one = simulate(config, 12, tmp_path / "one.h5", workers=1, block=6)
    assert all(w <= min(2, simulator_module.available_cores()) for w in started)
    assert np.array_equal(many.images(), one.images())


# ---------------------------------------------------------------------------------- train


@pytest.fixture(scope="module")
def user_pointsources(tmp_path_factory):
    """A point-source set simulated from a user's preset file (a renamed copy of sdss)."""
    folder = tmp_path_factory.mktemp("user")
    preset = shipped("sdss")
    preset["name"] = "mine"
    path = write_preset(folder, preset)
    config = SimulationConfig(survey=str(path), kind="pointsources", seed=4, balanced=True, stamp_size=16, image_bands=("r",))
    return simulate(config, 40, folder / "ps.h5").path


def test_pointsource_model_trains_on_a_set_from_a_users_preset(tmp_path, user_pointsources):
    from skysort.models.checkpoint import load_model_file
    from skysort.tasks.pointsource import train_pointsource_model

    out = tmp_path / "ps.pt"
    train_pointsource_model(user_pointsources, out, epochs=1, batch_size=16, progress=False, seed=3,
                            library_stars_per_template=1)
    meta, _ = load_model_file(out)
    assert meta["image_bands"] == ["r"] and meta["pixel_scale"] == 0.396 and meta["flux_unit"] == "nanomaggy"
    assert meta["zero_points"] == {"r": 22.5} and meta["training"]["seed"] == 3
    assert meta["training"]["data_meta"]["survey"] == "mine" and meta["software"]["skysort"]


def test_pointsource_validation_set_of_another_survey_is_refused(tmp_path, user_pointsources):
    from skysort.tasks.pointsource import train_pointsource_model

    val = simulate(SimulationConfig(survey="kids", kind="pointsources", seed=5, balanced=True, stamp_size=16,
                                    image_bands=("r",)), 8, tmp_path / "kids.h5").path
    out = tmp_path / "ps.pt"
    with pytest.raises(InputError) as info:
        train_pointsource_model(user_pointsources, out, val_data=val, baseline="image-only", epochs=1, batch_size=16,
                                progress=False)
    assert info.value.where == str(val) and "pixel scale" in info.value.problem and "flux unit" in info.value.problem
    assert not out.exists()


def test_diverged_training_is_refused():
    from skysort.training.data import InMemoryBatches, batch_loader
    from skysort.training.module import OptimConfig, TaskModule, fit

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def forward(self, batch):
            return {"y": self.layer(batch["x"])}

    def exploding(outputs, batch):
        # A loss whose gradient is NaN, as a far too large learning rate gives within an epoch.
        return outputs["y"].sum() * torch.tensor(float("nan")), {}

    data = InMemoryBatches({"x": np.ones((8, 2), np.float32)})
    loader = batch_loader(data, 4, shuffle=False)
    with pytest.raises(InputError) as info:
        fit(TaskModule(Linear(), exploding, OptimConfig(lr=1e-3)), loader, loader, max_epochs=1, progress=False,
            accelerator="cpu")
    assert info.value.where == "--lr" and "NaN" in info.value.problem


def test_sgq_and_blend_validation_sets_on_another_scale_are_refused(tmp_path):
    """As for point sources: a validation set of another survey's pixel scale or flux unit is
    refused before training (for sgq, whose stamps are centre-cropped, another stamp size is fine)."""
    import dataclasses

    from skysort.data.stampset import write_stampset
    from skysort.tasks.blend import train_blend_model
    from skysort.tasks.sgq import train_sgq_model

    train = simulate(SimulationConfig(survey="sdss", kind="sources", seed=1, balanced=True, stamp_size=16), 12,
                     tmp_path / "sdss.h5").path
    val = simulate(SimulationConfig(survey="kids", kind="sources", seed=2, balanced=True, stamp_size=16,
                                    image_bands=("u", "g", "r", "i", "Z")), 6, tmp_path / "kids.h5").path
    with pytest.raises(InputError) as info:
        train_sgq_model(train, tmp_path / "sgq.pt", val_data=val, branches="image", image_bands=("u", "g", "r", "i"),
                        epochs=1, batch_size=8, progress=False)
    assert info.value.where == str(val) and "pixel scale" in info.value.problem
    assert not (tmp_path / "sgq.pt").exists()

    blends = simulate(SimulationConfig(survey="cfis", kind="blends", seed=3), 8, tmp_path / "blends.h5").path
    from skysort.data.stampset import StampSet

    source = StampSet.open(blends)
    meta = dataclasses.replace(source.meta, pixel_scale=0.1)
    other = write_stampset(tmp_path / "other.h5", source.read_images(np.arange(len(source))), source.table, meta)
    with pytest.raises(InputError, match=r"pixel scales differ \(0.187 vs 0.1 arcsec/px\)"):
        train_blend_model(blends, tmp_path / "blend.pt", val_data=other.path, epochs=1, batch_size=8, progress=False)
