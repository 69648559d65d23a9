"""Limits on what users hand over: a preset's stamp size and PSF width, zero-point keywords
written as text, and stamps imported from .npz and HDF5 files. Each problem is one error naming
the file and what is wrong; nothing is half written."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from skysort.cli import main
from skysort.data.images import header_flux_unit, read_band_image
from skysort.data.ingest import import_to_stampset, load_stamp_array
from skysort.errors import InputError
from skysort.simulate.presets import _PRESET_DIR, load_survey, shared_data_dir
from conftest import preset_refused as _refused

SHARED_DATA = Path(os.environ.get("SKYSORT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason="skysort reference data (../shared/data) not available")


# ------------------------------------------------------------------------ preset limits


def _kids_preset(tmp_path: Path, **changes) -> Path:
    """The shipped KiDS preset with ``changes`` (``band_u`` for the u band's entries), as a user's file."""
    preset = yaml.safe_load((_PRESET_DIR / "kids.yaml").read_text())
    for band in preset["bands"]:
        band["filter"] = str(shared_data_dir() / band["filter"])
    preset["bands"][0].update(changes.pop("band_u", {}))
    preset.update(changes)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


@needs_shared_data
@pytest.mark.parametrize("stamp_size", [4, 7, 600])
def test_preset_stamp_size_outside_8_to_512_pixels_is_refused(tmp_path, stamp_size):
    # Before: a 4-pixel stamp (or a 600-pixel one) was accepted with the file.
    problem = _refused(_kids_preset(tmp_path, stamp_size=stamp_size))
    assert "stamp_size" in problem and "8 to 512" in problem and str(stamp_size) in problem


@needs_shared_data
def test_preset_stamp_size_counts_its_padding(tmp_path):
    problem = _refused(_kids_preset(tmp_path, stamp_size=500, stamp_padding=10))
    assert "stamp_size" in problem and "8 to 512" in problem and "stamp_padding 10" in problem


@needs_shared_data
@pytest.mark.parametrize("fwhm", [0.0, -0.7, 50.0, 0.1])
def test_preset_psf_fwhm_outside_one_pixel_to_10_arcsec_is_refused(tmp_path, fwhm):
    # KiDS pixels are 0.2": 0.1" is a PSF narrower than a pixel. Before: 50" and 0.1" were
    # accepted; 0 and negative ones were refused without the allowed range.
    problem = _refused(_kids_preset(tmp_path, band_u={"psf_fwhm": fwhm}))
    assert "band u" in problem and "psf_fwhm" in problem and "arcsec" in problem
    assert "one pixel (0.2)" in problem and "to 10" in problem


@needs_shared_data
def test_preset_psf_fwhm_in_degrees_is_named(tmp_path):
    problem = _refused(_kids_preset(tmp_path, band_u={"psf_fwhm": 0.8 / 3600}))
    assert "psf_fwhm" in problem and "degrees" in problem


@needs_shared_data
@pytest.mark.parametrize("name", ["kids", "sdss", "cfis"])
def test_shipped_presets_lie_within_the_limits(name):
    preset = load_survey(name)
    assert 8 <= preset.stamp_size + 2 * preset.stamp_padding <= 512
    assert all(preset.pixel_scale <= band.psf_fwhm <= 10 for band in preset.bands)


# ------------------------------------------------------------------ zero points as text


def _tile(path: Path, **cards) -> Path:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.crval = ["RA---TAN", "DEC--TAN"], [150.0, 2.0]
    wcs.wcs.crpix, wcs.wcs.cdelt = [10.0, 10.0], [-0.2 / 3600, 0.2 / 3600]
    header = wcs.to_header()
    header["FILTER"] = "r"
    header["BUNIT"] = "ADU"
    for key, value in cards.items():
        header[key] = value
    fits.writeto(path, np.random.default_rng(0).normal(size=(20, 20)).astype(np.float32), header)
    return path


@pytest.mark.parametrize("cards, zero_point", [
    ({"MAGZP": "30.0"}, 30.0),
    ({"MAGZP": "30.0 "}, 30.0),
    ({"ZEROPT": " 27.5"}, 27.5),
    ({"PHOTZP": "3.05D1"}, 30.5),  # Fortran's exponent
    ({"MAGZP": "99", "PHOTZP": "30.0"}, 30.0),  # a placeholder as text, then a real one
    ({"MAGZP": "-99.0", "MAGZERO": 28.0}, 28.0),
    ({"FLUXMAG0": "63095734448.0"}, 27.0),  # HSC's flux of magnitude 0
])
def test_zero_point_written_as_text_is_read(tmp_path, cards, zero_point):
    # Before: a text value was skipped, so the tile's zero point was unknown (or a later
    # keyword's), and magnitudes from its stamps with it.
    image = read_band_image(_tile(tmp_path / "tile.fits", **cards))
    assert image.zero_point == pytest.approx(zero_point, abs=1e-6)


@pytest.mark.parametrize("value", ["0", "-99", "INDEF", ""])
def test_zero_point_text_placeholders_stay_unknown(tmp_path, value):
    assert np.isnan(read_band_image(_tile(tmp_path / "tile.fits", MAGZP=value)).zero_point)


def test_zero_point_text_that_is_no_number_names_the_file_and_keyword(tmp_path):
    path = _tile(tmp_path / "tile.fits", MAGZP="thirty")
    with pytest.raises(InputError) as info:
        read_band_image(path)
    assert info.value.where == str(path)
    assert "MAGZP" in info.value.problem and "'thirty'" in info.value.problem and "not a number" in info.value.problem


def test_header_reader_names_the_file_it_is_given():
    header = fits.Header({"BUNIT": "ADU", "ZP": "n/a?"})
    with pytest.raises(InputError) as info:
        header_flux_unit(header, "tile-7.fits")
    assert info.value.where == "tile-7.fits" and "ZP" in info.value.problem
    # The unit fixes the zero point: the keywords are not consulted, so not refused.
    assert header_flux_unit(fits.Header({"BUNIT": "nanomaggy", "ZP": "n/a?"}), "tile-7.fits")[1] == 22.5


def test_cutout_of_a_tile_with_text_zero_point_is_one_error_line(tmp_path, capsys):
    tile = _tile(tmp_path / "tile-r.fits", MAGZP="unknown value")
    Table({"ra": [150.0], "dec": [2.0]}).write(tmp_path / "objects.csv", format="ascii.ecsv")
    out = tmp_path / "s.h5"
    code = main(["cutout", "--images", str(tile), "--catalog", str(tmp_path / "objects.csv"), "--out", str(out),
                 "--size", "8", "--background", "none", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(tile) in err and "MAGZP" in err
    assert not list(tmp_path.glob("s.h5*"))


def test_streamed_tile_headers_name_the_tile_with_a_text_zero_point(tmp_path):
    from skysort.inference.stream import _header_info

    tile = _tile(tmp_path / "tile-r.fits", MAGZP="unknown value")
    with pytest.raises(InputError) as info:
        _header_info(tile, ["r"])
    assert info.value.where == str(tile) and "MAGZP" in info.value.problem


# ----------------------------------------------------------- import of .npz and HDF5 stamps


def _cube(n=6, bands=2, size=8) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, bands, size, size)).astype(np.float32)


def test_import_reads_npz_stamps_and_per_object_arrays(tmp_path):
    path = tmp_path / "stamps.npz"
    np.savez(path, images=_cube(), id=np.arange(6) + 100, label=np.array(["Star", "galaxy"] * 3),
             mag_r=np.array([18.0, 19.0, 99.0, 20.0, 21.0, 22.0]))
    stamps = import_to_stampset(path, None, tmp_path / "s.h5", bands=["g", "r"], pixel_scale=0.2)
    np.testing.assert_array_equal(stamps.images(), _cube())
    assert list(stamps.column("id")) == list(range(100, 106))
    assert list(stamps.column("label")[:2]) == ["star", "galaxy"]
    # Translated as a catalogue is: 99 is a missing magnitude.
    assert np.isnan(stamps.column("mag_r")[2]) and stamps.column("mag_r")[0] == 18.0


def test_import_command_applies_the_mapping_to_the_arrays_of_an_npz(tmp_path):
    path = tmp_path / "stamps.npz"
    np.savez(path, images=_cube(), serial=np.arange(6) + 500, kind=np.array(["star", "qso"] * 3))
    out = tmp_path / "s.h5"
    assert main(["import", "--images", str(path), "--bands", "g,r", "--pixel-scale", "0.2", "--out", str(out),
                 "--mapping", "id=serial,label=kind", "--quiet"]) == 0
    from skysort.data.stampset import StampSet

    stamps = StampSet.open(out)
    assert list(stamps.column("id")) == list(range(500, 506))
    assert list(stamps.column("label")[:2]) == ["star", "qso"]


def test_import_reads_plain_hdf5_stamps_block_by_block(tmp_path):
    path = tmp_path / "stamps.h5"
    with h5py.File(path, "w") as handle:
        handle["images"] = _cube(bands=1)[:, 0]  # (N, H, W): one band
        handle["label"] = np.array([b"star", b"qso"] * 3)
        handle["redshift"] = np.linspace(0, 1, 6)
    array = load_stamp_array(path)
    assert array.shape == (6, 1, 8, 8)
    stamps = import_to_stampset(path, None, tmp_path / "s.h5", bands=["r"], pixel_scale=0.2, array=array, chunk=4)
    np.testing.assert_array_equal(stamps.images(), _cube(bands=1))
    assert list(stamps.column("label")) == ["star", "qso"] * 3
    np.testing.assert_allclose(stamps.column("redshift"), np.linspace(0, 1, 6))


def test_import_of_a_stamp_set_is_refused(tmp_path):
    npz = tmp_path / "stamps.npz"
    np.savez(npz, images=_cube())
    made = import_to_stampset(npz, None, tmp_path / "made.h5", bands=["g", "r"], pixel_scale=0.2)
    with pytest.raises(InputError) as info:
        import_to_stampset(made.path, None, tmp_path / "again.h5", bands=["g", "r"], pixel_scale=0.2)
    assert info.value.where == str(made.path) and "stamp set" in info.value.problem
    assert not list(tmp_path.glob("again.h5*"))


@pytest.mark.parametrize("arrays, words", [
    ({"stamps": _cube()}, "no array named 'images'"),
    ({"images": _cube(), "mag_r": np.arange(5.0)}, "'mag_r' has shape (5,)"),
    ({"images": _cube(), "xy": np.zeros((6, 2))}, "'xy' has shape (6, 2)"),
    ({"images": _cube()[:, 0, 0]}, "(N, H, W) or (N, B, H, W)"),
])
def test_import_of_an_unusable_npz_names_the_file_and_array(tmp_path, capsys, arrays, words):
    path = tmp_path / "stamps.npz"
    np.savez(path, **arrays)
    out = tmp_path / "s.h5"
    code = main(["import", "--images", str(path), "--bands", "g,r", "--pixel-scale", "0.2", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(path) in err and words in err, err
    assert not list(tmp_path.glob("s.h5*"))


def test_import_refuses_per_object_arrays_beside_a_table(tmp_path):
    path = tmp_path / "stamps.npz"
    np.savez(path, images=_cube(), label=np.array(["star"] * 6))
    with pytest.raises(InputError, match="per-object arrays") as info:
        import_to_stampset(path, Table({"id": np.arange(6)}), tmp_path / "s.h5", bands=["g", "r"], pixel_scale=0.2,
                           table_path="objects.csv")
    assert info.value.where == str(path) and "objects.csv" in info.value.problem
    assert not list(tmp_path.glob("s.h5*"))


def test_import_takes_a_table_beside_an_npz_of_stamps_alone(tmp_path):
    path = tmp_path / "stamps.npz"
    np.savez(path, images=_cube())
    stamps = import_to_stampset(path, Table({"id": np.arange(6), "label": ["star"] * 6}), tmp_path / "s.h5",
                                bands=["g", "r"], pixel_scale=0.2)
    assert list(stamps.column("label")) == ["star"] * 6


def test_import_refuses_hdf5_arrays_in_groups(tmp_path):
    path = tmp_path / "stamps.hdf5"
    with h5py.File(path, "w") as handle:
        handle["images"] = _cube()
        handle.create_group("photometry")["mag_r"] = np.arange(6.0)
    with pytest.raises(InputError, match="groups") as info:
        load_stamp_array(path)
    assert info.value.where == str(path)


def test_import_refuses_a_file_named_h5_that_is_not_hdf5(tmp_path):
    path = tmp_path / "stamps.h5"
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="not an HDF5 file"):
        load_stamp_array(path)
