"""FITS images as archives deliver them: other sky frames, distortions, degenerate axes,
truncated files and header conventions, read by skysort.data.images and cut by skysort.data.cutout."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from skysort.data.cutout import cut_stamps, pixel_to_sky, sky_to_pixel
from skysort.data.flags import Flags
from skysort.data.images import first_image_header, read_band_image
from skysort.errors import InputError

SCALE = 0.2  # arcsec per pixel


def _header(ctype=("RA---TAN", "DEC--TAN"), crval=(150.0, 2.0), crpix=(50.0, 50.0), cdelt=(-SCALE / 3600, SCALE / 3600),
            **extra) -> fits.Header:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.crval, wcs.wcs.crpix, wcs.wcs.cdelt = list(ctype), list(crval), list(crpix), list(cdelt)
    header = wcs.to_header()
    header["FILTER"] = "r"
    for key, value in extra.items():
        header[key] = value
    return header


def _image(n=100, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, n)).astype(np.float32)


def _frame_header(frame: str) -> tuple[fits.Header, SkyCoord]:
    """A header whose reference pixel (49, 49 0-based) is at the returned ICRS position."""
    if frame == "galactic":
        centre = SkyCoord(l=30.0 * u.deg, b=0.5 * u.deg, frame="galactic")
        return _header(ctype=("GLON-TAN", "GLAT-TAN"), crval=(30.0, 0.5)), centre.icrs
    if frame == "fk4":
        centre = SkyCoord(150.0 * u.deg, 2.0 * u.deg, frame="fk4", equinox="B1950")
        header = _header(RADESYS="FK4", EQUINOX=1950.0)
        return header, centre.icrs
    if frame == "swapped":
        # Declination on the first axis, right ascension on the second.
        header = _header(ctype=("DEC--TAN", "RA---TAN"), crval=(2.0, 150.0), cdelt=(SCALE / 3600, -SCALE / 3600))
        return header, SkyCoord(150.0 * u.deg, 2.0 * u.deg)
    raise ValueError(frame)


@pytest.mark.parametrize("frame", ["galactic", "fk4", "swapped"])
def test_icrs_positions_find_their_pixels_in_any_sky_frame_and_axis_order(tmp_path, frame):
    # Before: catalogue ra/dec went straight into all_world2pix, read as the WCS's own
    # longitude/latitude in its own axis order: a Galactic tile put every object at NaN (off the
    # image), a B1950 one 0.7 deg away, a declination-first one at nonsense pixels.
    header, centre = _frame_header(frame)
    fits.writeto(tmp_path / "tile.fits", _image(), header)
    image = read_band_image(tmp_path / "tile.fits")
    offset = SkyCoord(centre.ra + 2.0 * u.arcsec / np.cos(centre.dec), centre.dec + 1.0 * u.arcsec)
    x, y = sky_to_pixel(image, np.array([centre.ra.deg, offset.ra.deg]), np.array([centre.dec.deg, offset.dec.deg]))
    np.testing.assert_allclose([x[0], y[0]], [49.0, 49.0], atol=1e-3)
    # 2" east and 1" north: 10 and 5 pixels away whatever the frame's own orientation.
    assert np.hypot(x[1] - 49.0, y[1] - 49.0) == pytest.approx(np.hypot(10.0, 5.0), rel=2e-2)
    ra, dec = pixel_to_sky(image, x, y)
    back = SkyCoord(ra * u.deg, dec * u.deg)
    assert back[0].separation(centre).arcsec < 1e-3 and back[1].separation(offset).arcsec < 1e-3


def _sip_header() -> fits.Header:
    header = _header(ctype=("RA---TAN-SIP", "DEC--TAN-SIP"), crpix=(100.0, 100.0))
    for key, value in {"A_ORDER": 3, "B_ORDER": 3, "A_0_2": 1e-4, "A_3_0": 2e-6, "B_2_0": 1e-4, "B_0_3": 2e-6}.items():
        header[key] = value
    return header


def test_objects_far_beyond_a_sip_tile_are_off_it_not_a_crash(tmp_path):
    # Before: a catalogue covering more sky than the tile (a survey catalogue and one HSC or
    # LSST calexp, whose SIP polynomial diverges a few degrees away) raised astropy's
    # NoConvergence, a traceback, from the inverse WCS.
    from skysort.data.ingest import cutout

    fits.writeto(tmp_path / "calexp-r.fits", _image(200), _sip_header())
    catalog = Table({"id": [1, 2, 3], "ra": [150.0, 152.0, 330.0], "dec": [2.0, 5.0, -60.0]})
    problems = []
    stamps = cutout(str(tmp_path / "calexp-r.fits"), catalog, tmp_path / "stamps.h5", size=16, background="none",
                    warn=lambda where, message: problems.append(message))
    flags = np.asarray(stamps.column("flags"))
    assert flags[0] & Flags.EDGE == 0 and np.all(flags[1:] & Flags.EDGE)
    assert np.isfinite(stamps.read_images([0])).all() and np.isnan(stamps.read_images([1, 2])).all()
    assert problems and "2 of its 3 objects" in problems[0]


def test_a_single_plane_cube_is_read_as_its_image(tmp_path):
    # Before: an image written with a third axis of length 1 (NAXIS3 = 1, as some pipelines and
    # archive converters do) was "no 2-D image in any HDU".
    header = _header()
    header["CTYPE3"], header["CRVAL3"], header["CRPIX3"], header["CDELT3"] = "WAVE", 6.2e-7, 1.0, 1e-9
    data = _image(40)
    fits.writeto(tmp_path / "cube.fits", data[None], header)
    assert fits.getheader(tmp_path / "cube.fits")["NAXIS"] == 3
    image = read_band_image(tmp_path / "cube.fits")
    assert image.shape == (40, 40)
    np.testing.assert_array_equal(image.data, data)
    assert image.pixel_scale == pytest.approx(SCALE)
    assert first_image_header(tmp_path / "cube.fits")["NAXIS3"] == 1


@pytest.mark.parametrize("removed", [("CRVAL1", "CRVAL2"), ("CDELT1", "CDELT2"), ("CRPIX1",)])
def test_a_celestial_wcs_missing_its_position_or_scale_is_refused(tmp_path, removed):
    # Before: wcslib filled missing keywords with CRVAL = 0, CRPIX = 0 and CDELT = 1 degree, so
    # a header with only CTYPE kept (a cut-down header) was read as a 3600"/px image at RA 0.
    header = _header()
    for key in removed:
        del header[key]
    fits.writeto(tmp_path / "tile.fits", _image(40), header)
    with pytest.raises(InputError, match="incomplete celestial WCS: no " + removed[0]):
        read_band_image(tmp_path / "tile.fits")


def test_a_cd_matrix_without_cdelt_is_complete(tmp_path):
    header = _header()
    del header["CDELT1"], header["CDELT2"]
    header["CD1_1"], header["CD2_2"] = -SCALE / 3600, SCALE / 3600
    fits.writeto(tmp_path / "tile.fits", _image(40), header)
    assert read_band_image(tmp_path / "tile.fits").pixel_scale == pytest.approx(SCALE)


def test_an_fpack_file_cut_inside_its_image_header_is_called_truncated(tmp_path):
    # Before: astropy drops an HDU whose header is cut short with only a (silenced) warning, so
    # a truncated .fz download was "no 2-D image in any HDU" from read_band_image and no image at
    # all (None) from first_image_header.
    path = tmp_path / "tile.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(_image(32), _header())]).writeto(path)
    whole = path.read_bytes()
    # The primary header is one 2880-byte block; the compressed image's header starts after it.
    path.write_bytes(whole[: 2880 + 2880 + 100])
    for reader in (read_band_image, first_image_header):
        with pytest.raises(InputError, match="truncated or corrupt"):
            reader(path)


def test_an_image_without_pixels_is_said_to_have_none(tmp_path):
    # Before: a header-only image (NAXIS1 = 0) was reported as "every pixel is NaN".
    fits.writeto(tmp_path / "empty.fits", np.zeros((0, 32), np.float32), _header())
    with pytest.raises(InputError, match="has no pixels"):
        read_band_image(tmp_path / "empty.fits")


def test_bands_in_different_frames_cut_the_same_object(tmp_path):
    # One star drawn in an equatorial r image and in a Galactic g image of the same sky: the g
    # stamp, resampled through both WCSs, must hold the star at the stamp centre.
    centre = SkyCoord(l=30.0 * u.deg, b=0.5 * u.deg, frame="galactic").icrs
    yy, xx = np.mgrid[:100, :100]
    star = (100.0 * np.exp(-((xx - 49.0) ** 2 + (yy - 49.0) ** 2) / 8.0)).astype(np.float32)
    fits.writeto(tmp_path / "r.fits", star, _header(crval=(centre.ra.deg, centre.dec.deg)))
    g_header, _ = _frame_header("galactic")
    g_header["FILTER"] = "g"
    fits.writeto(tmp_path / "g.fits", star, g_header)
    r_image, g_image = read_band_image(tmp_path / "r.fits"), read_band_image(tmp_path / "g.fits")
    stamps, flags = cut_stamps([r_image, g_image], np.array([49.0]), np.array([49.0]), size=16)
    assert flags[0] == 0
    for band in (0, 1):
        assert np.unravel_index(np.argmax(stamps[0, band]), (16, 16)) == (8, 8)
    np.testing.assert_allclose(stamps[0, 1].sum(), stamps[0, 0].sum(), rtol=1e-3)


@pytest.mark.parametrize("cards, zero_point", [
    ({"BUNIT": "ADU", "MAGZP": 0.0}, np.nan),  # "not calibrated"
    ({"BUNIT": "ADU", "MAGZERO": -99.0}, np.nan),
    ({"BUNIT": "ADU", "MAGZP": 99.0, "PHOTZP": 30.0}, 30.0),  # a placeholder, then a real one
    ({"BUNIT": "mJy"}, 16.4),
    ({"BUNIT": "Jy"}, 8.9),
    ({"BUNIT": "nJy/pixel"}, 31.4),
    ({"BUNIT": "nanomaggy/pix"}, 22.5),
    ({"BUNIT": "nanomaggies", "MAGZP": 30.0}, 22.5),  # the unit fixes it
    ({"BUNIT": "ADU", "PHOTZP": 30.0}, 30.0),
])
def test_zero_points_come_from_the_unit_or_a_real_keyword_never_a_placeholder(tmp_path, cards, zero_point):
    # Before: MAGZP = 0 or MAGZERO = -99 (pipelines' "not calibrated") became the zero point,
    # so magnitudes from the stamps were off by 25-130 mag, and Jansky units other than uJy and
    # nJy (or written per pixel) gave none.
    fits.writeto(tmp_path / "tile.fits", _image(20), _header(**cards))
    image = read_band_image(tmp_path / "tile.fits")
    np.testing.assert_allclose(image.zero_point, zero_point, atol=1e-6)


def _compressed(path, hdus: fits.HDUList, compression: str):
    """``hdus`` written to ``path`` (without the suffix) and compressed as a whole with gzip or bzip2."""
    import bz2
    import gzip
    import io

    buffer = io.BytesIO()
    hdus.writeto(buffer)
    target = path.with_name(f"{path.name}.{compression}")
    target.write_bytes({"gz": gzip.compress, "bz2": bz2.compress}[compression](buffer.getvalue()))
    return target


@pytest.mark.parametrize("compression", ["gz", "bz2"])
def test_the_image_header_of_a_compressed_file_is_astropys(tmp_path, compression):
    """Read from the start of the stream, past a table, to the image's header: the header
    astropy gives; a file without an image has none."""
    table = fits.BinTableHDU(Table({"a": np.arange(1000.0), "b": np.arange(1000)}), name="CAT")
    hdus = fits.HDUList([fits.PrimaryHDU(), table, fits.ImageHDU(_image(), header=_header(), name="SCI")])
    path = _compressed(tmp_path / "tile.fits", hdus, compression)
    header = first_image_header(path)
    with fits.open(path) as opened:
        assert header == opened["SCI"].header
    assert header["EXTNAME"] == "SCI" and header["NAXIS1"] == 100
    assert first_image_header(_compressed(tmp_path / "table.fits", fits.HDUList([fits.PrimaryHDU(), table]), compression)) is None


@pytest.mark.parametrize("compression", ["gz", "bz2"])
def test_a_compressed_file_is_decompressed_only_as_far_as_its_image_header(tmp_path, compression):
    """A file cut short inside its pixels still gives its header (its pixels are read, and
    found damaged, when its stamps are cut); one cut short inside the header is refused."""
    path = _compressed(tmp_path / "tile.fits", fits.HDUList([fits.PrimaryHDU(np.random.default_rng(0).normal(size=(400, 400)),
                                                                             header=_header())]), compression)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) * 4 // 5])  # bzip2 gives nothing of a block cut short: keep its first
    with pytest.raises((OSError, EOFError)):
        fits.getheader(path)  # astropy decompresses the whole file first
    assert first_image_header(path)["NAXIS1"] == 400
    path.write_bytes(whole[:40])
    with pytest.raises(InputError, match="truncated or corrupt"):
        first_image_header(path)


def test_compressed_files_left_to_astropy(tmp_path):
    """A tile-compressed image inside a gzip file, and a plain FITS file named .gz, are read as
    astropy reads them."""
    import gzip
    import io

    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(_image().astype(np.float32), header=_header())]).writeto(buffer)
    packed = tmp_path / "tile.fits.fz.gz"
    packed.write_bytes(gzip.compress(buffer.getvalue()))
    assert first_image_header(packed)["NAXIS1"] == 100
    plain = tmp_path / "plain.fits.gz"
    buffer = io.BytesIO()
    fits.PrimaryHDU(_image(), header=_header()).writeto(buffer)
    plain.write_bytes(buffer.getvalue())
    assert plain.read_bytes()[:6] == b"SIMPLE" and first_image_header(plain)["NAXIS2"] == 100


@pytest.mark.parametrize("compression", ["gz", "bz2"])
def test_a_compressed_file_damaged_inside_its_pixels_is_one_error_naming_it(tmp_path, compression):
    # Before: a damaged gzip file was read without an error and with wrong pixels, as astropy
    # stops decompressing where the pixels end, before gzip's checksum at the end of the stream.
    path = _compressed(tmp_path / "tile.fits", fits.HDUList([fits.PrimaryHDU(_image(300), header=_header())]), compression)
    whole = bytearray(path.read_bytes())
    middle = len(whole) // 2
    whole[middle : middle + 64] = bytes(64)  # zeroed bytes inside the compressed pixels
    path.write_bytes(bytes(whole))
    with pytest.raises(InputError, match="tile.fits.*truncated or corrupt"):
        read_band_image(path, "r")


def test_a_large_compressed_file_is_left_to_astropy_with_the_same_pixels(tmp_path, monkeypatch):
    import skysort.data.images as images

    path = _compressed(tmp_path / "tile.fits", fits.HDUList([fits.PrimaryHDU(_image(), header=_header())]), "gz")
    in_memory = read_band_image(path, "r").data
    monkeypatch.setattr(images, "IN_MEMORY_DECOMPRESSION_BYTES", 0)
    np.testing.assert_array_equal(read_band_image(path, "r").data, in_memory)
