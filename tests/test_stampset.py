"""Stamp sets: lossless round trips, lazy views, appending, concatenation, torch access."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from astropy.table import Table

from skysort.data.dataset import AsinhStretch, StampDataset, background_sigma, random_dihedral
from skysort.data.flags import Flags, describe
from skysort.data.stampset import SCHEMA_VERSION, StampMeta, StampSet, concatenate, write_stampset
from skysort.errors import InputError, SchemaVersionError


def make_meta(bands=("g", "r"), **extra) -> StampMeta:
    return StampMeta.with_provenance(
        command="pytest", bands=bands, pixel_scale=0.2, flux_unit="count",
        zero_points={b: 30.0 for b in bands}, psf_fwhm={b: 0.7 for b in bands}, survey="test", seed=7, **extra,
    )


def make_objects(n=50, bands=("g", "r"), size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 1, size=(n, len(bands), size, size)).astype(np.float32)
    images[:, :, size // 2, size // 2] += 50
    table = Table()
    table["id"] = np.arange(n, dtype=np.int64) * 10 + 3
    table["ra"] = rng.uniform(0, 360, n)
    table["dec"] = rng.uniform(-90, 90, n)
    table["label"] = np.array(["star", "galaxy", "qso", ""] * n)[:n]
    for band in bands:
        mag = rng.uniform(18, 24, n)
        mag[::5] = np.nan
        table[f"mag_{band}"] = np.ma.masked_invalid(mag)
        table[f"magerr_{band}"] = np.ma.masked_invalid(np.where(np.isnan(mag), np.nan, 0.05))
    table["redshift"] = rng.uniform(0, 3, n).astype(np.float32)
    return images, table


def test_round_trip_is_lossless(tmp_path):
    images, table = make_objects()
    spectra = np.random.default_rng(1).normal(size=(len(images), 100)).astype(np.float32)
    stamps = write_stampset(tmp_path / "s.h5", images, table, make_meta(), arrays={"spectrum": spectra},
                            array_attrs={"spectrum": {"loglam_start": 3.5798, "loglam_step": 1e-4}})
    assert len(stamps) == len(images)
    assert stamps.shape == images.shape
    assert np.array_equal(stamps.images(), images)
    assert np.array_equal(stamps.array("spectrum"), spectra)
    assert stamps.array_attrs("spectrum")["loglam_step"] == 1e-4
    back = stamps.table
    for name in table.colnames:
        original, stored = table[name], back[name]
        if original.dtype.kind == "f":
            np.testing.assert_array_equal(np.ma.getmaskarray(stored), np.ma.getmaskarray(original))
            np.testing.assert_array_equal(np.ma.filled(stored, 0), np.ma.filled(original, 0))
        else:
            assert list(stored) == list(original)
    assert stamps.meta == make_meta().__class__.from_json(stamps.meta.to_json())
    assert stamps.meta.bands == ("g", "r") and stamps.meta.seed == 7 and stamps.meta.zero_points["r"] == 30.0
    assert back["ra"].unit == "deg" and back["mag_r"].unit == "mag"


def test_views_read_only_what_they_select(tmp_path):
    images, table = make_objects(n=40)
    stamps = write_stampset(tmp_path / "s.h5", images, table, make_meta())
    view = stamps[5:25][::2]
    assert len(view) == 10
    np.testing.assert_array_equal(view.images(), images[5:25:2])
    np.testing.assert_array_equal(view.column("id"), table["id"][5:25:2])
    picked = stamps[np.array([30, 2, 2, 17])]
    np.testing.assert_array_equal(picked.images(), images[[30, 2, 2, 17]])
    mask = np.asarray(table["label"]) == "qso"
    np.testing.assert_array_equal(stamps[mask].images(), images[mask])
    np.testing.assert_array_equal(stamps[3], images[3])
    random_rows = np.random.default_rng(0).permutation(40)
    np.testing.assert_array_equal(stamps.read_images(random_rows), images[random_rows])
    batches = list(stamps.iter_batches(batch_size=16))
    assert [len(b[0]) for b in batches] == [16, 16, 8]



@pytest.mark.parametrize("window_bytes", [1 << 25, 600, 64])
def test_scattered_rows_read_the_same_whichever_way_the_windows_fall(tmp_path, monkeypatch, window_bytes):
    # Scattered rows are read per run of consecutive rows, or a whole window at once when it holds
    # many runs; tiny windows force both paths and many windows on a small set.
    import skysort.data.stampset as stampset_module

    monkeypatch.setattr(stampset_module, "_READ_WINDOW_BYTES", window_bytes)
    monkeypatch.setattr(stampset_module, "_RUNS_PER_WHOLE_WINDOW", 4)
    images, table = make_objects(n=300)
    spectra = np.arange(300 * 7, dtype=np.float32).reshape(300, 7)
    stamps = write_stampset(tmp_path / "s.h5", images, table, make_meta(), arrays={"spectrum": spectra})
    rng = np.random.default_rng(3)
    for rows in (rng.permutation(300)[:270], np.sort(rng.permutation(300)[:40]), np.array([299, 0, 0, 150, 151, 152]),
                 np.arange(100, 160)):
        np.testing.assert_array_equal(stamps.column("id", rows), table["id"][rows])
        np.testing.assert_array_equal(stamps.column("mag_r", rows), np.ma.filled(table["mag_r"][rows], np.nan))
        assert list(stamps.column("label", rows)) == list(table["label"][rows])
        np.testing.assert_array_equal(stamps.array("spectrum", rows), spectra[rows])
        np.testing.assert_array_equal(stamps._read_rows(stamps._handle()["images"], rows), images[rows])

def test_append_and_concatenate(tmp_path):
    images, table = make_objects(n=30)
    path = tmp_path / "s.h5"
    write_stampset(path, images[:20], table[:20], make_meta()).close()
    with StampSet.open(path, mode="a") as stamps:
        stamps.append(images[20:], table[20:])
    stamps = StampSet.open(path)
    np.testing.assert_array_equal(stamps.images(), images)
    np.testing.assert_array_equal(stamps.column("id"), table["id"])
    other = write_stampset(tmp_path / "o.h5", images[:5], table[:5], make_meta())
    joined = concatenate([stamps[10:], other], tmp_path / "joined.h5")
    np.testing.assert_array_equal(joined.images(), np.concatenate([images[10:], images[:5]]))
    assert list(joined.labels()) == list(table["label"][10:]) + list(table["label"][:5])
    assert joined.meta.extra["concatenated_from"] == [str(path), str(tmp_path / "o.h5")]
    with pytest.raises(InputError, match="bands differ"):
        concatenate([stamps, write_stampset(tmp_path / "r.h5", images[:, :1], table, make_meta(("r",)))], tmp_path / "x.h5")


def test_concatenating_sets_of_different_seeing_keeps_each_objects_seeing(tmp_path):
    """Sets cut from tiles of different seeing: each object keeps its own FWHM (a column), the
    set records the median and the range; sets on other zero points are refused."""
    import dataclasses

    from skysort.data.seeing import object_seeing, stamp_seeing_range

    images, table = make_objects(n=12)
    good = write_stampset(tmp_path / "good.h5", images[:8], table[:8], make_meta())
    bad_meta = dataclasses.replace(make_meta(), psf_fwhm={"g": 1.5, "r": 1.4})
    bad = write_stampset(tmp_path / "bad.h5", images[8:], table[8:], bad_meta)
    joined = concatenate([good, bad], tmp_path / "joined.h5")
    np.testing.assert_allclose(object_seeing(joined, "r"), [0.7] * 8 + [1.4] * 4)
    np.testing.assert_allclose(object_seeing(joined, "g"), [0.7] * 8 + [1.5] * 4)
    assert joined.meta.psf_fwhm["r"] == pytest.approx(0.7)  # the median
    assert stamp_seeing_range(joined.meta)["r"] == [0.7, 1.4]
    # One seeing for all: nothing added.
    same = concatenate([good, good], tmp_path / "same.h5")
    assert "psf_fwhm_r" not in same.columns and "psf_fwhm_range" not in same.meta.extra
    other_zero_points = write_stampset(tmp_path / "zp.h5", images[8:], table[8:],
                                       dataclasses.replace(make_meta(), zero_points={"g": 30.0, "r": 27.0}))
    with pytest.raises(InputError, match="zero points differ in r"):
        concatenate([good, other_zero_points], tmp_path / "x.h5")


def test_failed_writer_leaves_nothing(tmp_path):
    images, table = make_objects(n=4)
    out = tmp_path / "partial.h5"
    with pytest.raises(ValueError):
        with StampSet.create(out, make_meta(), (16, 16)) as writer:
            writer.append(images, table)
            writer.append(images[:, :1], table)  # wrong number of bands
    assert list(tmp_path.iterdir()) == []


def test_wrong_schema_version_and_foreign_files(tmp_path):
    images, table = make_objects(n=3)
    path = tmp_path / "s.h5"
    write_stampset(path, images, table, make_meta()).close()
    with h5py.File(path, "a") as handle:
        handle.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(SchemaVersionError, match="schema version"):
        StampSet.open(path)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(InputError, match="not a skysort stamp set"):
        StampSet.open(foreign)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n" + b"0" * 100)
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        StampSet.open(garbage)


def test_asinh_stretch_and_dataset(tmp_path):
    images, table = make_objects(n=64)
    images[0, 0, 0, 0] = np.nan
    stamps = write_stampset(tmp_path / "s.h5", images, table, make_meta())
    stretch = AsinhStretch.fit(stamps)
    np.testing.assert_allclose(stretch.softening, [1.0, 1.0], rtol=0.15)
    restored = AsinhStretch.from_state_dict(stretch.state_dict())
    np.testing.assert_array_equal(restored.softening, stretch.softening)
    dataset = StampDataset(stamps, stretch, classes=["star", "galaxy", "qso"], photometry_bands=["g", "r"])
    item = dataset[0]
    assert item["image"].shape == (2, 16, 16) and item["image"].dtype == torch.float32
    assert torch.isfinite(item["image"]).all()  # NaN pixels become sky level
    assert item["label"].item() == 0 and dataset[3]["label"].item() == -1  # "" is unlabelled
    assert item["photometry_mask"][0] == 0 and item["photometry"][0] == 0  # masked mag, no sentinel
    expected = torch.asinh(torch.tensor(images[1]) / torch.tensor(stretch.softening).view(-1, 1, 1))
    torch.testing.assert_close(dataset[1]["image"], expected)
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True, num_workers=2)
    seen = torch.cat([batch["index"] for batch in loader])
    assert sorted(seen.tolist()) == list(range(64))
    r_only = StampDataset(stamps, image_bands=["r"])
    assert r_only[0]["image"].shape == (1, 16, 16)


def test_augmentation_is_a_dihedral_transform():
    image = torch.arange(16.0).view(1, 4, 4)
    generator = torch.Generator().manual_seed(0)
    outputs = {tuple(random_dihedral(image, generator).flatten().tolist()) for _ in range(200)}
    assert len(outputs) == 8
    assert all(sorted(o) == list(range(16)) for o in outputs)


def test_background_sigma_and_flags():
    rng = np.random.default_rng(3)
    images = rng.normal(0, 2.5, size=(20, 1, 32, 32))
    np.testing.assert_allclose(background_sigma(images), [2.5], rtol=0.05)
    assert describe(int(Flags.EDGE | Flags.NAN_PIXELS)) == ["EDGE", "NAN_PIXELS"]


def test_python_api_inputs_from_a_notebook(tmp_path):
    """Numbers of any kind in the metadata, text columns given numbers, views and parents closed
    apart, empty selections, and modes that would truncate the file."""
    import astropy.units as u

    meta = StampMeta(bands=("r",), pixel_scale=np.float32(0.25), zero_points={"r": np.float32(30)},
                     psf_fwhm={"r": 0.7 * u.arcsec}, seed=np.int64(3), extra={"gain": np.float32(2.5)})
    assert type(meta.pixel_scale) is float and meta.zero_points == {"r": 30.0} and meta.seed == 3
    assert meta.psf_fwhm == {"r": pytest.approx(0.7)}
    assert StampMeta(bands=("r",), pixel_scale=0.25 * u.arcsec).pixel_scale == 0.25
    for bad in (dict(pixel_scale="abc"), dict(pixel_scale=1 * u.m), dict(pixel_scale=0.2, extra={"x": object()}),
                dict(pixel_scale=0.2, seed=1.5)):
        with pytest.raises(ValueError):
            StampMeta(bands=("r",), **bad)
    path = tmp_path / "s.h5"
    stamps = write_stampset(path, np.zeros((3, 8, 8)), {"label": [0, 1, 2]}, meta)
    assert list(stamps.labels()) == ["0", "1", "2"] and stamps.meta.extra == {"gain": 2.5}
    # A writer that fails while starting leaves no temporary file.
    with pytest.raises(TypeError):
        write_stampset(tmp_path / "bad.h5", np.zeros((2, 8, 8)), {}, meta, columns={"a": "nonsense"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    size = path.stat().st_size
    with pytest.raises(ValueError, match="mode"):
        StampSet.open(path, mode="w")
    assert path.stat().st_size == size and len(StampSet.open(path)) == 3
    with pytest.raises(InputError, match="no such file"):
        StampSet(tmp_path / "missing.h5")
    with StampSet.open(path) as parent:
        view = parent[:2]
    assert list(view.column("id")) == [0, 1]  # the parent closed the shared handle
    parent = StampSet.open(path)
    parent[:1].close()
    assert list(parent.column("id")) == [0, 1, 2]
    assert len(parent[[]]) == 0 and parent[[]].read_images().shape == (0, 1, 8, 8)
    # FITS cubes are big-endian; the stretch takes them, and refuses the wrong band count.
    stretch = AsinhStretch([1.0])
    big_endian = np.ones((2, 1, 8, 8), dtype=">f8")
    assert torch.allclose(stretch(big_endian), torch.asinh(torch.ones(2, 1, 8, 8)))
    with pytest.raises(ValueError, match="band"):
        stretch(np.ones((2, 3, 8, 8), np.float32))
    dataset = StampDataset(parent, stretch)
    assert dataset[-1]["index"].item() == 2
    with pytest.raises(IndexError):
        dataset[3]


@pytest.mark.parametrize("unit, zero_point", [("nanomaggy", 22.5), ("nJy/pixel", 31.4), ("mJy", 16.4), ("uJy", 23.9),
                                              ("counts", np.nan)])
def test_a_stamp_sets_flux_unit_fixes_its_zero_point_as_an_image_headers_does(unit, zero_point):
    """The zero point a stamp set's unit implies is the one :func:`header_flux_unit` reads from a
    tile of that BUNIT, so stamps and tiles in mJy or per-pixel units are scaled alike."""
    from astropy.io import fits

    from skysort.data.images import header_flux_unit

    got = StampMeta(bands=("r",), pixel_scale=0.2, flux_unit=unit).zero_point("r")
    assert got == pytest.approx(zero_point, abs=0.01, nan_ok=True)
    assert header_flux_unit(fits.Header({"BUNIT": unit}))[1] == pytest.approx(got, nan_ok=True)
