"""Stamp-set import and I/O with the files users bring: units, odd shapes, damaged or busy
files, mixed sets, and the torch dataset over them."""

from __future__ import annotations

import mmap
import subprocess
import sys
import warnings

import astropy.units as u
import h5py
import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table

from skysort.data.dataset import AsinhStretch, StampDataset, random_dihedral, random_dihedral_batch
from skysort.data.ingest import import_to_stampset, load_stamp_array
from skysort.data.stampset import StampMeta, StampSet, concatenate, write_stampset
from skysort.errors import InputError


def _meta(bands=("r",)) -> StampMeta:
    return StampMeta(bands=bands, pixel_scale=0.2, flux_unit="count")


def _stamps(n=6, bands=1, height=8, width=8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, bands, height, width)).astype(np.float32)


@pytest.fixture
def npy(tmp_path):
    path = tmp_path / "stamps.npy"
    np.save(path, _stamps()[:, 0])
    return path


# ---------------------------------------------------------------------- import: metadata


@pytest.mark.parametrize("scale", [187 * u.mas, 0.187 * u.arcsec / u.pix, 0.187 / 3600 * u.deg])
def test_import_reads_pixel_scale_quantity_in_any_angle_unit(npy, tmp_path, scale):
    stamps = import_to_stampset(npy, None, tmp_path / "s.h5", bands=["r"], pixel_scale=scale)
    assert stamps.meta.pixel_scale == pytest.approx(0.187)


@pytest.mark.parametrize("scale", [float("inf"), float("nan"), 0.2 * u.m, "fine"])
def test_import_refuses_pixel_scale_that_is_no_angle(npy, tmp_path, scale):
    with pytest.raises(InputError, match="pixel scale"):
        import_to_stampset(npy, None, tmp_path / "s.h5", bands=["r"], pixel_scale=scale)
    assert not list(tmp_path.glob("s.h5*"))


def test_import_refuses_repeated_band_names_as_input_error(tmp_path):
    path = tmp_path / "two.npy"
    np.save(path, _stamps(bands=2))
    with pytest.raises(InputError, match="unique"):
        import_to_stampset(path, None, tmp_path / "s.h5", bands=["r", "r"], pixel_scale=0.2)


def test_import_refuses_zero_points_of_bands_it_has_not(npy, tmp_path):
    with pytest.raises(InputError, match=r"zero_points.*\['g'\]"):
        import_to_stampset(npy, None, tmp_path / "s.h5", bands=["r"], pixel_scale=0.2, zero_points={"g": 30.0})


def test_import_names_channel_last_arrays(tmp_path):
    path = tmp_path / "hwb.npy"
    np.save(path, np.moveaxis(_stamps(bands=3, height=16, width=16), 1, -1))
    with pytest.raises(InputError, match=r"\(N, H, W, B\)") as info:
        import_to_stampset(path, None, tmp_path / "s.h5", bands=["g", "r", "i"], pixel_scale=0.2)
    assert str(path) in str(info.value)


def test_import_refuses_flags_beyond_32_bits(npy, tmp_path):
    table = Table({"id": np.arange(6), "flags": np.array([0, 1, 2, 0, 2**40, 0], dtype=np.int64)})
    with pytest.raises(InputError, match="2\\*\\*32"):
        import_to_stampset(npy, table, tmp_path / "s.h5", bands=["r"], pixel_scale=0.2, table_path="objects.csv")
    assert not (tmp_path / "s.h5").exists()


def test_import_keeps_flags_of_32_bits(npy, tmp_path):
    table = Table({"id": np.arange(6), "flags": np.array([0, 1, 2, 0, 2**31, 0], dtype=np.int64)})
    stamps = import_to_stampset(npy, table, tmp_path / "s.h5", bands=["r"], pixel_scale=0.2)
    assert stamps.column("flags")[4] & np.uint32(2**31)


def test_fits_cube_is_memory_mapped_not_copied(tmp_path):
    path = tmp_path / "cube.fits"
    fits.writeto(path, _stamps()[:, 0].astype(">f4"))
    array = load_stamp_array(path)
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    assert isinstance(base, mmap.mmap)
    stamps = import_to_stampset(path, None, tmp_path / "s.h5", bands=["r"], pixel_scale=0.2, array=array)
    np.testing.assert_array_equal(stamps.images(), _stamps()[:, :1])


# ---------------------------------------------------------------------- opening


def test_open_names_a_file_another_process_is_writing(tmp_path):
    path = tmp_path / "busy.h5"
    write_stampset(path, _stamps(), {}, _meta()).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import h5py, sys; f = h5py.File({str(path)!r}, 'a'); print('open', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(InputError, match="another process") as info:
            StampSet.open(path)
        assert str(path) in str(info.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_damaged_extra_array_is_one_input_error(tmp_path):
    path = tmp_path / "s.h5"
    write_stampset(path, _stamps(), {}, _meta(), arrays={"spectrum": np.ones((6, 300), np.float32)}).close()
    with h5py.File(path, "a") as handle:
        # A compressed array, as another writer may store one, whose chunk is then damaged.
        values = handle["arrays/spectrum"][...]
        del handle["arrays/spectrum"]
        handle.create_dataset("arrays/spectrum", data=values, chunks=(6, 300), compression="gzip")
        info = handle["arrays/spectrum"].id.get_chunk_info(0)
    with open(path, "r+b") as raw:
        raw.seek(info.byte_offset)
        raw.write(b"\xff" * info.size)
    stamps = StampSet.open(path)
    with pytest.raises(InputError, match="array 'spectrum' cannot be read") as error:
        stamps.array("spectrum")
    assert str(path) in str(error.value)


# ---------------------------------------------------------------------- writing and views


def test_infinite_pixels_are_stored_as_nan(tmp_path):
    images = _stamps().astype(np.float64)
    images[1, 0, 2, 2] = np.inf
    images[2, 0, 3, 3] = 1e300  # beyond float32
    given = images.copy()
    stored = write_stampset(tmp_path / "s.h5", images, {}, _meta()).images()
    assert not np.isinf(stored).any()
    assert np.isnan(stored[1, 0, 2, 2]) and np.isnan(stored[2, 0, 3, 3])
    np.testing.assert_array_equal(images, given)  # the caller's array is left alone


def test_two_dimensional_selection_is_refused(tmp_path):
    stamps = write_stampset(tmp_path / "s.h5", _stamps(), {}, _meta())
    with pytest.raises(IndexError, match="1-D"):
        stamps[np.array([[0, 1], [2, 3]])]
    np.testing.assert_array_equal(stamps[np.int64(2)], stamps[2])
    np.testing.assert_array_equal(stamps[np.array(2)], stamps[2])


def test_failed_append_leaves_no_column_that_swallows_later_values(tmp_path):
    write_stampset(tmp_path / "s.h5", _stamps(2), {}, _meta()).close()
    stamps = StampSet.open(tmp_path / "s.h5", mode="a")
    with pytest.raises(ValueError, match="'ra' has 1 rows"):
        stamps.append(_stamps(2), {"z": np.array([1.0, 2.0]), "ra": np.array([10.0])})
    stamps.append(_stamps(2), {"z": np.array([3.0, 4.0])})
    assert "z" in stamps.columns
    np.testing.assert_array_equal(stamps.column("z"), [np.nan, np.nan, 3.0, 4.0])
    stamps.close()


def test_concatenate_sets_with_integer_and_text_ids(tmp_path):
    numbers = write_stampset(tmp_path / "a.h5", _stamps(3), {"id": np.arange(3)}, _meta())
    names = write_stampset(tmp_path / "b.h5", _stamps(3), {"id": np.array(["J1", "J2", "J3"])}, _meta(),
                           columns={"id": "str"})
    joined = concatenate([numbers, names], tmp_path / "ab.h5")
    assert list(joined.column("id")) == ["0", "1", "2", "J1", "J2", "J3"]


def test_concatenate_column_of_other_types_and_absent_integers(tmp_path):
    text = write_stampset(tmp_path / "a.h5", _stamps(2), {"z": np.array(["x", "y"])}, _meta())
    numbers = write_stampset(tmp_path / "b.h5", _stamps(2), {"z": np.array([1.5, 2.5]), "n": np.array([7, 8])}, _meta())
    joined = concatenate([numbers, text], tmp_path / "ab.h5")
    assert list(joined.column("z")) == ["1.5", "2.5", "x", "y"]
    # Absent from one set: NaN there, never a 0 that reads as a value.
    np.testing.assert_array_equal(joined.column("n"), [7.0, 8.0, np.nan, np.nan])


# ---------------------------------------------------------------------- torch access


def test_augmentation_keeps_shape_of_non_square_stamps():
    generator = torch.Generator().manual_seed(0)
    image = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    outputs = {tuple(random_dihedral(image, generator).flatten().tolist()) for _ in range(200)}
    assert all(len(o) == image.numel() for o in outputs)
    assert len(outputs) == 4  # the rectangle's symmetries: identity, half turn, two mirrors
    batch, k, _ = random_dihedral_batch(torch.zeros(32, 2, 4, 6), torch.Generator().manual_seed(1))
    assert batch.shape == (32, 2, 4, 6) and set(k.tolist()) <= {0, 2}


def test_augmentation_of_square_stamps_is_unchanged():
    # The draws for square stamps must stay those of earlier releases (reproducible training).
    generator = torch.Generator().manual_seed(3)
    expected_k = torch.randint(0, 4, (16,), generator=generator)
    _, k, _ = random_dihedral_batch(torch.zeros(16, 1, 5, 5), torch.Generator().manual_seed(3))
    assert torch.equal(k, expected_k)


def test_dataset_of_non_square_imported_stamps_batches(tmp_path):
    path = tmp_path / "wide.npy"
    np.save(path, _stamps(n=8, height=8, width=12)[:, 0])
    stamps = import_to_stampset(path, None, tmp_path / "s.h5", bands=["r"], pixel_scale=0.2)
    loader = torch.utils.data.DataLoader(StampDataset(stamps, augment=True), batch_size=8)
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 1, 8, 12)
    assert (batch["label"] == -1).all()  # an unlabelled set


def test_stretch_fit_on_empty_selection_says_so(tmp_path):
    stamps = write_stampset(tmp_path / "s.h5", _stamps(), {}, _meta())
    with pytest.raises(ValueError, match="no stamps"):
        AsinhStretch.fit(stamps[stamps.column("id") < 0])


def test_stretch_fit_on_all_nan_and_constant_bands(tmp_path):
    images = np.full((4, 3, 8, 8), 5.0, dtype=np.float32)
    images[:, 0] = np.nan
    images[:, 2] = 0.0
    path = tmp_path / "s.h5"
    write_stampset(path, images, {}, _meta(("g", "r", "i"))).close()
    with h5py.File(path, "a") as handle:  # as a file from another tool or an older release may hold
        handle["images"][0, 1, 0, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stretch = AsinhStretch.fit(StampSet.open(path))
    np.testing.assert_allclose(stretch.softening, [1.0, 5e-3, 1.0])
