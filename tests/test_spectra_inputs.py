"""Real 1-D spectra in the layouts archives write: units, wavelength order, quality flags,
multi-camera files, and damaged files (skysort.data.spectra.read_real_spectrum)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from skysort.data.spectra import read_real_spectrum
from skysort.errors import InputError

N = 400


def _smooth_spectrum(wave):
    """A positive spectrum with a shape (a slope and one emission line), f_lambda."""
    return 1.0 + 1e-4 * (wave - wave[0]) + 3.0 * np.exp(-0.5 * ((wave - wave.mean()) / 5.0) ** 2)


def _one_row_table(path, columns, primary=None, name=None):
    """A binary table of one row holding each (name, array, unit) as an array column."""
    cols = [fits.Column(name=c, format=f"{v.size}{'J' if v.dtype.kind in 'iu' else 'D'}", array=v[None, :], unit=unit)
            for c, v, unit in columns]
    table = fits.BinTableHDU.from_columns(cols, name=name)
    fits.HDUList([fits.PrimaryHDU(header=primary), table]).writeto(path)
    return path


def test_lamost_dr8_coadd_table_honours_its_and_mask(tmp_path):
    """LAMOST DR8 and later name their table COADD, like SDSS, but with WAVELENGTH (not loglam);
    a pixel with a non-zero and-mask is bad in every exposure and unusable."""
    wave = 10 ** (3.5682 + 1e-4 * np.arange(N))
    flux = _smooth_spectrum(wave)
    andmask = np.zeros(N, np.int32)
    andmask[100:110] = 4
    path = _one_row_table(tmp_path / "lamost.fits", [("WAVELENGTH", wave, None), ("FLUX", flux, None),
                                                     ("IVAR", np.ones(N), None), ("ANDMASK", andmask, None)],
                          primary=fits.Header({"TELESCOP": "LAMOST"}), name="COADD")
    got = read_real_spectrum(path)
    assert got["source"] == "lamost"
    assert np.allclose(got["wave"], wave) and np.allclose(got["flux"], flux)
    assert np.array_equal(got["valid"], andmask == 0)


def test_lamost_image_and_mask_marks_unusable_pixels(tmp_path):
    wave = 10 ** (3.5682 + 1e-4 * np.arange(N))
    andmask = np.zeros(N)
    andmask[5:9] = 1
    path = tmp_path / "lamost.fits"
    fits.PrimaryHDU(np.stack([_smooth_spectrum(wave), np.ones(N), wave, andmask, np.zeros(N)]),
                    fits.Header({"COEFF0": 3.5682, "COEFF1": 1e-4, "TELESCOP": "LAMOST"})).writeto(path)
    assert np.array_equal(read_real_spectrum(path)["valid"], andmask == 0)


def test_eso_phase3_spectrum_in_nanometres_with_quality_flags(tmp_path):
    """ESO Phase 3 1-D spectra: one row of WAVE (here in nm, with TUNIT), FLUX, ERR and QUAL
    (0 = good); the wavelengths come back in Angstrom, flagged and zero-error pixels unusable."""
    wave_nm = np.linspace(400.0, 700.0, N)
    flux = _smooth_spectrum(wave_nm * 10)
    error = np.full(N, 0.1)
    error[20] = 0.0
    quality = np.zeros(N, np.int32)
    quality[50:55] = 1
    path = _one_row_table(tmp_path / "eso.fits", [("WAVE", wave_nm, "nm"), ("FLUX", flux, "erg cm**(-2) s**(-1) angstrom**(-1)"),
                                                   ("ERR", error, None), ("QUAL", quality, None)],
                          primary=fits.Header({"AIRORVAC": "vac"}))
    got = read_real_spectrum(path)
    assert np.allclose(got["wave"], wave_nm * 10)
    assert np.allclose(got["flux"], flux)
    expected = (quality == 0) & (error > 0)
    assert np.array_equal(got["valid"], expected)


@pytest.mark.parametrize("unit, scale", [("Angstrom", 1.0), ("ANGSTROMS", 1.0), ("NM", 10.0), ("microns", 1e4), ("um", 1e4)])
def test_wavelength_units_as_archives_spell_them(tmp_path, unit, scale):
    wave = np.linspace(4000.0, 7000.0, N) / scale
    path = _one_row_table(tmp_path / "s.fits", [("WAVELENGTH", wave, unit), ("FLUX", _smooth_spectrum(wave * scale), None)])
    assert np.allclose(read_real_spectrum(path)["wave"], wave * scale)


@pytest.mark.parametrize("unit, fragment", [("deg", "is not a wavelength"), ("furlongs per fortnight", "unknown wavelength unit")])
def test_a_wavelength_column_in_no_wavelength_unit_is_refused(tmp_path, unit, fragment):
    wave = np.linspace(4000.0, 7000.0, N)
    path = _one_row_table(tmp_path / "s.fits", [("WAVELENGTH", wave, unit), ("FLUX", _smooth_spectrum(wave), None)])
    with pytest.raises(InputError, match=fragment):
        read_real_spectrum(path)


def test_f_nu_fluxes_are_converted_to_f_lambda(tmp_path):
    """A flat f_nu (Jy) is f_lambda proportional to lambda^-2: the shape the encoder sees must be
    f_lambda's, whatever the file's flux unit."""
    wave = np.linspace(4000.0, 8000.0, N)
    path = _one_row_table(tmp_path / "fnu.fits", [("WAVELENGTH", wave, "Angstrom"), ("FLUX", np.ones(N), "Jy")])
    flux = read_real_spectrum(path)["flux"]
    assert np.allclose(flux / flux[0], (wave[0] / wave) ** 2)


def test_decreasing_wavelengths_are_put_in_increasing_order(tmp_path):
    wave = np.linspace(4000.0, 7000.0, N)
    flux = _smooth_spectrum(wave)
    ivar = np.ones(N)
    ivar[30] = 0
    path = _one_row_table(tmp_path / "rev.fits", [("WAVELENGTH", wave[::-1], None), ("FLUX", flux[::-1], None), ("IVAR", ivar[::-1], None)])
    got = read_real_spectrum(path)
    assert np.allclose(got["wave"], wave) and np.allclose(got["flux"], flux)
    assert np.array_equal(got["valid"], ivar > 0)


def _desi_file(path, n_spectra=1):
    """A DESI coadd of three cameras on one 0.8 A grid, overlapping by 20 samples each."""
    grid = 3600.0 + 0.8 * np.arange(1200)
    cameras = {"B": grid[:420], "R": grid[400:820], "Z": grid[800:]}
    truth = _smooth_spectrum(grid)
    hdus = [fits.PrimaryHDU()]
    for camera, wave in cameras.items():
        start = int(round((wave[0] - grid[0]) / 0.8))
        flux = np.tile(truth[start:start + wave.size], (n_spectra, 1))
        # The cameras disagree in the overlap; the inverse variance decides the average.
        flux += {"B": 0.3, "R": 0.0, "Z": -0.6}[camera]
        ivar = np.full_like(flux, {"B": 1.0, "R": 3.0, "Z": 1.0}[camera])
        mask = np.zeros(flux.shape, np.int32)
        if camera == "R":
            mask[:, 100] = 1
        hdus += [fits.ImageHDU(wave, name=f"{camera}_WAVELENGTH"), fits.ImageHDU(flux, name=f"{camera}_FLUX"),
                 fits.ImageHDU(ivar, name=f"{camera}_IVAR"), fits.ImageHDU(mask, name=f"{camera}_MASK")]
    fits.HDUList(hdus).writeto(path)
    return grid, truth


def test_desi_cameras_are_joined_and_their_overlap_weighted_by_inverse_variance(tmp_path):
    grid, truth = _desi_file(tmp_path / "coadd.fits")
    got = read_real_spectrum(tmp_path / "coadd.fits")
    assert got["source"] == "desi"
    assert np.allclose(got["wave"], grid)
    # B (+0.3, ivar 1) and R (0, ivar 3) overlap at samples 400-419: (0.3 * 1 + 0 * 3) / 4.
    assert np.allclose(got["flux"][400:420], truth[400:420] + 0.075)
    # R (0, ivar 3) and Z (-0.6, ivar 1) at 800-819: -0.6 / 4.
    assert np.allclose(got["flux"][800:820], truth[800:820] - 0.15)
    assert np.allclose(got["flux"][:400], truth[:400] + 0.3) and np.allclose(got["flux"][820:], truth[820:] - 0.6)
    # R's masked sample 100 lies outside the overlaps: unusable.
    assert not got["valid"][500] and got["valid"].sum() == grid.size - 1


def test_a_desi_file_of_several_spectra_is_refused(tmp_path):
    _desi_file(tmp_path / "coadd.fits", n_spectra=2)
    with pytest.raises(InputError, match="DESI file of 2 spectra"):
        read_real_spectrum(tmp_path / "coadd.fits")


def test_a_truncated_spectrum_file_is_named(tmp_path):
    wave = np.linspace(4000.0, 7000.0, 4000)
    path = _one_row_table(tmp_path / "whole.fits", [("WAVELENGTH", wave, None), ("FLUX", _smooth_spectrum(wave), None)])
    cut = tmp_path / "cut.fits"
    cut.write_bytes(path.read_bytes()[:8000])
    with pytest.raises(InputError, match=r"cut\.fits: not a readable FITS file \(truncated or corrupt"):
        read_real_spectrum(cut)


def test_vacuum_wave_axis_in_nanometres(tmp_path):
    """A 1-D image with the FITS WCS vacuum axis CTYPE1 = 'WAVE' and CUNIT1 = 'nm': Angstrom,
    and no air-to-vacuum shift (a bare linear axis is taken as air, as the Indo-US library's)."""
    header = fits.Header({"CTYPE1": "WAVE", "CUNIT1": "nm", "CRVAL1": 400.0, "CDELT1": 0.5, "CRPIX1": 1.0})
    path = tmp_path / "wave.fits"
    fits.PrimaryHDU(np.ones(N), header).writeto(path)
    assert np.allclose(read_real_spectrum(path)["wave"], 4000.0 + 5.0 * np.arange(N))


def test_a_1d_image_without_a_wavelength_step_is_refused(tmp_path):
    path = tmp_path / "flat.fits"
    fits.PrimaryHDU(np.ones(N), fits.Header({"CRVAL1": 4000.0})).writeto(path)
    with pytest.raises(InputError, match="without a wavelength step"):
        read_real_spectrum(path)


def test_a_text_flux_column_is_refused(tmp_path):
    path = tmp_path / "text.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([
        fits.Column(name="wavelength", format="D", array=np.linspace(4000, 7000, 5)),
        fits.Column(name="flux", format="5A", array=np.array(["a", "b", "c", "d", "e"]))])]).writeto(path)
    with pytest.raises(InputError, match="column flux is not numeric"):
        read_real_spectrum(path)


def test_a_spectrum_without_a_usable_pixel_is_told_apart_from_one_off_the_grid(tmp_path):
    """All pixels flagged must not be reported as a spectrum outside the model's wavelengths."""
    from skysort.models.registry import shipped_model_names
    from skysort.tasks.pointsource import encode_real_spectrum

    if "pointsource-sdss" not in shipped_model_names():
        pytest.skip("no shipped point-source model")
    wave = np.linspace(4000.0, 8000.0, N)
    with pytest.raises(InputError, match="no usable pixel"):
        encode_real_spectrum("pointsource-sdss", wave, _smooth_spectrum(wave), np.zeros(N, bool))


def test_resampling_weights_input_pixels_by_their_inverse_variance():
    """A sky-line residual (one input pixel far off, with a large error) sharing a grid pixel
    with clean pixels barely moves the weighted mean; without the inverse variance it would."""
    from skysort.data.spectra import resample_spectrum

    grid = {"loglam_start": 3.7, "loglam_step": 1e-4, "n_pixels": 50}
    # Three input pixels per grid pixel, on the grid's own log-lambda edges.
    wave = 10 ** (3.7 + 1e-4 * (np.arange(150) - 1) / 3)
    flux = np.ones(150)
    ivar = np.full(150, 100.0)
    flux[76], ivar[76] = 40.0, 1e-4
    plain, _ = resample_spectrum(wave, flux, **grid)
    weighted, usable = resample_spectrum(wave, flux, ivar=ivar, **grid)
    assert plain[25] == pytest.approx(14.0, rel=1e-3)
    assert weighted[25] == pytest.approx(1.0, abs=1e-3) and usable.all()
    assert np.allclose(np.delete(weighted, 25), 1.0) and np.allclose(np.delete(plain, 25), 1.0)


def test_readers_return_the_inverse_variance_in_f_lambda_units(tmp_path):
    """An error column becomes an inverse variance, scaled with the flux when it is converted
    from f_nu; a file without errors gives None."""
    wave = np.linspace(4000.0, 8000.0, N)
    error = np.full(N, 0.5)
    path = _one_row_table(tmp_path / "fnu.fits", [("WAVELENGTH", wave, "Angstrom"), ("FLUX", np.ones(N), "Jy"),
                                                   ("ERR", error, "Jy")])
    got = read_real_spectrum(path)
    assert np.allclose(got["ivar"] * got["flux"] ** 2, 4.0)  # S/N 2 per pixel, whatever the unit
    bare = _one_row_table(tmp_path / "bare.fits", [("WAVELENGTH", wave, None), ("FLUX", np.ones(N), None)])
    assert read_real_spectrum(bare)["ivar"] is None
