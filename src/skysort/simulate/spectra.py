"""Optical spectra of simulated sources on the SDSS log-lambda grid.

The grid is that of SDSS/BOSS coadded spectra: log10(lambda / A) from 3.5798 (3800 A) in
steps of 1e-4 dex up to 9200 A, 3,841 pixels. Fluxes are f_lambda in units of
1e-17 erg s-1 cm-2 A-1, the unit of SDSS ``spec-*.fits`` files (``BUNIT``), and ``ivar`` is
their inverse variance.

Each spectrum is the object's SED (the same model :func:`draw_population` integrated:
Pickles star, COSMOS galaxy with Calzetti dust, or quasar continuum + lines with SMC dust,
IGM and its Lyman-limit system), redshifted, reddened by the Milky Way, scaled so that its
synthetic magnitude in the preset's selection band equals the object's ``mag_true``, and
interpolated onto the grid at the resolution of the templates (Pickles 5 A, COSMOS and the
quasar composite about 1-20 A; no instrumental broadening is added). Noise is Gaussian and
white with a per-object sigma = median(|flux|) / ``snr``, i.e. ``snr`` is the median S/N
per pixel; noise deviates come from block-seeded streams, so a spectrum depends only on
(seed, global index).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from ..errors import InputError
from . import seds
from .filters import GRID_WAVE, ab_mag, load_filter
from .population import BLOCK, UV_EXCESS_EDGE, _block_randoms
from .presets import SurveyPreset, load_survey

__all__ = ["SDSS_LOGLAM0", "SDSS_DLOGLAM", "sdss_wavelength_grid", "source_sed", "simulate_spectra"]

#: log10 of the first SDSS grid wavelength [A].
SDSS_LOGLAM0 = 3.5798
#: SDSS grid step [dex].
SDSS_DLOGLAM = 1e-4
_FLUX_UNIT = 1e-17  # erg s-1 cm-2 A-1


def sdss_wavelength_grid(wave_min: float = 3800.0, wave_max: float = 9200.0) -> np.ndarray:
    """Wavelengths [A] of the SDSS log-lambda grid between ``wave_min`` and ``wave_max``.

    Returns
    -------
    numpy.ndarray
        ``10**(3.5798 + 1e-4 k)`` for the k inside the range (3,841 pixels by default).
    """
    k0 = int(np.ceil((np.log10(wave_min) - SDSS_LOGLAM0) / SDSS_DLOGLAM - 1e-9))
    k1 = int(np.floor((np.log10(wave_max) - SDSS_LOGLAM0) / SDSS_DLOGLAM + 1e-9))
    return 10 ** (SDSS_LOGLAM0 + SDSS_DLOGLAM * np.arange(k0, k1 + 1))


def source_sed(row, survey: SurveyPreset | str, galaxy_emission_lines: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Observed-frame SED of one row of :func:`draw_population`, in physical units.

    Parameters
    ----------
    row : astropy.table.Row or mapping
        Needs ``label``, ``sed_name``, ``redshift``, ``ebv``, ``ebv_mw`` and
        ``mag_true_<selection band>``; quasars also ``qso_dalpha``, ``qso_line_scale``,
        ``z_lls``; stars use ``uv_boost`` when present (``PopulationModel.star_uv_excess``).
    survey : SurveyPreset or str
        The preset the row was drawn for.
    galaxy_emission_lines : float
        Strength of a galaxy's nebular lines, as ``PopulationModel.galaxy_emission_lines``
        (the population table's ``meta["galaxy_emission_lines"]``).

    Returns
    -------
    wave : numpy.ndarray
        Observed wavelength [A] (the internal grid).
    flam : numpy.ndarray
        f_lambda [erg s-1 cm-2 A-1].
    """
    survey = load_survey(survey)
    label = str(row["label"])
    z = float(row["redshift"])
    if label == "star":
        lib = seds.load_star_library()
        rest = lib.flam[lib.index(str(row["sed_name"]))]
        boost = float(row["uv_boost"]) if "uv_boost" in getattr(row, "colnames", row) else 0.0
        if boost:
            # The metallicity model's grey change of the flux blueward of 4000 A (population).
            rest = np.where(GRID_WAVE < UV_EXCESS_EDGE, rest * 10 ** (-0.4 * boost), rest)
    elif label == "galaxy":
        lib = seds.load_galaxy_library()
        index = lib.names.index(str(row["sed_name"]))
        rest = lib.flam[index] + galaxy_emission_lines * lib.lines[index]
        rest = rest * 10 ** (-0.4 * float(row["ebv"]) * seds.calzetti_k(GRID_WAVE))
    elif label == "qso":
        comp = seds.load_qso_components()
        rest = comp.sed(float(row["qso_dalpha"]), float(row["qso_line_scale"]))
        rest = rest * 10 ** (-0.4 * float(row["ebv"]) * seds.smc_k(GRID_WAVE))
    else:
        raise InputError("label", f"unknown class {label!r}")
    obs = np.interp(GRID_WAVE / (1 + z), GRID_WAVE, rest, left=0.0, right=0.0) / (1 + z)
    if z > 0:
        obs = obs * seds.igm_transmission(GRID_WAVE, z)
    if label == "qso" and np.isfinite(float(row["z_lls"])):
        obs = np.where(GRID_WAVE < 911.75 * (1 + float(row["z_lls"])), 0.0, obs)
    obs = obs * 10 ** (-0.4 * float(row["ebv_mw"]) * seds.ccm_extinction(GRID_WAVE))
    band = survey.selection.band
    filt = load_filter(survey.filter_path(band), band)
    scale = 10 ** (-0.4 * (float(row[f"mag_true_{band}"]) - ab_mag(GRID_WAVE, obs, filt)))
    return GRID_WAVE, obs * scale


def simulate_spectra(
    table: Table,
    survey: SurveyPreset | str,
    seed: int,
    snr: float = 10.0,
    wave: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Noisy optical spectra of the objects of a :func:`draw_population` table.

    Parameters
    ----------
    table : astropy.table.Table
        Rows of :func:`draw_population` (any classes; stars and quasars are the intended use);
        galaxies get the emission lines recorded in its ``meta``.
    survey : SurveyPreset or str
        Preset the table was drawn for.
    seed : int
        Seed of the noise (use the table's seed to keep one seed per data set).
    snr : float
        Median S/N per pixel; ``numpy.inf`` gives noiseless spectra with ``ivar`` = inf.
    wave : numpy.ndarray, optional
        Output wavelengths [A]; default :func:`sdss_wavelength_grid`.

    Returns
    -------
    dict of numpy.ndarray
        ``wave`` (n_pix,) [A], ``loglam`` (n_pix,) [log10 A], ``flux`` (n, n_pix) and
        ``ivar`` (n, n_pix) in 1e-17 erg s-1 cm-2 A-1 (and its inverse square),
        ``model`` (n, n_pix) the noiseless flux.
    """
    if not snr > 0:
        raise InputError("snr", f"must be positive, got {snr}")
    survey = load_survey(survey)
    wave = sdss_wavelength_grid() if wave is None else np.asarray(wave, dtype=float)
    n = len(table)
    lines = float(table.meta.get("galaxy_emission_lines", 0.0))
    model = np.empty((n, wave.size), dtype=np.float32)
    for j, row in enumerate(table):
        w, flam = source_sed(row, survey, lines)
        model[j] = np.interp(wave, w, flam) / _FLUX_UNIT
    sigma = np.median(np.abs(model), axis=1) / snr
    sigma = np.where(sigma > 0, sigma, np.finfo(np.float32).tiny)
    noise = np.empty_like(model)
    index = np.asarray(table["index"], dtype=np.int64)
    # Deviates per reproducibility block, taken at each object's own position in its block.
    for b in np.unique(index // BLOCK):
        sel = np.nonzero(index // BLOCK == b)[0]
        dev = _block_randoms(seed, int(b) * BLOCK, BLOCK, 2, wave.size, normal=True)
        noise[sel] = dev[index[sel] - b * BLOCK]
    flux = model + (sigma[:, None] * noise if np.isfinite(snr) else 0.0)
    if np.isfinite(snr):
        ivar = np.broadcast_to((1.0 / sigma**2)[:, None], flux.shape).astype(np.float32)
    else:
        ivar = np.full(flux.shape, np.inf, dtype=np.float32)
    return {
        "wave": wave,
        "loglam": np.log10(wave),
        "flux": flux.astype(np.float32),
        "ivar": ivar,
        "model": model,
    }
