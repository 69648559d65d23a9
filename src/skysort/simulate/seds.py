"""Spectral energy distributions: stars, quasars, galaxies, dust and the intergalactic medium.

Libraries (all read from :func:`skysort.simulate.presets.shared_data_dir`):

* stars: the Pickles (1998) library, 131 types O-M, dwarfs to supergiants, f_lambda;
* galaxies: the 31 COSMOS templates of Ilbert et al. (2009) (``COSMOS_MOD.list``);
* quasars: the LePhare SDSS quasar composite ``QSO_SDSS.sed``, split into a smooth
  continuum and an emission-line spectrum so that the continuum slope and the line strength
  can be varied independently (see :func:`load_qso_components`).

Dust laws: Calzetti et al. (2000) for galaxy attenuation, Cardelli, Clayton & Mathis (1989)
with the O'Donnell (1994) optical update (R_V = 3.1) for Milky Way extinction. IGM: the mean
Lyman-series and Lyman-continuum transmission of Inoue et al. (2014), from the published
LAF/DLA coefficient tables.

All spectra are returned on the internal grid :data:`skysort.simulate.filters.GRID_WAVE`,
uniform in ln(lambda) with step :data:`~skysort.simulate.filters.GRID_DLN`: redshifting by
``1 + z = exp(k * GRID_DLN)`` is then a shift by ``k`` pixels, and
:func:`redshift_band_table` builds band fluxes on a redshift grid by matrix products.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .filters import C_ANGSTROM_PER_S, GRID_DLN, GRID_WAVE
from .presets import shared_data_dir

__all__ = [
    "GalaxyLibrary",
    "QSOComponents",
    "StarLibrary",
    "calzetti_k",
    "ccm_extinction",
    "igm_transmission",
    "load_galaxy_library",
    "load_qso_components",
    "load_star_library",
    "nebular_lines",
    "redshift_band_table",
    "redshift_shifts",
    "smc_k",
]


# --------------------------------------------------------------------------- dust laws
def calzetti_k(wave: np.ndarray) -> np.ndarray:
    """Calzetti et al. (2000) starburst attenuation curve k(lambda) = A_lambda / E(B-V)_s.

    Parameters
    ----------
    wave : numpy.ndarray
        Rest-frame wavelength [Angstrom].

    Returns
    -------
    numpy.ndarray
        k(lambda) (R_V = 4.05). Outside the fitted 0.12-2.2 micron range the curve is
        extended linearly in 1/lambda from its ends (the usual practice), and clipped at 0.
    """
    x = np.asarray(wave, dtype=float) / 1e4  # micron

    def blue(lam):
        return 2.659 * (-2.156 + 1.509 / lam - 0.198 / lam**2 + 0.011 / lam**3) + 4.05

    def red(lam):
        return 2.659 * (-1.857 + 1.040 / lam) + 4.05

    k = np.where(x < 0.63, blue(np.clip(x, 0.12, None)), red(np.clip(x, None, 2.2)))
    # Linear continuation in 1/lambda below 0.12 micron, with the slope at 0.12-0.125.
    slope = (blue(0.12) - blue(0.125)) / (1 / 0.12 - 1 / 0.125)
    k = np.where(x < 0.12, blue(0.12) + slope * (1 / np.maximum(x, 1e-3) - 1 / 0.12), k)
    slope_r = (red(2.19) - red(2.2)) / (1 / 2.19 - 1 / 2.2)
    k = np.where(x > 2.2, red(2.2) + slope_r * (1 / x - 1 / 2.2), k)
    return np.clip(k, 0.0, None)


def smc_k(wave: np.ndarray) -> np.ndarray:
    """SMC-like extinction k(lambda) = 1.39 (lambda / 1 micron)**-1.2 (Prevot et al. 1984).

    The power-law form used for quasar reddening by Richards et al. (2003) and Hopkins et al.
    (2004).

    Parameters
    ----------
    wave : numpy.ndarray
        Rest-frame wavelength [Angstrom].

    Returns
    -------
    numpy.ndarray
        A_lambda / E(B-V).
    """
    return 1.39 * (np.asarray(wave, dtype=float) / 1e4) ** (-1.2)


def ccm_extinction(wave: np.ndarray, r_v: float = 3.1) -> np.ndarray:
    """Milky Way extinction A_lambda / E(B-V): Cardelli et al. (1989), O'Donnell (1994).

    Parameters
    ----------
    wave : numpy.ndarray
        Wavelength [Angstrom], 1250 A to 3.3 micron (clipped outside).
    r_v : float
        Total-to-selective extinction ratio.

    Returns
    -------
    numpy.ndarray
        A_lambda / E(B-V) [mag per mag].
    """
    x = np.clip(1e4 / np.asarray(wave, dtype=float), 0.3, 8.0)  # inverse micron
    a = np.empty_like(x)
    b = np.empty_like(x)
    ir = x < 1.1
    a[ir] = 0.574 * x[ir] ** 1.61
    b[ir] = -0.527 * x[ir] ** 1.61
    opt = (x >= 1.1) & (x < 3.3)
    y = x[opt] - 1.82
    a[opt] = np.polyval([-0.505, 1.647, -0.827, -1.718, 1.137, 0.701, -0.609, 0.104, 1.0], y)
    b[opt] = np.polyval([3.347, -10.805, 5.491, 11.102, -7.985, -3.989, 2.908, 1.952, 0.0], y)
    uv = x >= 3.3
    xu = x[uv]
    fa = np.where(xu > 5.9, -0.04473 * (xu - 5.9) ** 2 - 0.009779 * (xu - 5.9) ** 3, 0.0)
    fb = np.where(xu > 5.9, 0.2130 * (xu - 5.9) ** 2 + 0.1207 * (xu - 5.9) ** 3, 0.0)
    a[uv] = 1.752 - 0.316 * xu - 0.104 / ((xu - 4.67) ** 2 + 0.341) + fa
    b[uv] = -3.090 + 1.825 * xu + 1.206 / ((xu - 4.62) ** 2 + 0.263) + fb
    return (a + b / r_v) * r_v


# --------------------------------------------------------------------------------- IGM
@functools.lru_cache(maxsize=1)
def _inoue_coefficients() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    folder = shared_data_dir() / "igm"
    try:
        laf = np.loadtxt(folder / "LAFcoeff.txt")
        dla = np.loadtxt(folder / "DLAcoeff.txt")
    except OSError as exc:
        raise InputError(folder, f"Inoue (2014) IGM coefficient tables unreadable ({exc})") from None
    return laf[:, 1], laf[:, 2:5], dla[:, 2:4]


def igm_transmission(wave_obs: np.ndarray, z: float) -> np.ndarray:
    """Mean IGM transmission exp(-tau) towards a source at redshift ``z`` (Inoue et al. 2014).

    Parameters
    ----------
    wave_obs : numpy.ndarray
        Observed-frame wavelength [Angstrom].
    z : float
        Source redshift (the model is defined to z = 7; skysort uses z < 4.7).

    Returns
    -------
    numpy.ndarray
        Transmission in [0, 1]: Lyman-series absorption by the Lyman-alpha forest (LAF) and
        damped systems (DLA), plus their Lyman-continuum absorption.
    """
    lobs = np.asarray(wave_obs, dtype=float)
    if z <= 0:
        return np.ones_like(lobs)
    lam, a_laf, a_dla = _inoue_coefficients()
    tau = np.zeros_like(lobs)
    z1_laf, z2_laf, z1_dla, lam_l = 1.2, 4.7, 2.0, 911.8
    # Lyman series: each line j absorbs between its rest wavelength and (1+z) times it.
    for j in range(lam.size):
        lj = lam[j]
        sel = (lobs > lj) & (lobs < lj * (1.0 + z))
        if not np.any(sel):
            continue
        xr = lobs[sel] / lj
        laf = np.where(
            xr < 1 + z1_laf,
            a_laf[j, 0] * xr**1.2,
            np.where(xr < 1 + z2_laf, a_laf[j, 1] * xr**3.7, a_laf[j, 2] * xr**5.5),
        )
        dla = np.where(xr < 1 + z1_dla, a_dla[j, 0] * xr**2.0, a_dla[j, 1] * xr**3.0)
        tau[sel] += laf + dla
    # Lyman continuum, below the Lyman limit of the source.
    sel = lobs < lam_l * (1.0 + z)
    xl = lobs[sel] / lam_l
    zp = 1.0 + z
    if z < z1_dla:
        dla_lc = 0.2113 * zp**2 - 0.07661 * zp**2.3 * xl ** (-0.3) - 0.1347 * xl**2
    else:
        dla_lc = np.where(
            xl > 1 + z1_dla,
            0.04696 * zp**3 - 0.01779 * zp**3.3 * xl ** (-0.3) - 0.02916 * xl**3,
            0.6340
            + 0.04696 * zp**3
            - 0.01779 * zp**3.3 * xl ** (-0.3)
            - 0.1347 * xl**2
            - 0.2905 * xl ** (-0.3),
        )
    if z < z1_laf:
        laf_lc = 0.3248 * (xl**1.2 - zp ** (-0.9) * xl**2.1)
    elif z < z2_laf:
        laf_lc = np.where(
            xl > 1 + z1_laf,
            2.545e-2 * (zp**1.6 * xl**2.1 - xl**3.7),
            2.545e-2 * zp**1.6 * xl**2.1 + 0.3248 * xl**1.2 - 0.2496 * xl**2.1,
        )
    else:
        laf_lc = np.where(
            xl > 1 + z2_laf,
            5.221e-4 * (zp**3.4 * xl**2.1 - xl**5.5),
            np.where(
                xl > 1 + z1_laf,
                5.221e-4 * zp**3.4 * xl**2.1 + 0.2182 * xl**2.1 - 2.545e-2 * xl**3.7,
                5.221e-4 * zp**3.4 * xl**2.1 + 0.3248 * xl**1.2 - 3.140e-2 * xl**2.1,
            ),
        )
    tau[sel] += np.clip(dla_lc, 0, None) + np.clip(laf_lc, 0, None)
    return np.exp(-tau)


# ---------------------------------------------------------------------------- libraries
def _to_grid(wave: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Resample a spectrum onto GRID_WAVE, zero outside its range."""
    order = np.argsort(wave, kind="stable")
    return np.interp(GRID_WAVE, wave[order], flux[order], left=0.0, right=0.0)


@dataclass(frozen=True)
class StarLibrary:
    """Stellar spectra on the internal grid.

    Attributes
    ----------
    names : list of str
        Pickles type names (file stems, e.g. ``"g2v"``, ``"wk0iii"``, ``"rg5v"``).
    flam : numpy.ndarray, shape (n_types, n_grid)
        f_lambda [erg s-1 cm-2 A-1], the library's own normalisation.
    """

    names: list[str]
    flam: np.ndarray

    def index(self, name: str) -> int:
        """Row of type ``name``."""
        return self.names.index(name)


@functools.lru_cache(maxsize=1)
def load_star_library() -> StarLibrary:
    """Read the Pickles library (``seds/stars_pickles/*.fits``) onto the internal grid.

    Returns
    -------
    StarLibrary
    """
    from astropy.io import fits

    folder = shared_data_dir() / "seds" / "stars_pickles"
    files = sorted(folder.glob("*.fits"))
    if not files:
        raise InputError(folder, "no Pickles FITS spectra found")
    names, rows = [], []
    for path in files:
        with fits.open(path, memmap=False) as hdul:
            data = hdul[1].data
            wave = np.asarray(data["WAVELENGTH"], dtype=float)
            flux = np.asarray(data["FLUX"], dtype=float)
        names.append(path.stem)
        rows.append(_to_grid(wave, np.clip(flux, 0.0, None)))
    return StarLibrary(names, np.array(rows))


@dataclass(frozen=True)
class GalaxyLibrary:
    """Galaxy templates (rest frame) on the internal grid.

    Attributes
    ----------
    names : list of str
        Template names (e.g. ``"Ell1_A_0"``, ``"Sc_A_0"``, ``"SB5_A_0"``).
    flam : numpy.ndarray, shape (n_templates, n_grid)
        Rest-frame f_lambda, arbitrary normalisation per template (stellar continuum only:
        the COSMOS templates carry no nebular lines).
    lines : numpy.ndarray, shape (n_templates, n_grid)
        Nebular emission lines of each template in the same units, from
        :func:`nebular_lines`; add ``strength * lines`` to ``flam``.
    """

    names: list[str]
    flam: np.ndarray
    lines: np.ndarray

    def with_lines(self, strength: float) -> np.ndarray:
        """Rest-frame f_lambda of every template with its lines scaled by ``strength``
        (0: continuum only; 1: the Ilbert et al. 2009 recipe)."""
        return self.flam + strength * self.lines if strength else self.flam


#: Lines added to galaxy templates: rest wavelength [A] and flux relative to [OII] 3727,
#: the ratios of Ilbert et al. (2009, ApJ 690, 1236), with [OIII] 4959 at 1/3 of 5007.
NEBULAR_LINES = {
    "Lya": (1215.67, 2.0),
    "[OII]": (3727.4, 1.0),
    "Hbeta": (4861.3, 0.61),
    "[OIII]4959": (4958.9, 0.12),
    "[OIII]5007": (5006.8, 0.36),
    "Halpha": (6562.8, 1.77),
}
#: L([OII]) / L_nu(UV) [Hz] from the Kennicutt (1998) star-formation-rate calibrations:
#: SFR = 1.4e-28 L_nu(1500-2800 A) = 1.4e-41 L([OII]).
OII_PER_UV_LNU = 1.4e-28 / 1.4e-41
#: Templates with a rest-frame NUV - r colour [AB] at or above this get no lines: they are
#: passive, and their UV light is not from young stars (the cut Le Phare applies).
LINES_MAX_NUV_R = 4.0


def _mean_fnu(flam: np.ndarray, low: float, high: float) -> np.ndarray:
    """Photon-weighted mean f_nu [f_lambda units x A Hz-1] of spectra in a top-hat band
    [low, high] A: sum(f_lambda lambda dlambda) / sum(c / lambda dlambda), on the log grid."""
    band = (GRID_WAVE >= low) & (GRID_WAVE <= high)
    return flam[..., band] @ GRID_WAVE[band] ** 2 / (C_ANGSTROM_PER_S * band.sum())


def nebular_lines(flam: np.ndarray) -> np.ndarray:
    """Nebular emission lines for star-forming galaxy templates (Ilbert et al. 2009 recipe).

    The [OII] 3727 flux follows from the template's own UV continuum through the Kennicutt
    (1998) calibrations, ``F([OII]) = 1e13 Hz * f_nu(2300 A)``; the other lines follow from
    fixed ratios to [OII] (:data:`NEBULAR_LINES`). Templates with rest-frame NUV - r >=
    :data:`LINES_MAX_NUV_R` get none. Each line is a Gaussian one grid pixel wide in
    ln(lambda) (sigma 600 km/s): irrelevant for broad-band fluxes, but broader than real
    nebular lines (~100 km/s) in simulated spectra.

    Parameters
    ----------
    flam : numpy.ndarray, shape (n, n_grid)
        Rest-frame f_lambda of the templates on the internal grid, dust-free.

    Returns
    -------
    numpy.ndarray, shape (n, n_grid)
        Line f_lambda in the units of ``flam``; attenuate it with the continuum.
    """
    flam = np.atleast_2d(flam)
    # Top-hat stand-ins for GALEX NUV (1771-2831 A) and SDSS r (5500-6900 A): the cut is
    # coarse, and the filter curves are not among the shared data.
    nuv = _mean_fnu(flam, 1771.0, 2831.0)
    r = _mean_fnu(flam, 5500.0, 6900.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        nuv_r = -2.5 * np.log10(nuv / r)
    uv_fnu = _mean_fnu(flam, 2200.0, 2400.0)
    oii = OII_PER_UV_LNU * uv_fnu * np.where(np.isfinite(nuv_r) & (nuv_r < LINES_MAX_NUV_R), 1.0, 0.0)
    sigma = GRID_DLN
    ln_wave = np.log(GRID_WAVE)
    lines = np.zeros_like(flam)
    for centre, ratio in NEBULAR_LINES.values():
        profile = np.exp(-0.5 * ((ln_wave - np.log(centre)) / sigma) ** 2)
        # Normalised so that the integral over lambda is 1: d lambda = lambda d ln lambda.
        profile /= np.sum(profile * GRID_WAVE) * GRID_DLN
        lines += (ratio * oii)[:, None] * profile[None, :]
    return lines


@functools.lru_cache(maxsize=1)
def load_galaxy_library() -> GalaxyLibrary:
    """Read the 31 COSMOS templates listed in ``seds/galaxies_cosmos/COSMOS_MOD.list``.

    Returns
    -------
    GalaxyLibrary
        Templates in list order: ellipticals, S0, spirals Sa-Sdm, starbursts SB0-SB11.
    """
    folder = shared_data_dir() / "seds" / "galaxies_cosmos"
    listing = folder / "COSMOS_MOD.list"
    if not listing.is_file():
        raise InputError(listing, "COSMOS template list not found")
    names, rows = [], []
    for line in listing.read_text().split():
        stem = Path(line).stem
        path = folder / f"{stem}.sed"
        try:
            data = np.loadtxt(path)
        except OSError:
            raise InputError(path, "COSMOS template listed but missing") from None
        names.append(stem)
        rows.append(_to_grid(data[:, 0], np.clip(data[:, 1], 0.0, None)))
    flam = np.array(rows)
    return GalaxyLibrary(names, flam, nebular_lines(flam))


@dataclass(frozen=True)
class QSOComponents:
    """Quasar rest-frame spectrum split into continuum and emission lines.

    The SED of a quasar with continuum-slope change ``dalpha`` (in f_nu ~ nu**alpha) and
    line-strength factor ``a`` is ``continuum * (lambda / 2500 A)**(-dalpha) + a * lines``.

    Attributes
    ----------
    continuum : numpy.ndarray, shape (n_grid,)
        Rest-frame f_lambda of the continuum (arbitrary units; includes the host-galaxy
        light of the composite at long wavelengths). Unabsorbed: blueward of Lyman-alpha it
        is the intrinsic power law, since the IGM is applied separately.
    lines : numpy.ndarray, shape (n_grid,)
        Rest-frame emission lines, Fe II and Balmer pseudo-continuum, same units.
    """

    continuum: np.ndarray
    lines: np.ndarray

    def sed(self, dalpha: float = 0.0, line_scale: float = 1.0) -> np.ndarray:
        """Rest-frame f_lambda for one slope change and line strength."""
        return self.continuum * (GRID_WAVE / 2500.0) ** (-dalpha) + line_scale * self.lines


# Rest-frame windows free of strong emission lines in quasar composites (Vanden Berk et al.
# 2001 and the usual continuum windows of quasar fitting codes) [Angstrom].
_QSO_WINDOWS = [
    (1340, 1365), (1440, 1470), (1690, 1710), (2150, 2180), (3020, 3060), (3790, 3810),
    (4200, 4230), (5080, 5110), (5600, 5700), (6050, 6150), (6800, 7000), (7700, 7900),
    (8500, 8600), (9700, 9900), (11000, 11500), (13000, 14000), (16000, 17000),
    (21000, 22000), (30000, 32000), (45000, 50000),
]


@functools.lru_cache(maxsize=1)
def load_qso_components() -> QSOComponents:
    """Build quasar continuum and line spectra from the SDSS composite (``QSO_SDSS.sed``).

    The continuum is a log-log interpolation of the composite through line-free windows.
    Blueward of 1340 A the composite is absorbed by the Lyman-alpha forest of the quasars it
    was averaged from, so there the continuum is the intrinsic power law measured between the
    1340-1470 A windows, steepening to alpha_nu = -1.7 below the Lyman limit (Lusso et al.
    2015). The lines are the composite minus the continuum, clipped at zero, for
    lambda > 1160 A, plus a Lyman-beta/O VI blend at 1033 A carrying 12 % of the Lyman-alpha
    + N V flux (Vanden Berk et al. 2001 give about 10 %).

    Returns
    -------
    QSOComponents
    """
    path = shared_data_dir() / "seds" / "qso" / "QSO_SDSS.sed"
    try:
        data = np.loadtxt(path)
    except OSError:
        raise InputError(path, "quasar composite not found") from None
    wave, flux = data[:, 0], np.clip(data[:, 1], 0.0, None)
    comp = _to_grid(wave, flux)
    centres, levels = [], []
    for lo, hi in _QSO_WINDOWS:
        sel = (wave >= lo) & (wave <= hi)
        centres.append(np.sqrt(lo * hi))
        levels.append(np.median(flux[sel]))
    lc, ll = np.log(centres), np.log(levels)
    logw = np.log(GRID_WAVE)
    cont = np.exp(np.interp(logw, lc, ll))
    # Intrinsic far-UV power law from the two bluest windows.
    slope = (ll[1] - ll[0]) / (lc[1] - lc[0])
    blue = logw < lc[0]
    cont[blue] = np.exp(ll[0] + slope * (logw[blue] - lc[0]))
    lyman = GRID_WAVE < 912.0
    f912 = np.exp(ll[0] + slope * (np.log(912.0) - lc[0]))
    cont[lyman] = f912 * (GRID_WAVE[lyman] / 912.0) ** (-2.0 + 1.7)
    lines = np.clip(comp - cont, 0.0, None)
    lines[GRID_WAVE < 1160.0] = 0.0
    # Lyman-beta + O VI: Gaussian with sigma 10 A (about 3000 km/s).
    lya = (GRID_WAVE > 1160) & (GRID_WAVE < 1290)
    lya_flux = np.sum(lines[lya] * GRID_WAVE[lya]) * GRID_DLN
    sigma = 10.0
    lines += 0.12 * lya_flux / (np.sqrt(2 * np.pi) * sigma) * np.exp(
        -0.5 * ((GRID_WAVE - 1033.0) / sigma) ** 2
    )
    return QSOComponents(cont, lines)


# ---------------------------------------------------------------- redshift band tables
def redshift_shifts(z_max: float, step: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Redshift grid on which redshifting is a whole-pixel shift of the internal grid.

    Parameters
    ----------
    z_max : float
        Largest redshift needed.
    step : int
        Pixels between grid redshifts; the grid is uniform in ln(1+z) with spacing
        ``step * GRID_DLN`` (0.004 by default, i.e. dz = 0.004 (1+z)).

    Returns
    -------
    shifts : numpy.ndarray of int
        Pixel shifts ``k``.
    z : numpy.ndarray
        Redshifts ``exp(k * GRID_DLN) - 1``, starting at 0.
    """
    kmax = int(np.ceil(np.log1p(z_max) / GRID_DLN / step)) * step
    shifts = np.arange(0, kmax + step, step)
    return shifts, np.expm1(shifts * GRID_DLN)


def redshift_band_table(
    rest_flam: np.ndarray, weights: np.ndarray, shifts: np.ndarray, igm: bool = True
) -> np.ndarray:
    """Band fluxes of rest-frame spectra redshifted onto a grid.

    The observed spectrum of rest-frame ``f(lambda)`` at redshift ``z`` is
    ``f(lambda / (1+z)) / (1+z) * T_IGM(lambda, z)`` (per unit luminosity distance squared,
    which the caller's distance modulus supplies).

    Parameters
    ----------
    rest_flam : numpy.ndarray, shape (n_spectra, n_grid)
        Rest-frame f_lambda on the internal grid.
    weights : numpy.ndarray, shape (n_bands, n_grid)
        :func:`skysort.simulate.filters.band_matrix`.
    shifts : numpy.ndarray of int
        Pixel shifts from :func:`redshift_shifts`.
    igm : bool
        Apply the Inoue (2014) IGM transmission.

    Returns
    -------
    numpy.ndarray, shape (n_spectra, n_shifts, n_bands)
        Mean f_nu per band, in the units of ``rest_flam`` times [A Hz-1].
    """
    support = np.nonzero(np.any(weights > 0, axis=0))[0]
    i0, i1 = int(support[0]), int(support[-1]) + 1
    w = weights[:, i0:i1].T
    out = np.empty((rest_flam.shape[0], shifts.size, weights.shape[0]))
    obs_wave = GRID_WAVE[i0:i1]
    for n, k in enumerate(shifts):
        if i0 - k < 0:
            raise ValueError("redshift beyond the internal grid")
        z = np.expm1(k * GRID_DLN)
        seg = rest_flam[:, i0 - k : i1 - k]
        factor = 1.0 / (1.0 + z)
        if igm and z > 0:
            seg = seg * (igm_transmission(obs_wave, z) * factor)
        else:
            seg = seg * factor
        out[:, n, :] = seg @ w
    return out
