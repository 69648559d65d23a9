"""Source populations: stars, galaxies and quasars with SEDs, redshifts and magnitudes.

:func:`draw_population` is the one vectorised entry point. Per object it draws a class, a
true magnitude in the preset's selection band, an SED (with redshift, dust, continuum
slope...), and turns them into true and observed AB magnitudes in every band of the preset
and into image fluxes in the preset's counts.

Models
------
Stars
    Pickles types with a high-latitude mix that changes with magnitude: bright stars are
    mostly thick-disc F-K dwarfs, faint ones halo turn-off stars (metal-weak F/G, the ``w``
    Pickles types) and M dwarfs; giants are a few per cent; no O/B stars or supergiants.
    Counts dN/dm ~ 10**(slope * m).
Hot spectroscopic-target stars
    With ``PopulationModel.hot_star_fraction`` > 0 that share of the stars is drawn from a
    hot component instead: white dwarfs and hot subdwarfs (whose optical continua the Pickles
    O and early-B dwarfs stand in for; the library has no white dwarf) and blue horizontal
    branch / A stars. They are a fraction of a per cent of high-latitude field stars, but
    SDSS and SEGUE took spectra of them on purpose (Yanny et al. 2009) and quasar selection
    picks them up by their ultraviolet excess, so spectroscopic star samples hold many. Off
    by default.
Metallicity of F/G dwarfs
    With ``PopulationModel.star_uv_excess`` > 0, dwarfs of SDSS g - r 0.2-0.6 get the u - g
    of their metallicity: [Fe/H] is drawn from the halo distribution (mean -1.46, sigma 0.30)
    for the metal-weak Pickles types (the halo turn-off stars of the mix) and from the thick
    disc's (-0.6, 0.2) for the others (Ivezic et al. 2008, ApJ 684, 287), and the u - g of the
    star is set by Ivezic et al.'s photometric-metallicity relation (their eq. 4, fitted to
    SDSS stars) at the template's g - r. The Pickles templates (solar and a single metal-weak
    group) put every halo star ~0.2 mag too red in u - g (1.12 against 0.90 at g - r 0.3), on
    the side of the quasars at z 2.5-3. The change is made as a grey factor on the flux below
    4000 A (line blanketing, which sets the ultraviolet excess, acts there), so photometry in
    every band and the spectra stay consistent. Off by default.

    With ``PopulationModel.star_halo_latitude`` also set (degrees), a dwarf belongs to the halo
    not by its template but with the probability that the Galactic structure model of Juric et
    al. (2008, ApJ 673, 864: thin and thick exponential discs, a flattened power-law halo)
    gives at its distance along a line of sight at that latitude, for the absolute magnitude
    of a turn-off star (M_r 4.5). At b = 55 deg the halo holds 16% of the turn-off stars at
    r = 16, 69% at r = 18 and more than 95% from r = 19 on, whereas the template mix
    (``star_mix_bright`` / ``star_mix_faint``, interpolated in magnitude) puts about 60% of
    them in the halo at r 19-21.
Galaxies
    COSMOS templates in three groups (E/S0, spirals Sa-Sdm, starbursts SB0-SB11), each with a
    Schechter luminosity function in the selection band, evolving as M*(z) = M*_0 - Q z and
    phi*(z) = phi*_0 (1+z)**P, in a flat LCDM cosmology (H0 = 70, Omega_m = 0.3). For a
    given apparent magnitude the joint probability of template and redshift is
    dV/dz * phi(m - DM(z) - K(z)), tabulated once; the magnitude distribution (number counts)
    is the sum of that table unless overridden. Calzetti attenuation E(B-V) in 0-0.5, drawn
    from a truncated exponential whose mean depends on the group. Redshift 0.02-1.5.
Spectroscopic-target galaxies
    With ``PopulationModel.galaxy_target_fraction`` > 0 (a preset's ``population`` block) that share of
    the galaxies is drawn from the same luminosity functions restricted to the objects the
    SDSS spectroscopic surveys targeted (:func:`_target_pass`: the main sample r < 17.77,
    BOSS LOWZ and CMASS, eBOSS LRGs). The (magnitude, template, redshift, E(B-V)) density of
    this component is the luminosity-function density times the published selection, so
    the bright low-z main-sample galaxies and the luminous red galaxies at z 0.2-0.8 come in
    the proportions the luminosity functions and the cuts imply, nothing fitted to real
    spectroscopic classes. Their E(B-V) is drawn on the 0.05 mag grid of the colour tables.
    The cuts see SDSS g r i z magnitudes (with SDSS catalogue noise) of the same SEDs
    whatever the survey, so a KiDS set holds the SDSS targets of its footprint, as the KiDS
    training sets cross-matched with SDSS spectroscopy do. A field population to r = 22.5 has ~1e4 galaxies deg^-2 against
    a few hundred spectroscopic targets, so without this component a classifier meant also
    for spectroscopic samples would almost never see them.
Quasars
    The SDSS composite split into continuum and lines (:func:`seds.load_qso_components`),
    with a Gaussian spread of the continuum slope (sigma_alpha = 0.3) and a log-normal line
    strength, SMC-law reddening (mean E(B-V) 0.03, Hopkins et al. 2004); the Inoue (2014) mean IGM transmission plus, per sightline, the nearest opaque
    Lyman-limit system drawn from l(z) = 0.25 (1+z)**1.14 (Ribaudo et al. 2011). Redshift
    log-normal (median 1.6) in 0.1-4.5; counts a double power law (break at 19.3).
Quasar hosts
    Below z = 0.7 (``PopulationModel.qso_host``, on by default) a quasar's light is the AGN
    plus an early/intermediate-type host (COSMOS Ell5-Ell7, S0, Sa, Sb templates, dust free)
    at the quasar's redshift. The host-to-AGN ratio at rest-frame 5100 A follows the mean
    relation of Shen et al. (2011) with the total 5100 A luminosity, corrected from the 3"
    fibre to the whole host, with log-normal scatter, and is carried to the selection band
    with the two SEDs (see :func:`_qso_hosts`). The
    selection-band magnitude is that of the sum, so hosts make low-z quasars redder at a given
    magnitude, as in real SDSS quasars whose light is measured in apertures that hold the host.

All objects get Milky Way extinction E(B-V) from an exponential of mean
``survey.galactic_ebv_mean`` (CCM law), so that the catalogue is, like real ones, not
dereddened; the drawn selection-band magnitude is the *observed* true magnitude.

Reproducibility
---------------
Objects are grouped in blocks of :data:`BLOCK` consecutive global indices. Block ``b`` draws
all its random numbers from ``numpy.random.SeedSequence([seed, b, stream])`` in fixed
per-object columns, so an object depends only on (seed, global index, options) and never
on how a run is chunked: ``draw_population(s, 10, seed, start=5)`` equals rows 5-14 of
``draw_population(s, 100, seed)``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
from astropy.table import Table
from scipy.special import ndtri

from ..errors import InputError
from . import seds
from .filters import C_ANGSTROM_PER_S, GRID_WAVE, band_matrix, load_filter
from .photometry import asinh_magnitudes, observe
from .presets import SurveyPreset, load_survey

__all__ = [
    "BLOCK",
    "CLASS_LABELS",
    "DEFAULT_CLASS_FRACTIONS",
    "GalaxyLF",
    "PopulationModel",
    "colour_offsets_vs_real",
    "draw_population",
    "load_sdss_specphot",
    "sdss_galaxy_targeting",
]

#: Objects per reproducibility block.
BLOCK = 1024
#: Class labels, in the order of the integer ``class_id`` column.
CLASS_LABELS = ("star", "galaxy", "qso")
#: Default class mixes: ``sources`` resembles an r <= 23 high-latitude survey (galaxies
#: ~3.5e4 deg^-2, stars ~5e3 deg^-2, quasars ~300 deg^-2); ``pointsources`` keeps the
#: star/quasar ratio of a point-source sample at r <= 22.
DEFAULT_CLASS_FRACTIONS = {
    "sources": {"star": 0.12, "galaxy": 0.86, "qso": 0.02},
    "pointsources": {"star": 0.85, "qso": 0.15},
}

_N_UNIFORM = 10  # random columns per object; fixed so that streams never shift
_COL_TARGET = 8  # galaxies: field or spectroscopic-target component; stars: field or hot component
_TARGET_DRAWS = 8  # noise draws averaged in the target-selection probability
_TARGET_SAMPLES = ("main", "lowz", "cmass", "eboss_lrg", "eboss_elg")
# Those of the default model (eboss_elg left out: see PopulationModel.galaxy_targets).
_DEFAULT_TARGETS = _TARGET_SAMPLES[:4]
_GAL_GROUPS = ("red", "spiral", "starburst")
# Block random streams (stream 0: uniforms, 1: photometric noise); hosts get their own so
# that switching them on or off leaves every other drawn quantity unchanged.
_STREAM_HOST = 2
_N_HOST_UNIFORM = 2
_STREAM_METALLICITY = 3
_STREAM_HALO = 4
#: Juric et al. (2008) Galactic structure (their Table 10, bias-corrected), pc: the Sun's
#: distance from the centre and height above the plane; thin and thick disc scale heights and
#: lengths, the thick disc's density relative to the thin at the Sun; the halo's density
#: relative to the thin disc at the Sun, its axis ratio and power-law index.
_JURIC = {"r_sun": 8000.0, "z_sun": 25.0, "h_thin": 300.0, "l_thin": 2600.0, "h_thick": 900.0, "l_thick": 3600.0,
          "f_thick": 0.12, "f_halo": 0.0051, "q_halo": 0.64, "n_halo": 2.77}
#: Absolute r magnitude of a main-sequence turn-off star, for its distance (Juric et al. 2008).
_TURNOFF_ABS_MAG_R = 4.5
#: Ivezic et al. (2008) eq. 4: [Fe/H] = A + B x + C y + D x y + E x^2 + F y^2 + G x^2 y
#: + H x y^2 + I x^3 + J y^3, with x = u - g, y = g - r (SDSS), for 0.2 < g - r < 0.6.
_IVEZIC_FEH = (-13.13, 14.09, 28.04, -5.51, -5.90, -58.68, 9.14, -20.61, 0.0, 58.20)
#: [Fe/H] (mean, sigma) of halo and thick-disc dwarfs (Ivezic et al. 2008, sections 4-5).
_HALO_FEH = (-1.46, 0.30)
_DISC_FEH = (-0.6, 0.2)
#: The ultraviolet excess acts on the flux blueward of this wavelength [A].
UV_EXCESS_EDGE = 4000.0


@dataclass(frozen=True)
class GalaxyLF:
    """Schechter luminosity function of one galaxy group.

    Attributes
    ----------
    phi_star : float
        Normalisation at z = 0 [Mpc^-3 mag^-1].
    m_star : float
        Characteristic absolute magnitude at z = 0 in the selection band [AB, h = 0.7].
    alpha : float
        Faint-end slope.
    q : float
        Luminosity evolution: M*(z) = m_star - q z.
    p : float
        Density evolution: phi*(z) = phi_star (1 + z)**p.
    ebv_mean : float
        Mean of the truncated-exponential Calzetti E(B-V) [mag].
    """

    phi_star: float
    m_star: float
    alpha: float
    q: float
    p: float
    ebv_mean: float


def _default_lfs() -> dict[str, GalaxyLF]:
    # Red/blue split in the spirit of Faber et al. (2007) and Loveday et al. (2012), with
    # h = 0.7; starbursts are the faint, steep, strongly evolving end of the blue cloud.
    return {
        "red": GalaxyLF(2.0e-3, -21.35, -0.5, 1.2, -1.0, 0.02),
        "spiral": GalaxyLF(2.5e-3, -21.0, -1.2, 1.3, 0.0, 0.15),
        "starburst": GalaxyLF(1.0e-3, -20.5, -1.45, 1.8, 1.0, 0.12),
    }


def _default_star_bright() -> dict[str, float]:
    # r ~ 15 at high latitude: thick-disc F/G/K dwarfs, some M dwarfs, a few giants.
    return {
        "f5v": 4, "f6v": 4, "f8v": 6, "g0v": 7, "g2v": 7, "g5v": 6, "g8v": 5,
        "k0v": 6, "k2v": 5, "k3v": 4, "k4v": 3, "k5v": 3, "k7v": 3,
        "m0v": 3, "m1v": 3, "m2v": 3, "m3v": 2, "m4v": 1,
        "wf5v": 2, "wf8v": 3, "wg0v": 3, "rg0v": 2, "rk0v": 1,
        "g8iii": 1, "k0iii": 1.5, "k1iii": 1, "k2iii": 1, "k3iii": 0.5, "a0v": 0.5,
    }


def _default_hot_stars() -> dict[str, float]:
    # White dwarfs / sdO / sdB (continua of O and early-B dwarfs: u - g -0.5 to 0.4,
    # g - r -0.6 to -0.4) and BHB / A stars (Balmer-jump colours, u - g ~ 1, g - r ~ -0.2).
    return {
        "o5v": 2, "o9v": 2, "b0v": 2, "b1v": 2, "b3v": 2, "b57v": 1, "b8v": 1, "b9v": 1,
        "b9iii": 1, "a0iii": 2, "a0v": 2, "a2v": 1, "a3iii": 1, "a5iii": 1, "a7iii": 1,
    }


def _default_star_faint() -> dict[str, float]:
    # r ~ 22: halo turn-off (metal-weak F/G) and disc M dwarfs dominate.
    return {
        "wf5v": 8, "wf8v": 10, "wg0v": 9, "wg5v": 5, "f5v": 3, "f8v": 3, "g0v": 3, "g5v": 2,
        "k0v": 2, "k2v": 2, "k5v": 2, "k7v": 3,
        "m0v": 4, "m1v": 4, "m2v": 5, "m2.5v": 4, "m3v": 4, "m4v": 3, "m5v": 1.5, "m6v": 0.5,
        "wk0iii": 0.5, "wg5iii": 0.5, "a0v": 0.5,
    }


@dataclass(frozen=True)
class PopulationModel:
    """Parameters of the source populations (all magnitudes AB in the selection band).

    Attributes
    ----------
    star_mix_bright, star_mix_faint : dict of str to float
        Relative weights of Pickles types at ``star_mag_pivots[0]`` and ``[1]``; the mix is
        interpolated linearly in magnitude between them and held constant outside.
    star_mag_pivots : tuple of float
        Magnitudes of the bright and faint mixes.
    star_count_slope : float
        d log10 N / dm of star counts.
    hot_star_fraction : float
        Share of stars drawn from ``hot_star_mix`` instead of the field mix (0, the default:
        field stars only).
    hot_star_mix : dict of str to float
        Relative weights of the Pickles types of the hot spectroscopic-target component
        (white-dwarf / hot-subdwarf and BHB / A-star stand-ins).
    star_uv_excess : float
        Strength of the metallicity-dependent u - g of F/G dwarfs (see the module notes): 0
        (the default) keeps the Pickles colours, 1 applies Ivezic et al.'s relation in full;
        values in between scale the change in u - g.
    star_halo_latitude : float
        With ``star_uv_excess``: Galactic latitude [deg, 20-90] of the line of sight along
        which a dwarf's halo membership is drawn from the Juric et al. (2008) model at its
        distance (see the module notes); 0 (the default): the metal-weak Pickles types are
        the halo.
    galaxy_lf : dict of str to GalaxyLF
        Luminosity functions of the groups ``red``, ``spiral``, ``starburst``.
    galaxy_z_range : tuple of float
        Redshift range of galaxies.
    ebv_max : float
        Upper bound of the Calzetti E(B-V) [mag].
    qso_z_median, qso_z_sigma : float
        Log-normal redshift distribution of quasars (sigma in ln(z)).
    qso_z_range : tuple of float
        Redshift range of quasars (the IGM model is used to z = 4.7).
    qso_count_break, qso_count_bright, qso_count_faint : float
        Double power-law counts: dN/dm ~ 1 / (10**(-b (m - m0)) + 10**(-f (m - m0))).
    qso_alpha_sigma : float
        Spread of the continuum slope alpha_nu.
    qso_line_sigma : float
        Spread of ln(line strength).
    qso_ebv_mean : float
        Mean of the truncated-exponential SMC-law E(B-V) of quasars (0-0.3) [mag].
    lls_norm, lls_gamma : float
        Lyman-limit systems per unit redshift: lls_norm (1+z)**lls_gamma.
    qso_host : bool
        Give quasars below ``qso_host_z_max`` a host galaxy (default True). With False every
        quasar is a pure AGN and its ``host_*`` columns are zero; nothing else changes.
    qso_host_z_max : float
        Quasars at z below this have hosts; must not exceed ``galaxy_z_range[1]``.
    qso_host_templates : tuple of str
        COSMOS templates the host SED is drawn from (uniformly, no dust). Default the young
        ellipticals, S0 and early spirals: low-z AGN live in massive, bulge-dominated galaxies
        with somewhat young stellar populations (Kauffmann et al. 2003).
    qso_host_ratio_sigma : float
        Log-normal scatter of the host-to-AGN flux ratio around the mean relation [dex].
    qso_host_ratio_min : float
        Floor of the mean host-to-AGN ratio at 5100 A, for the most luminous quasars, where
        the Shen et al. (2011) relation falls to zero.
    qso_host_logl_min : float
        log10 of the smallest total 5100 A luminosity [erg s-1] at which the relation is
        evaluated; fainter AGN get its value there (no extrapolation of the cubic fit).
    qso_host_aperture : float
        Total host light over the host light in a 3" SDSS fibre, which the Shen et al.
        (2011) relation refers to. A host of half-light radius ~1" (5-6 kpc at z = 0.3-0.5)
        seen in 1.4" seeing puts about 55-60 % of its light in the fibre, hence 1.7; the
        catalogue and image fluxes are totals.
    galaxy_target_fraction : float
        Share of galaxies drawn from the spectroscopic-target component (0 = field
        population only, the default and that of the shipped presets; a preset file sets it
        under ``population``). The cuts are applied to SDSS g r i z magnitudes computed from
        the same SEDs, with SDSS catalogue noise, for any survey's filters.
    galaxy_emission_lines : float
        Strength of the nebular emission lines added to star-forming galaxy templates (and
        quasar hosts) relative to the Ilbert et al. (2009) recipe of
        :func:`skysort.simulate.seds.nebular_lines`: 0 (the default) keeps the continuum-only
        templates, 1 is the recipe. The luminosity functions then apply to rest-frame
        magnitudes that include the lines (mostly H-alpha), which lowers the galaxy counts at
        fixed apparent magnitude (by 9% to r = 22.5 in the ``sdss`` preset with 1).
    galaxy_targets : tuple of str
        Target samples of that component, among ``main``, ``lowz``, ``cmass``,
        ``eboss_lrg``, ``eboss_elg`` (see :func:`_target_pass`). The default leaves out the
        emission-line galaxies: cut on the survey's own noisy photometry, the luminosity
        functions put ~1,100 deg^-2 in the eBOSS ELG box (~640 noise-free) against the
        ~240 deg^-2 of the real selection.
    """

    star_mix_bright: dict[str, float] = field(default_factory=_default_star_bright)
    star_mix_faint: dict[str, float] = field(default_factory=_default_star_faint)
    star_mag_pivots: tuple[float, float] = (15.0, 22.0)
    star_count_slope: float = 0.12
    hot_star_fraction: float = 0.0
    hot_star_mix: dict[str, float] = field(default_factory=_default_hot_stars)
    star_uv_excess: float = 0.0
    star_halo_latitude: float = 0.0
    galaxy_lf: dict[str, GalaxyLF] = field(default_factory=_default_lfs)
    galaxy_z_range: tuple[float, float] = (0.02, 1.5)
    ebv_max: float = 0.5
    qso_z_median: float = 1.6
    qso_z_sigma: float = 0.55
    qso_z_range: tuple[float, float] = (0.1, 4.5)
    qso_count_break: float = 19.3
    qso_count_bright: float = 0.9
    qso_count_faint: float = 0.28
    qso_alpha_sigma: float = 0.3
    qso_line_sigma: float = 0.25
    qso_ebv_mean: float = 0.03
    lls_norm: float = 0.25
    lls_gamma: float = 1.14
    qso_host: bool = True
    qso_host_z_max: float = 0.7
    qso_host_templates: tuple[str, ...] = (
        "Ell5_A_0", "Ell6_A_0", "Ell7_A_0", "S0_A_0", "Sa_A_0", "Sa_A_1", "Sb_A_0", "Sb_A_1",
    )
    qso_host_ratio_sigma: float = 0.2
    qso_host_ratio_min: float = 0.05
    qso_host_logl_min: float = 43.5
    qso_host_aperture: float = 1.7
    galaxy_target_fraction: float = 0.0
    galaxy_emission_lines: float = 0.0
    galaxy_targets: tuple[str, ...] = _DEFAULT_TARGETS

    def __post_init__(self):
        for name, high in (("galaxy_target_fraction", 1.0), ("hot_star_fraction", 1.0), ("galaxy_emission_lines", 10.0),
                           ("star_uv_excess", 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= high:
                raise InputError("population model", f"{name} must be a number in [0, {high:g}], got {value!r}")
        latitude = self.star_halo_latitude
        if isinstance(latitude, bool) or not isinstance(latitude, (int, float)) or not (latitude == 0 or 20 <= latitude <= 90):
            raise InputError("population model", f"star_halo_latitude must be 0 (off) or a latitude in [20, 90] deg, got {latitude!r}")
        if latitude and not self.star_uv_excess:
            raise InputError("population model", "star_halo_latitude sets the halo membership of the metallicity model: "
                                                  "it needs star_uv_excess > 0")

    @classmethod
    def from_preset(cls, survey: SurveyPreset) -> PopulationModel:
        """The default model with the preset's ``population`` overrides (:meth:`from_overrides`,
        errors naming the preset's file)."""
        if not survey.population:
            return cls()
        return cls.from_overrides(survey.population, survey.source_file or f"{survey.name} preset population")

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any], where: str) -> PopulationModel:
        """The default model with ``overrides`` of its scalar and tuple parameters, each checked.

        Parameters
        ----------
        overrides : mapping of str to value
            Parameter name to value, as read from YAML (a list for a tuple parameter; a single
            text for a one-element tuple of names).
        where : str
            The option or file the overrides came from, named in errors.

        Returns
        -------
        PopulationModel

        Raises
        ------
        InputError
            An unknown parameter (with the nearest known one), a value of the wrong type
            (a number for a flag, text for a number, a number for a range), a non-finite
            number, or one outside the parameter's range (:data:`_OVERRIDE_LIMITS`).
        """
        defaults = cls()
        allowed = sorted(k for k, v in asdict(defaults).items() if not isinstance(v, dict))
        values = {}
        for key, value in overrides.items():
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "see skysort.simulate.population.PopulationModel"
                raise InputError(where, f"unknown population parameter {key!r} ({hint})")
            values[key] = _checked_override(key, value, getattr(defaults, key), where)
        try:
            return cls(**values)
        except InputError as exc:
            raise InputError(where, exc.problem) from None

    def key(self) -> str:
        """Stable hash of the parameters (for table caching)."""
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()


#: Ranges of the numeric population parameters a preset or ``--population`` may set: (low,
#: high), either end None for unbounded. The tables are computed on E(B-V) grids to 0.5 mag
#: (galaxies) and 0.3 mag (quasars), and the quasar IGM model reaches z = 4.7.
_OVERRIDE_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "ebv_max": (0.0, 0.5), "qso_ebv_mean": (1e-6, 0.3), "qso_z_median": (1e-3, 4.7), "qso_z_sigma": (1e-3, None),
    "qso_alpha_sigma": (0.0, None), "qso_line_sigma": (0.0, None), "lls_norm": (0.0, None),
    "qso_count_bright": (0.0, None), "qso_count_faint": (0.0, None), "qso_host_ratio_sigma": (0.0, None),
    "qso_host_ratio_min": (0.0, None), "qso_host_aperture": (1.0, None), "qso_host_z_max": (0.0, None),
    "star_mag_pivots": (None, None), "galaxy_z_range": (1e-3, 6.0), "qso_z_range": (1e-3, 4.7),
}


def _checked_override(key: str, value: Any, default: Any, where: str) -> Any:
    """``value`` for parameter ``key`` in the type of its ``default``, or an InputError."""
    if isinstance(default, bool):
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        raise InputError(where, f"{key} is a flag: give true or false, got {value!r}")
    low, high = _OVERRIDE_LIMITS.get(key, (None, None))
    if isinstance(default, tuple) and all(isinstance(v, str) for v in default):
        names = (value,) if isinstance(value, str) else value
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(v, str) for v in names):
            raise InputError(where, f"{key} is a list of names, got {value!r}")
        return tuple(names)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise InputError(where, f"{key} is a range [low, high] of {len(default)} numbers, got {value!r}")
        numbers = tuple(_checked_number(key, v, low, high, where) for v in value)
        if not numbers[0] < numbers[1]:
            raise InputError(where, f"{key} must be [low, high] with low < high, got {list(numbers)}")
        return numbers
    return _checked_number(key, value, low, high, where)


def _checked_number(key: str, value: Any, low: float | None, high: float | None, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(where, f"{key} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{'-inf' if low is None else f'{low:g}'} to {'inf' if high is None else f'{high:g}'}"
        raise InputError(where, f"{key} must lie within {span}, got {value!r}")
    return float(value)


# ------------------------------------------------------------------------- the tables
_EBV_GRID = np.linspace(0.0, 0.5, 11)
_QSO_SLOPES = np.linspace(-1.5, 1.5, 13)
_QSO_EBV = np.linspace(0.0, 0.3, 7)
_MAG_STEP = 0.05


def _galaxy_group(name: str) -> str:
    if name.startswith(("Ell", "S0")):
        return "red"
    if name.startswith("SB"):
        return "starburst"
    return "spiral"


class _Tables:
    """Everything precomputed for one (filter set, selection band, model)."""

    def __init__(self, survey: SurveyPreset, model: PopulationModel):
        from astropy.cosmology import FlatLambdaCDM

        self.bands = survey.band_names
        self.sel = self.bands.index(survey.selection.band)
        filters = survey.load_filters()
        w = band_matrix(filters)
        self.weights = w
        nb = len(self.bands)

        # Milky Way extinction per band per unit E(B-V), for a flat-f_nu source.
        flat = 1.0 / GRID_WAVE**2
        ext = 10 ** (-0.4 * 0.1 * seds.ccm_extinction(GRID_WAVE))
        self.r_mw = -2.5 * np.log10((w @ (flat * ext)) / (w @ flat)) / 0.1

        # Stars: colour relative to the selection band.
        stars = seds.load_star_library()
        fs = stars.flam @ w.T
        self.star_names = np.array(stars.names)
        self.star_colour = -2.5 * np.log10(fs / fs[:, [self.sel]])
        if model.star_uv_excess > 0:
            # For the metallicity model: each template's SDSS u - g and g - r, whether it is a
            # dwarf and metal-weak, and the share of each band's flux (survey and SDSS u, g)
            # blueward of the ultraviolet-excess edge.
            sdss = load_survey("sdss")
            w_sdss = band_matrix([load_filter(sdss.filter_path(b), b) for b in ("u", "g", "r")])
            ugr = -2.5 * np.log10(stars.flam @ w_sdss.T)
            self.star_sdss_ug, self.star_sdss_gr = ugr[:, 0] - ugr[:, 1], ugr[:, 1] - ugr[:, 2]
            names = [n.lower() for n in stars.names]
            self.star_dwarf = np.array([n.endswith("v") and not n.endswith("iv") for n in names])
            self.star_metal_weak = np.array([n.startswith("w") for n in names])
            blue = (GRID_WAVE < UV_EXCESS_EDGE).astype(float)
            self.star_blue_share = (stars.flam * blue) @ w.T / fs
            self.star_blue_share_ug = (stars.flam * blue) @ w_sdss[:2].T / (stars.flam @ w_sdss[:2].T)
        self.star_cdf = []
        # Mixes: field at the bright pivot, field at the faint pivot, hot component.
        for mix in (model.star_mix_bright, model.star_mix_faint, model.hot_star_mix):
            p = np.zeros(len(stars.names))
            for name, weight in mix.items():
                if name not in stars.names:
                    raise InputError("population model", f"unknown Pickles type {name!r}")
                p[stars.index(name)] = weight
            self.star_cdf.append(np.cumsum(p) / p.sum())

        # Galaxies: colour and K-correction tables over template x E(B-V) x z.
        gal = seds.load_galaxy_library()
        self.gal_names = np.array(gal.names)
        groups = [_galaxy_group(n) for n in gal.names]
        self.gal_group = np.array([_GAL_GROUPS.index(g) for g in groups])
        ntemp = len(gal.names)
        atten = 10 ** (-0.4 * np.outer(_EBV_GRID, seds.calzetti_k(GRID_WAVE)))
        # Lines are attenuated with the continuum (one E(B-V) for stars and gas, as Le Phare).
        gal_flam = gal.with_lines(model.galaxy_emission_lines)
        rest = (gal_flam[:, None, :] * atten[None, :, :]).reshape(-1, GRID_WAVE.size)
        shifts, zgrid = seds.redshift_shifts(model.galaxy_z_range[1] + 0.05)
        table = seds.redshift_band_table(rest, w, shifts)
        table = table.reshape(ntemp, _EBV_GRID.size, zgrid.size, nb)
        lnf = np.log(np.clip(table, 1e-300, None))
        self.gal_z = zgrid
        self.gal_lnz = np.log1p(zgrid)
        self.gal_colour = -2.5 / np.log(10) * (lnf - lnf[..., [self.sel]])
        # K-correction of the selection band (dust-free) w.r.t. the rest-frame template.
        rest_mag = -2.5 / np.log(10) * lnf[:, 0, 0, self.sel]
        kcorr = -2.5 / np.log(10) * lnf[:, 0, :, self.sel] - rest_mag[:, None]

        cosmo = FlatLambdaCDM(H0=70.0, Om0=0.3)
        zmin, zmax = model.galaxy_z_range
        zuse = (zgrid >= zmin) & (zgrid <= zmax)
        zsafe = np.where(zgrid > 0, zgrid, 1e-4)
        dm = cosmo.distmod(zsafe).value
        self.gal_dm = dm
        self.gal_kcorr = kcorr
        dz = np.gradient(zgrid)
        dvdz = cosmo.differential_comoving_volume(zsafe).value * dz  # Mpc^3 / sr per bin
        mags = np.arange(8.0, 30.0 + _MAG_STEP, _MAG_STEP)
        self.mag_grid = mags
        weight = np.zeros((mags.size, ntemp, zgrid.size))
        counts_in_group = np.bincount(self.gal_group, minlength=3)
        for t in range(ntemp):
            lf = model.galaxy_lf[_GAL_GROUPS[self.gal_group[t]]]
            mstar = lf.m_star - lf.q * zgrid
            phi = lf.phi_star * (1 + zgrid) ** lf.p
            absmag = mags[:, None] - dm[None, :] - kcorr[t][None, :]
            x = 10 ** (0.4 * (mstar[None, :] - absmag))
            sch = 0.4 * np.log(10) * phi[None, :] * x ** (lf.alpha + 1) * np.exp(-x)
            weight[:, t, :] = sch * dvdz[None, :] * zuse[None, :] / counts_in_group[
                self.gal_group[t]
            ]
        flat_w = weight.reshape(mags.size, -1)
        self.gal_counts = flat_w.sum(axis=1)
        cdf = np.cumsum(flat_w, axis=1)
        cdf /= np.where(cdf[:, -1:] > 0, cdf[:, -1:], 1.0)
        self.gal_tz_cdf = cdf
        self.gal_tz_cdf_flat = (cdf + np.arange(mags.size)[:, None]).ravel()
        self.gal_ntz = zgrid.size
        self.gal_target_counts = None
        if model.galaxy_target_fraction > 0:
            self._target_tables(survey, model, weight, rest, shifts, lnf)

        # Quasars: continuum (over a slope grid) and line tables over z.
        q = seds.load_qso_components()
        qdust = 10 ** (-0.4 * np.outer(_QSO_EBV, seds.smc_k(GRID_WAVE)))
        rest_q = np.array(
            [q.continuum * (GRID_WAVE / 2500.0) ** (-s) for s in _QSO_SLOPES] + [q.lines]
        )
        rest_q = (qdust[:, None, :] * rest_q[None, :, :]).reshape(-1, GRID_WAVE.size)
        qshifts, qz = seds.redshift_shifts(model.qso_z_range[1] + 0.05)
        qt = seds.redshift_band_table(rest_q, w, qshifts, igm=True)
        qt = qt.reshape(_QSO_EBV.size, _QSO_SLOPES.size + 1, qz.size, nb)
        self.qso_z = qz
        self.qso_lnz = np.log1p(qz)
        self.qso_lncont = np.log(np.clip(qt[:, :-1], 1e-300, None))  # (ebv, slope, z, band)
        self.qso_lines = qt[:, -1]  # (ebv, z, band)
        # Fraction of each band's photon-weighted flat-f_nu signal redward of a cut-off
        # wavelength, to truncate bands at an opaque Lyman-limit system.
        cw = w * flat[None, :]
        above = np.cumsum(cw[:, ::-1], axis=1)[:, ::-1]
        self.frac_above = above / above[:, :1]

        # Quasar hosts: ratio of the selection-band mean f_nu to the monochromatic f_nu at
        # rest-frame 5100 A, observed at 5100 (1+z) (both carry the same 1/(1+z) of the
        # redshifted f_lambda), for the host templates and for the quasar composite. The
        # composite is the mean *total* spectrum of SDSS quasars (host light included), so
        # it also converts a quasar's total magnitude into its 5100 A luminosity.
        def rest_fnu_5100(flam):
            win = (GRID_WAVE > 5080.0) & (GRID_WAVE < 5120.0)
            return np.mean(flam[..., win], axis=-1) * 5100.0**2 / C_ANGSTROM_PER_S

        if model.qso_host:
            if model.qso_host_z_max > model.galaxy_z_range[1]:
                raise InputError(
                    "population model", "qso_host_z_max must not exceed galaxy_z_range[1]"
                )
            names = list(gal.names)
            unknown = [t for t in model.qso_host_templates if t not in names]
            if unknown or not model.qso_host_templates:
                raise InputError("population model", f"unknown or no host templates {unknown}")
            ht = np.array([names.index(t) for t in model.qso_host_templates])
            self.host_t = ht
            self.host_names = self.gal_names[ht]
            host_sel = table[ht, 0, :, self.sel]  # (n_host, z)
            self.host_ln_s5100 = np.log(
                np.clip(host_sel, 1e-300, None)
                / (rest_fnu_5100(gal_flam[ht])[:, None] * (1.0 + zgrid)[None, :])
            )
            s0 = int(np.argmin(np.abs(_QSO_SLOPES)))
            agn_sel = qt[0, s0, :, self.sel] + qt[0, -1, :, self.sel]
            self.qso_ln_s5100 = np.log(
                np.clip(agn_sel, 1e-300, None) / (rest_fnu_5100(q.sed()) * (1.0 + qz))
            )


    def _target_tables(self, survey: SurveyPreset, model: PopulationModel, weight: np.ndarray,
                       rest: np.ndarray, shifts, lnf: np.ndarray):
        """(magnitude, template, z) density of spectroscopic targets; E(B-V) drawn later.

        The cuts are SDSS's, on SDSS g r i z magnitudes with SDSS catalogue noise, whatever
        the survey: a survey with other filters or depths (KiDS, say) holds the SDSS targets
        that fall in its footprint, selected by SDSS photometry. ``self.target_colour`` holds,
        per (template, E(B-V), z), the magnitudes in SDSS bands (g r i z, or all five for a
        survey on the SDSS filters, whose own colours they are) minus the survey's
        selection-band magnitude.
        """
        sdss = load_survey("sdss")
        # A survey on SDSS's own filters (the sdss preset) has these colours in its tables already.
        if list(self.bands) == list(sdss.band_names) and all(
                str(survey.filter_path(b)) == str(sdss.filter_path(b)) for b in self.bands):
            target_bands, self.target_colour = list(self.bands), self.gal_colour
        else:
            target_bands = list("griz")
            self.target_colour = _sdss_colour(rest, shifts, lnf[..., self.sel], sdss, target_bands)
        self.band_idx = {b: target_bands.index(b) for b in "griz"}
        bad = [t for t in model.galaxy_targets if t not in _TARGET_SAMPLES]
        if bad or not model.galaxy_targets:
            raise InputError("population model", f"galaxy_targets must be among {_TARGET_SAMPLES}, got {bad}")
        # Probability of each E(B-V) grid cell per template: the truncated exponential of the
        # template's group integrated over the cell.
        half = 0.5 * (_EBV_GRID[1] - _EBV_GRID[0])
        lo = np.clip(_EBV_GRID - half, 0.0, model.ebv_max)
        hi = np.clip(_EBV_GRID + half, 0.0, model.ebv_max)
        means = np.array([model.galaxy_lf[g].ebv_mean for g in _GAL_GROUPS])[self.gal_group]
        cdf = lambda x: 1.0 - np.exp(-x[None, :] / means[:, None])  # noqa: E731
        pe = cdf(hi) - cdf(lo)
        self.gal_ebv_p = pe / pe.sum(axis=1, keepdims=True)  # (template, ebv)
        # The real cuts were applied to measured magnitudes: the pass probability averages
        # the cuts over fixed catalogue-noise draws, so that, as in the real samples, objects
        # just outside the colour boxes are scattered in and those just inside are lost.
        self.target_sky = np.array([sdss.flux_sigma(b) for b in target_bands])
        self.target_zp = sdss.zero_point
        self.target_floor = sdss.mag_error_floor
        self.target_normals = np.random.default_rng(20160101).standard_normal((_TARGET_DRAWS, len(target_bands)))
        tw = np.zeros_like(weight)
        # No cut reaches r = 23.5 (the faintest, eBOSS z < 19.95, has r - z < 3.5 for any
        # template here), so fainter rows stay empty.
        rows = np.nonzero((weight.sum(axis=(1, 2)) > 0) & (self.mag_grid < 23.5))[0]
        for m in rows:
            # Only (template, z) cells that carry weight at this magnitude are worth the cuts.
            ti, zi = np.nonzero(weight[m] > 1e-6 * weight[m].max())
            prob = self._target_prob(self.mag_grid[m], self.target_colour[ti, :, zi], model.galaxy_targets)
            tw[m, ti, zi] = weight[m, ti, zi] * np.sum(self.gal_ebv_p[ti] * prob, axis=1)
        flat_t = tw.reshape(self.mag_grid.size, -1)
        self.gal_target_counts = flat_t.sum(axis=1)
        cdf_t = np.cumsum(flat_t, axis=1)
        cdf_t /= np.where(cdf_t[:, -1:] > 0, cdf_t[:, -1:], 1.0)
        self.gal_target_cdf_flat = (cdf_t + np.arange(self.mag_grid.size)[:, None]).ravel()

    def _target_prob(self, r, colour, samples):
        """Probability that noisy catalogue magnitudes pass :func:`_target_pass`.

        ``r`` [AB], the survey's selection-band magnitude, broadcasts against
        ``colour[..., 0]`` (rows of ``target_colour``: SDSS magnitudes minus ``r``); the
        errors are those of :func:`skysort.simulate.photometry.observe` (sky-limited plus
        floor) of the ``sdss`` preset.
        """
        mag = np.asarray(r)[..., None] + colour
        flux = 10 ** (-0.4 * (mag - self.target_zp))
        sig = 1.0857 * np.sqrt(self.target_sky**2 + (self.target_floor / 1.0857 * flux) ** 2) / flux
        prob = np.zeros(mag.shape[:-1])
        for nrm in self.target_normals:
            noisy = mag + sig * nrm
            prob += _target_pass(noisy[..., self.band_idx["r"]], noisy - noisy[..., [self.band_idx["r"]]],
                                 self.band_idx, samples)
        return prob / len(self.target_normals)


def _sdss_colour(rest: np.ndarray, shifts, selection_lnf: np.ndarray, sdss: SurveyPreset,
                 bands: Sequence[str]) -> np.ndarray:
    """Magnitudes in the SDSS bands minus a survey's selection-band magnitude, per grid cell.

    Parameters
    ----------
    rest : numpy.ndarray, shape (n_template * n_ebv, n_wave)
        Rest-frame attenuated galaxy SEDs on ``GRID_WAVE`` (f_lambda).
    shifts
        The redshift grid's shifts (:func:`skysort.simulate.seds.redshift_shifts`).
    selection_lnf : numpy.ndarray, shape (n_template, n_ebv, n_z)
        Natural log of the survey's selection-band flux of the same SEDs and grid.
    sdss : SurveyPreset
        The ``sdss`` preset, whose filter curves define the target cuts' bands.
    bands : sequence of str
        SDSS bands wanted.

    Returns
    -------
    numpy.ndarray, shape (n_template, n_ebv, n_z, len(bands))
        Colours [mag], on the same AB scale as the survey's magnitudes.
    """
    w = band_matrix([load_filter(sdss.filter_path(b), b) for b in bands])
    table = seds.redshift_band_table(rest, w, shifts).reshape(*selection_lnf.shape, len(bands))
    lnf = np.log(np.clip(table, 1e-300, None))
    return -2.5 / np.log(10) * (lnf - selection_lnf[..., None])


def _target_pass(r, colour, band_idx, samples=_TARGET_SAMPLES):
    """Whether galaxies of r magnitude ``r`` and colours ``colour`` are SDSS spectroscopic targets.

    Published cuts on model/cmodel magnitudes, applied to true AB magnitudes: the SDSS main
    galaxy sample r < 17.77 (Strauss et al. 2002, AJ 124, 1810); BOSS LOWZ, 16 < r < 19.6,
    |c_perp| < 0.2, r < 13.5 + c_par / 0.3, and BOSS CMASS, 17.5 < i < 19.9,
    d_perp > 0.55, i < 19.86 + 1.6 (d_perp - 0.8), r - i < 2 (Reid et al. 2016, MNRAS 455,
    1553, sect. 2.2); eBOSS LRGs, 19.9 <= i < 21.8, z < 19.95, r - i > 0.98,
    i - z > 0.625 (Prakash et al. 2016, ApJS 224, 34); eBOSS emission-line galaxies (SGC
    cuts of Raichoor et al. 2017, MNRAS 471, 3955), 21.825 < g < 22.825,
    -0.068 (r - z) + 0.457 < g - r < 0.112 (r - z) + 0.773 and
    0.637 (g - r) + 0.399 < r - z < -0.555 (g - r) + 1.901, made on deeper DECaLS photometry
    but applied here to the survey's own bands and noise. Fibre-magnitude, star-galaxy and
    WISE cuts are not modelled. With the default luminosity functions and the ``sdss`` depths these give
    about 75 (main), 38 (LOWZ), 134 (CMASS) and 109 (eBOSS, no WISE cut) targets deg^-2,
    against the published ~90, ~30, ~120 and ~60.

    Parameters
    ----------
    r : float or numpy.ndarray
        r magnitude [AB], broadcast against ``colour[..., 0]``.
    colour : numpy.ndarray, shape (..., n_bands)
        Magnitudes minus the r magnitude [mag].
    band_idx : dict of str to int
        Positions of g, r, i, z in the last axis of ``colour``.
    samples : tuple of str
        Samples to include.

    Returns
    -------
    numpy.ndarray of bool, shape ``colour.shape[:-1]``
    """
    g = r + colour[..., band_idx["g"]]
    i = r + colour[..., band_idx["i"]]
    z = r + colour[..., band_idx["z"]]
    r = r + colour[..., band_idx["r"]]
    c_par = 0.7 * (g - r) + 1.2 * (r - i - 0.18)
    c_perp = (r - i) - (g - r) / 4.0 - 0.18
    d_perp = (r - i) - (g - r) / 8.0
    out = np.zeros(np.shape(g), bool)
    if "main" in samples:
        out |= r < 17.77
    if "lowz" in samples:
        out |= (r > 16.0) & (r < 19.6) & (np.abs(c_perp) < 0.2) & (r < 13.5 + c_par / 0.3)
    if "cmass" in samples:
        out |= (
            (i > 17.5) & (i < 19.9) & (d_perp > 0.55) & (i < 19.86 + 1.6 * (d_perp - 0.8))
            & (r - i < 2.0)
        )
    if "eboss_lrg" in samples:
        out |= (i >= 19.9) & (i < 21.8) & (z < 19.95) & (r - i > 0.98) & (i - z > 0.625)
    if "eboss_elg" in samples:
        gr, rz = g - r, r - z
        out |= ((g > 21.825) & (g < 22.825) & (gr > -0.068 * rz + 0.457) & (gr < 0.112 * rz + 0.773)
                & (rz > 0.637 * gr + 0.399) & (rz < -0.555 * gr + 1.901))
    return out


_TABLE_CACHE: dict[tuple[str, str], _Tables] = {}


def _tables(survey: SurveyPreset, model: PopulationModel) -> _Tables:
    """The tables of (survey filters, selection band, model), built once per process."""
    paths = tuple(str(survey.filter_path(b)) for b in survey.band_names)
    # The survey's depths do not enter: the spectroscopic-target cuts carry SDSS's noise.
    key = (json.dumps([paths, survey.band_names, survey.selection.band]), model.key())
    if key not in _TABLE_CACHE:
        if len(_TABLE_CACHE) >= 8:
            _TABLE_CACHE.pop(next(iter(_TABLE_CACHE)))
        _TABLE_CACHE[key] = _Tables(survey, model)
    return _TABLE_CACHE[key]


# --------------------------------------------------------------------------- sampling
def _block_randoms(seed: int, start: int, n: int, stream: int, ncol: int, normal: bool):
    """Random columns for global indices start..start+n-1, chunking-independent."""
    if n == 0:
        return np.empty((0, ncol))
    first, last = start // BLOCK, (start + n - 1) // BLOCK
    parts = []
    for b in range(first, last + 1):
        rng = np.random.default_rng(np.random.SeedSequence([seed, b, stream]))
        arr = rng.standard_normal((BLOCK, ncol)) if normal else rng.random((BLOCK, ncol))
        lo = max(start, b * BLOCK) - b * BLOCK
        hi = min(start + n, (b + 1) * BLOCK) - b * BLOCK
        parts.append(arr[lo:hi])
    return np.concatenate(parts, axis=0)


def _inverse_cdf(u, grid, density, lo, hi):
    """Sample a piecewise-constant density given at grid-bin centres, within [lo, hi]."""
    step = grid[1] - grid[0]
    edges = np.clip(np.concatenate([grid - step / 2, [grid[-1] + step / 2]]), lo, hi)
    cdf = np.concatenate([[0.0], np.cumsum(density * np.diff(edges))])
    cdf /= cdf[-1]
    return np.interp(u, cdf, edges)


def _mag_density(kind: str, tab: _Tables, model: PopulationModel, lo: float, hi: float):
    m = tab.mag_grid
    inside = (m >= lo - 1e-9) & (m <= hi + 1e-9)
    if kind == "star":
        dens = 10 ** (model.star_count_slope * (m - 20.0))
    elif kind == "qso":
        x = m - model.qso_count_break
        dens = 1.0 / (10 ** (-model.qso_count_bright * x) + 10 ** (-model.qso_count_faint * x))
    elif kind == "galaxy_target":
        dens = tab.gal_target_counts.copy()
    else:
        dens = tab.gal_counts.copy()
    return m[inside], dens[inside]


def _draw_mags(u, label, tab, model, mag_range, mag_distributions):
    if mag_distributions and label in mag_distributions:
        edges, weights = (np.asarray(a, dtype=float) for a in mag_distributions[label])
        if edges.size != weights.size + 1 or np.any(weights < 0) or weights.sum() <= 0:
            raise InputError("mag_distributions", f"{label}: need edges (n+1) and weights (n)")
        cdf = np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
        return np.interp(u, cdf, edges)
    grid, dens = _mag_density(label, tab, model, *mag_range)
    if grid.size < 2:
        raise InputError("mag_range", f"empty magnitude range {mag_range}")
    return _inverse_cdf(u, grid, dens, *mag_range)


def _interp_axis(xgrid, x):
    """Fractional index and weight of x on a uniform grid."""
    pos = (x - xgrid[0]) / (xgrid[1] - xgrid[0])
    i0 = np.clip(np.floor(pos).astype(int), 0, xgrid.size - 2)
    f = np.clip(pos - i0, 0.0, 1.0)
    return i0, f


def _truncated_exponential(u, mean, upper):
    """Inverse CDF of an exponential of given mean truncated to [0, upper]."""
    mean = np.maximum(mean, 1e-6)
    top = 1.0 - np.exp(-upper / mean)
    return -mean * np.log1p(-u * top)


def _stars(u, mags, tab, model):
    lo, hi = model.star_mag_pivots
    faint = np.clip((mags - lo) / (hi - lo), 0.0, 1.0)
    use_faint = u[:, 2] < faint
    idx = np.where(
        use_faint,
        np.searchsorted(tab.star_cdf[1], u[:, 3], side="right"),
        np.searchsorted(tab.star_cdf[0], u[:, 3], side="right"),
    )
    if model.hot_star_fraction > 0:
        hot = u[:, _COL_TARGET] < model.hot_star_fraction
        idx[hot] = np.searchsorted(tab.star_cdf[2], u[hot, 3], side="right")
    idx = np.minimum(idx, tab.star_names.size - 1)
    colour = tab.star_colour[idx]
    n = mags.size
    return {
        "colour": colour,
        "template": idx,
        "sed_name": tab.star_names[idx],
        "redshift": np.zeros(n),
        "ebv": np.zeros(n),
    }


def _ivezic_feh(ug, gr):
    """[Fe/H] of a dwarf of SDSS colours ``ug`` = u - g, ``gr`` = g - r (Ivezic et al. 2008)."""
    a, b, c, d, e, f, g, h, i, j = _IVEZIC_FEH
    return (a + b * ug + c * gr + d * ug * gr + e * ug**2 + f * gr**2 + g * ug**2 * gr + h * ug * gr**2
            + i * ug**3 + j * gr**3)


def _solve_increasing(function, target, lo, hi, steps: int = 40):
    """Elementwise x in [lo, hi] with ``function(x) == target`` for a function increasing in x,
    by bisection (vectorised: no per-object root finder is needed for a few thousand stars)."""
    lo, hi = np.broadcast_arrays(np.asarray(lo, float), np.asarray(hi, float))
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        low = function(mid) < target
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    return 0.5 * (lo + hi)


def _ivezic_ug(feh, gr):
    """SDSS u - g of a dwarf of metallicity ``feh`` at g - r ``gr`` in [0.2, 0.6]: the relation
    inverted over the u - g range where it rises monotonically."""
    gr = np.clip(gr, 0.2, 0.6)
    return _solve_increasing(lambda ug: _ivezic_feh(ug, gr), feh, np.full(np.shape(feh), 0.5), 1.45 + (gr - 0.2))


def _blue_dimming(share, boost):
    """Magnitude change of a band whose flux has ``share`` blueward of the edge when that flux
    changes by ``boost`` magnitudes."""
    return -2.5 * np.log10(1.0 - share + share * 10 ** (-0.4 * boost))


def halo_fraction(mag_r, latitude: float, abs_mag_r: float = _TURNOFF_ABS_MAG_R):
    """Share of the halo in the stellar density at the distance of a star of apparent and
    absolute r magnitudes ``mag_r``, ``abs_mag_r`` along a line of sight at Galactic latitude
    ``latitude`` [deg] (and longitude 90 deg), in the Juric et al. (2008) model."""
    p = _JURIC
    distance = 10.0 ** ((np.asarray(mag_r, float) - abs_mag_r + 5.0) / 5.0)
    b = np.radians(latitude)
    height = distance * np.sin(b) + p["z_sun"]
    radius = np.hypot(p["r_sun"], distance * np.cos(b))
    thin = np.exp((p["r_sun"] - radius) / p["l_thin"] - np.abs(height) / p["h_thin"])
    thick = p["f_thick"] * np.exp((p["r_sun"] - radius) / p["l_thick"] - np.abs(height) / p["h_thick"])
    halo = p["f_halo"] * (p["r_sun"] / np.hypot(radius, height / p["q_halo"])) ** p["n_halo"]
    return halo / (thin + thick + halo)


def _star_metallicity(template, normal, tab, strength, halo=None):
    """[Fe/H], the grey change of the flux blueward of 4000 A [mag] and the colour change per
    band of stars of Pickles ``template`` indices (see ``PopulationModel.star_uv_excess``);
    ``halo`` (bool per star) overrides the membership of the metal-weak templates."""
    halo = tab.star_metal_weak[template] if halo is None else halo
    mean = np.where(halo, _HALO_FEH[0], _DISC_FEH[0])
    sigma = np.where(halo, _HALO_FEH[1], _DISC_FEH[1])
    feh = np.clip(mean + sigma * normal, -3.0, 0.5)
    gr = tab.star_sdss_gr[template]
    # Full change inside the relation's g - r range, tapered to zero over 0.05 mag outside it.
    weight = np.clip((gr - 0.15) / 0.05, 0, 1) * np.clip((0.65 - gr) / 0.05, 0, 1) * tab.star_dwarf[template]
    target = strength * weight * (_ivezic_ug(feh, gr) - tab.star_sdss_ug[template])
    share_u, share_g = tab.star_blue_share_ug[template, 0], tab.star_blue_share_ug[template, 1]
    # u - g grows with the boost (u has the larger blue share).
    boost = _solve_increasing(lambda b: _blue_dimming(share_u, b) - _blue_dimming(share_g, b), target,
                              np.full(target.shape, -3.0), np.full(target.shape, 3.0))
    boost = np.where(weight > 0, boost, 0.0)
    dmag = _blue_dimming(tab.star_blue_share[template], boost[:, None])
    return np.where(weight > 0, feh, np.nan), boost, dmag - dmag[:, [tab.sel]]


def _galaxies(u, mags, tab, model, target=None):
    mpos = np.clip(np.rint((mags - tab.mag_grid[0]) / _MAG_STEP).astype(int), 0, tab.mag_grid.size - 1)
    if target is None:
        target = np.zeros(mags.size, bool)
    # A target drawn at a magnitude where no galaxy passes the cuts (possible only with an
    # imposed magnitude histogram) falls back to the field population.
    if target.any():
        target &= tab.gal_target_counts[mpos] > 0
    # Rows of the conditional CDF are offset by their row number, so one searchsorted over
    # the flattened table samples every object's (template, z) at once.
    ncell = tab.gal_tz_cdf.shape[1]
    key = mpos + u[:, 2] * (1 - 1e-12)
    pos = np.searchsorted(tab.gal_tz_cdf_flat, key, side="right")
    if target.any():
        pos[target] = np.searchsorted(tab.gal_target_cdf_flat, key[target], side="right")
    flat = np.clip(pos - mpos * ncell, 0, ncell - 1)
    t, k = np.divmod(flat, tab.gal_ntz)
    dln = tab.gal_lnz[1] - tab.gal_lnz[0]
    lnz = tab.gal_lnz[k] + (u[:, 3] - 0.5) * dln
    zmin, zmax = model.galaxy_z_range
    z = np.clip(np.expm1(lnz), zmin, zmax)
    group = tab.gal_group[t]
    means = np.array([model.galaxy_lf[g].ebv_mean for g in _GAL_GROUPS])[group]
    ebv = _truncated_exponential(u[:, 4], means, model.ebv_max)
    if target.any():
        # Targets: E(B-V) from the group's distribution restricted to the grid cells whose
        # colours pass the cuts at this (magnitude, template, z), at the cell's value.
        rows = np.nonzero(target)[0]
        ok = tab._target_prob(tab.mag_grid[mpos[rows]][:, None], tab.target_colour[t[rows], :, k[rows]],
                              model.galaxy_targets)
        w = tab.gal_ebv_p[t[rows]] * ok
        w[w.sum(axis=1) == 0, 0] = 1.0
        cw = np.cumsum(w, axis=1)
        e = (cw < (u[rows, 4] * cw[:, -1])[:, None]).sum(axis=1)
        ebv[rows] = _EBV_GRID[np.minimum(e, _EBV_GRID.size - 1)]
    zi, zf = _interp_axis(tab.gal_lnz, np.log1p(z))
    ei, ef = _interp_axis(_EBV_GRID, ebv)
    c = tab.gal_colour
    colour = (
        (1 - zf)[:, None] * (1 - ef)[:, None] * c[t, ei, zi]
        + zf[:, None] * (1 - ef)[:, None] * c[t, ei, zi + 1]
        + (1 - zf)[:, None] * ef[:, None] * c[t, ei + 1, zi]
        + zf[:, None] * ef[:, None] * c[t, ei + 1, zi + 1]
    )
    dm = (1 - zf) * tab.gal_dm[zi] + zf * tab.gal_dm[zi + 1]
    kc = (1 - zf) * tab.gal_kcorr[t, zi] + zf * tab.gal_kcorr[t, zi + 1]
    return {
        "colour": colour,
        "sed_name": tab.gal_names[t],
        "redshift": z,
        "ebv": ebv,
        "abs_mag": mags - dm - kc,
    }


def _qsos(u, mags, tab, model):
    zlo, zhi = model.qso_z_range
    # Truncated log-normal redshift by inverse CDF.
    from scipy.special import ndtr

    a = ndtr((np.log(zlo) - np.log(model.qso_z_median)) / model.qso_z_sigma)
    b = ndtr((np.log(zhi) - np.log(model.qso_z_median)) / model.qso_z_sigma)
    z = np.exp(np.log(model.qso_z_median) + model.qso_z_sigma * ndtri(a + u[:, 2] * (b - a)))
    z = np.clip(z, zlo, zhi)
    dalpha = model.qso_alpha_sigma * ndtri(np.clip(u[:, 3], 1e-12, 1 - 1e-12))
    dalpha = np.clip(dalpha, _QSO_SLOPES[0], _QSO_SLOPES[-1])
    lines = np.exp(model.qso_line_sigma * ndtri(np.clip(u[:, 4], 1e-12, 1 - 1e-12)))
    ebv = _truncated_exponential(u[:, 7], model.qso_ebv_mean, _QSO_EBV[-1])
    zi, zf = _interp_axis(tab.qso_lnz, np.log1p(z))
    si, sf = _interp_axis(_QSO_SLOPES, dalpha)
    ei, ef = _interp_axis(_QSO_EBV, ebv)
    c = tab.qso_lncont
    lncont = np.zeros((z.size, c.shape[-1]))
    line_flux = np.zeros_like(lncont)
    # Trilinear in (E(B-V), slope, ln(1+z)); log-flux for the continuum, whose dust and
    # slope factors are exponential, linear flux for the lines.
    for de, we in ((0, 1 - ef), (1, ef)):
        for dz, wz in ((0, 1 - zf), (1, zf)):
            line_flux += (we * wz)[:, None] * tab.qso_lines[ei + de, zi + dz]
            for ds, ws in ((0, 1 - sf), (1, sf)):
                lncont += (we * wz * ws)[:, None] * c[ei + de, si + ds, zi + dz]
    flux = np.exp(lncont) + lines[:, None] * line_flux
    # Nearest Lyman-limit system: Poisson process in z with rate n (1+z)^g, walked down
    # from the quasar; everything blueward of its Lyman limit is absorbed.
    g1 = model.lls_gamma + 1.0
    lam = -np.log(np.clip(u[:, 5], 1e-300, 1.0))
    base = (1 + z) ** g1 - lam * g1 / model.lls_norm
    z_lls = np.where(base > 1.0, np.power(np.clip(base, 1.0, None), 1.0 / g1) - 1.0, np.nan)
    has = np.isfinite(z_lls)
    if np.any(has):
        cut = 911.75 * (1 + z_lls[has])
        ci = np.clip(np.searchsorted(GRID_WAVE, cut), 0, GRID_WAVE.size - 1)
        flux[has] *= tab.frac_above[:, ci].T
    flux = np.clip(flux, 1e-300, None)
    colour = -2.5 * np.log10(flux / flux[:, [tab.sel]])
    n = mags.size
    return {
        "colour": colour,
        "sed_name": np.full(n, "QSO_SDSS"),
        "redshift": z,
        "ebv": ebv,
        "qso_dalpha": dalpha,
        "qso_line_scale": lines,
        "z_lls": z_lls,
    }


#: log10(4 pi (10 pc)^2 [cm^2] * 3631 Jy [erg s-1 cm-2 Hz-1]): AB magnitude at distance
#: modulus DM to log10 L_nu [erg s-1 Hz-1] via + 0.4 (DM - m).
_LOG_LNU_AB = float(np.log10(4 * np.pi * 3.0857e19**2 * 3631e-23))


def _shen_host_ratio(log_l5100):
    """Mean host-to-AGN flux ratio at rest-frame 5100 A (Shen et al. 2011, ApJS 194, 45, eq. 1).

    Parameters
    ----------
    log_l5100 : numpy.ndarray
        log10 of the total (AGN + host) lambda L_lambda at 5100 A [erg s-1].

    Returns
    -------
    numpy.ndarray
        L_host / L_AGN at 5100 A: the cubic fit to the Vanden Berk et al. (2006) spectral
        decompositions of SDSS quasars, 0.8052 - 1.5502 x + 0.9121 x^2 - 0.1577 x^3 with
        x = log10(L / 1e44), which reaches zero at L = 10**45.053 (clipped at 0 above).
    """
    x = np.minimum(np.asarray(log_l5100, dtype=float) - 44.0, 1.053)
    return np.clip(0.8052 - 1.5502 * x + 0.9121 * x**2 - 0.1577 * x**3, 0.0, None)


def _qso_hosts(uh, z, mag_sel, agn_colour, dm, tab, model):
    """Add host galaxies to quasars.

    The host-to-AGN ratio at rest 5100 A is the Shen et al. (2011) mean relation
    (:func:`_shen_host_ratio`) at the quasar's total 5100 A luminosity, floored at
    ``model.qso_host_ratio_min``, with the luminosity held at ``model.qso_host_logl_min`` or
    above, times ``model.qso_host_aperture`` (the relation counts the host light in a 3"
    fibre; catalogue and image fluxes are totals) and a log-normal scatter of
    ``model.qso_host_ratio_sigma`` dex. It is carried from 5100 A to the selection band with
    the host template and the quasar composite. In the ``sdss`` preset the median host
    fraction in r of z < 0.7 quasars is then ~4 % at r < 19, ~14 % at r = 19-20, ~30 % at
    r = 20-21 and ~50 % at r = 21-22.5 (10-90 % range ~0.3-0.7 there), i.e. the 10-50 %
    that image decompositions find for moderate-luminosity low-z quasars, rising to host
    dominance for Seyfert-like luminosities.

    Parameters
    ----------
    uh : numpy.ndarray, shape (n, 2)
        Uniform random numbers: host template, ratio scatter.
    z : numpy.ndarray, shape (n,)
        Quasar redshifts (within the galaxy redshift grid).
    mag_sel : numpy.ndarray, shape (n,)
        Total selection-band AB magnitude without Milky Way extinction.
    agn_colour : numpy.ndarray, shape (n, n_bands)
        AGN magnitudes minus the selection-band magnitude.
    dm : numpy.ndarray, shape (n,)
        Distance modulus [mag].
    tab : _Tables
    model : PopulationModel

    Returns
    -------
    dict
        ``colour`` (n, n_bands): total (AGN + host) magnitudes minus the selection-band one;
        ``share`` (n, n_bands): host fraction of the total flux in each band (dimensionless);
        ``sed_name``: host template names.
    """
    nh = tab.host_t.size
    t = np.minimum((uh[:, 0] * nh).astype(int), nh - 1)
    zi, zf = _interp_axis(tab.gal_lnz, np.log1p(z))
    qi, qf = _interp_axis(tab.qso_lnz, np.log1p(z))
    ln_s_host = (1 - zf) * tab.host_ln_s5100[t, zi] + zf * tab.host_ln_s5100[t, zi + 1]
    ln_s_agn = (1 - qf) * tab.qso_ln_s5100[qi] + qf * tab.qso_ln_s5100[qi + 1]
    # lambda L_lambda(5100) = 4 pi d_L^2 nu_obs f_nu(nu_obs), nu_obs = c / (5100 (1+z)); the
    # composite converts the band's mean f_nu into f_nu(nu_obs).
    log_fnu = -0.4 * mag_sel - ln_s_agn / np.log(10)
    log_nu = np.log10(C_ANGSTROM_PER_S / (5100.0 * (1.0 + z)))
    log_l = _LOG_LNU_AB + 0.4 * dm + log_fnu + log_nu
    ratio = np.maximum(
        _shen_host_ratio(np.maximum(log_l, model.qso_host_logl_min)), model.qso_host_ratio_min
    )
    ratio = ratio * model.qso_host_aperture * 10 ** (
        model.qso_host_ratio_sigma * ndtri(np.clip(uh[:, 1], 1e-12, 1 - 1e-12))
    )
    ratio_sel = ratio * np.exp(ln_s_host - ln_s_agn)
    frac = ratio_sel / (1.0 + ratio_sel)
    gt = tab.host_t[t]
    c = tab.gal_colour
    host_colour = (1 - zf)[:, None] * c[gt, 0, zi] + zf[:, None] * c[gt, 0, zi + 1]
    agn = (1.0 - frac)[:, None] * 10 ** (-0.4 * agn_colour)
    host = frac[:, None] * 10 ** (-0.4 * host_colour)
    total = agn + host
    return {
        "colour": -2.5 * np.log10(total),
        "share": host / total,
        "sed_name": tab.host_names[t],
    }


def _resolve_fractions(kind, balanced, class_fractions):
    if kind not in DEFAULT_CLASS_FRACTIONS:
        raise InputError("kind", f"must be 'sources' or 'pointsources', not {kind!r}")
    allowed = list(DEFAULT_CLASS_FRACTIONS[kind])
    if class_fractions is not None:
        fr = {k: float(v) for k, v in class_fractions.items() if float(v) > 0}
        bad = [k for k in fr if k not in allowed]
        if bad or not fr or any(v < 0 for v in class_fractions.values()):
            raise InputError(
                "class_fractions", f"classes must be among {allowed} with positive weights"
            )
    elif balanced:
        fr = {k: 1.0 for k in allowed}
    else:
        fr = dict(DEFAULT_CLASS_FRACTIONS[kind])
    total = sum(fr.values())
    return {k: v / total for k, v in fr.items()}


def draw_population(
    survey: SurveyPreset | str,
    n: int,
    seed: int,
    start: int = 0,
    kind: str = "sources",
    balanced: bool = False,
    class_fractions: dict[str, float] | None = None,
    mag_range: tuple[float, float] | None = None,
    mag_distributions: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    model: PopulationModel | None = None,
) -> Table:
    """Draw ``n`` simulated sources with SEDs and catalogue photometry.

    Parameters
    ----------
    survey : SurveyPreset or str
        Preset (or its name / YAML path).
    n : int
        Number of objects.
    seed : int
        Master seed.
    start : int
        Global index of the first object; object ``i`` depends only on (seed, i) and the
        options, whatever the chunking.
    kind : {"sources", "pointsources"}
        ``sources``: stars, galaxies and quasars; ``pointsources``: stars and quasars.
    balanced : bool
        Equal class fractions.
    class_fractions : dict of str to float, optional
        Relative class weights, e.g. ``{"star": 1, "qso": 1}``; overrides ``balanced``.
    mag_range : tuple of float, optional
        True magnitude range in the selection band; default the preset's selection.
    mag_distributions : dict, optional
        Per class label, ``(edges, weights)`` of a histogram of the selection-band
        magnitude to draw from instead of the model counts (used to match a real sample).
    model : PopulationModel, optional
        Population parameters; default the preset's (:meth:`PopulationModel.from_preset`).

    Returns
    -------
    astropy.table.Table
        One row per object: ``index``, ``label`` (star/galaxy/qso), ``class_id`` (position in
        :data:`CLASS_LABELS`), ``redshift``, ``sed_name``, ``ebv`` (intrinsic: Calzetti for galaxies, SMC for quasars, mag),
        ``ebv_mw`` (Milky Way, mag), ``abs_mag`` (galaxies, selection band, NaN otherwise),
        ``qso_dalpha``, ``qso_line_scale``, ``z_lls`` (quasars, NaN otherwise),
        ``host_sed_name`` (COSMOS template of a quasar's host, "" without one),
        ``host_fraction_<s>`` (host share of the flux in the selection band ``s``, 0 without a
        host), and per band ``b``: ``mag_true_b`` [AB] and ``flux_b`` (true total image flux
        [counts] at the preset zero point; for quasars AGN + host), ``host_flux_b`` (the
        host's part of ``flux_b`` [counts], 0 without a host; the AGN has the rest),
        ``mag_b`` and ``magerr_b`` (observed, NaN when not detected),
        ``detected_b``, ``flux_obs_b`` and ``flux_err_b`` (noisy flux and its 1-sigma error
        [counts], kept also for non-detections); and ``flags`` (:class:`skysort.data.flags.Flags`). ``meta`` holds the
        survey name, seed, zero point, flux unit and the galaxy emission-line strength.

    Raises
    ------
    InputError
        Invalid ``kind``, fractions, magnitude range or histogram.
    """
    survey = load_survey(survey)
    model = model or PopulationModel.from_preset(survey)
    if n < 0 or start < 0:
        raise InputError("n", "n and start must be non-negative")
    fractions = _resolve_fractions(kind, balanced, class_fractions)
    if mag_range is None:
        mag_range = (survey.selection.mag_min, survey.selection.mag_max)
    tab = _tables(survey, model)
    nb = len(tab.bands)

    u = _block_randoms(seed, start, n, 0, _N_UNIFORM, normal=False)
    normals = _block_randoms(seed, start, n, 1, nb, normal=True)

    order = [c for c in CLASS_LABELS if c in fractions]
    cum = np.cumsum([fractions[c] for c in order])
    which = np.minimum(np.searchsorted(cum, u[:, 0], side="right"), len(order) - 1)
    labels = np.array(order, dtype=object)[which] if n else np.array([], dtype=object)

    sel_mag = np.empty(n)
    colour = np.empty((n, nb))
    redshift = np.zeros(n)
    ebv = np.zeros(n)
    sed_name = np.empty(n, dtype=object)
    abs_mag = np.full(n, np.nan)
    dalpha = np.full(n, np.nan)
    line_scale = np.full(n, np.nan)
    z_lls = np.full(n, np.nan)
    feh = np.full(n, np.nan)
    uv_boost = np.zeros(n)
    for label, fn in (("star", _stars), ("galaxy", _galaxies), ("qso", _qsos)):
        rows = np.nonzero(labels == label)[0]
        if rows.size == 0:
            continue
        uu = u[rows]
        mags = _draw_mags(uu[:, 1], label, tab, model, mag_range, mag_distributions)
        if label == "galaxy" and model.galaxy_target_fraction > 0:
            target = uu[:, _COL_TARGET] < model.galaxy_target_fraction
            if target.any() and not (mag_distributions and label in mag_distributions):
                grid, dens = _mag_density("galaxy_target", tab, model, *mag_range)
                if grid.size >= 2 and dens.sum() > 0:
                    mags[target] = _inverse_cdf(uu[target, 1], grid, dens, *mag_range)
                else:
                    target[:] = False
            out = _galaxies(uu, mags, tab, model, target)
        else:
            out = fn(uu, mags, tab, model)
        sel_mag[rows] = mags
        colour[rows] = out["colour"]
        redshift[rows] = out["redshift"]
        ebv[rows] = out["ebv"]
        sed_name[rows] = out["sed_name"]
        if label == "star" and model.star_uv_excess > 0:
            normal = _block_randoms(seed, start, n, _STREAM_METALLICITY, 1, normal=True)[rows, 0]
            halo = None
            if model.star_halo_latitude:
                # The selection band's magnitude stands in for r (it is r in the sdss preset).
                draw = _block_randoms(seed, start, n, _STREAM_HALO, 1, normal=False)[rows, 0]
                halo = draw < halo_fraction(mags, model.star_halo_latitude)
            feh[rows], uv_boost[rows], shift = _star_metallicity(out["template"], normal, tab, model.star_uv_excess, halo)
            colour[rows] += shift
        if "abs_mag" in out:
            abs_mag[rows] = out["abs_mag"]
        if "qso_dalpha" in out:
            dalpha[rows] = out["qso_dalpha"]
            line_scale[rows] = out["qso_line_scale"]
            z_lls[rows] = out["z_lls"]

    ebv_mw = _truncated_exponential(u[:, 6], survey.galactic_ebv_mean, 5 * survey.galactic_ebv_mean + 1e-6)
    host_share = np.zeros((n, nb))
    host_name = np.full(n, "", dtype=object)
    if model.qso_host:
        hrows = np.nonzero((labels == "qso") & (redshift < model.qso_host_z_max))[0]
        if hrows.size:
            uh = _block_randoms(seed, start, n, _STREAM_HOST, _N_HOST_UNIFORM, normal=False)[hrows]
            dered = sel_mag[hrows] - tab.r_mw[tab.sel] * ebv_mw[hrows]
            dm = np.interp(np.log1p(redshift[hrows]), tab.gal_lnz, tab.gal_dm)
            host = _qso_hosts(uh, redshift[hrows], dered, colour[hrows], dm, tab, model)
            colour[hrows] = host["colour"]
            host_share[hrows] = host["share"]
            host_name[hrows] = host["sed_name"]
    reddening = (tab.r_mw[None, :] - tab.r_mw[tab.sel]) * ebv_mw[:, None]
    mag_true = sel_mag[:, None] + colour + reddening
    phot = observe(survey, mag_true, normals)

    table = Table()
    table["index"] = np.arange(start, start + n, dtype=np.int64)
    table["label"] = np.array(labels, dtype="U6")
    class_ids = np.array([CLASS_LABELS.index(c) for c in order], dtype=np.int8)
    table["class_id"] = class_ids[which] if n else np.array([], dtype=np.int8)
    table["redshift"] = redshift
    table["sed_name"] = np.array(sed_name, dtype="U16")
    table["ebv"] = ebv
    table["ebv_mw"] = ebv_mw
    table["abs_mag"] = abs_mag
    table["qso_dalpha"] = dalpha
    table["qso_line_scale"] = line_scale
    table["z_lls"] = z_lls
    table["host_sed_name"] = np.array(host_name, dtype="U16")
    table[f"host_fraction_{survey.selection.band}"] = host_share[:, tab.sel]
    if model.star_uv_excess > 0:
        table["feh"] = feh
        table["uv_boost"] = uv_boost
    for j, b in enumerate(tab.bands):
        table[f"mag_true_{b}"] = mag_true[:, j]
        table[f"flux_{b}"] = phot["flux_true"][:, j]
        table[f"host_flux_{b}"] = phot["flux_true"][:, j] * host_share[:, j]
        table[f"mag_{b}"] = phot["mag"][:, j]
        table[f"magerr_{b}"] = phot["magerr"][:, j]
        table[f"detected_{b}"] = phot["detected"][:, j]
        table[f"flux_obs_{b}"] = phot["flux_obs"][:, j]
        table[f"flux_err_{b}"] = phot["flux_err"][:, j]
    table["flags"] = phot["flags"]
    table.meta.update(
        {
            "survey": survey.name,
            "seed": int(seed),
            "zero_point": survey.zero_point,
            "flux_unit": f"counts (AB zero point {survey.zero_point})",
            "selection_band": survey.selection.band,
            "kind": kind,
            "galaxy_emission_lines": float(model.galaxy_emission_lines),
            "star_uv_excess": float(model.star_uv_excess),
            "star_halo_latitude": float(model.star_halo_latitude),
        }
    )
    return table


# ------------------------------------------------------------------------- validation
def load_sdss_specphot(paths=None) -> Table:
    """Real SDSS DR17 objects with spectroscopic classes and ugriz photometry.

    Reads ``catalogs/sdss_dr17_specphot/*.csv`` with the ``sdss-specphot`` catalogue preset
    (which masks the -9999 sentinels and converts the SDSS magnitudes to AB, u_AB = u - 0.04,
    z_AB = z + 0.02; Fukugita et al. 1996, SDSS DR documentation), keeps one row per object
    (:func:`skysort.data.catalog.read_unique_catalogs`, positions within 0.5") and drops rows
    with a missing magnitude.

    Parameters
    ----------
    paths : list of path-like, optional
        CSV files; default all in the shared catalogue folder.

    Returns
    -------
    astropy.table.Table
        Columns ``label`` (star/galaxy/qso), ``redshift``, ``u g r i z`` (AB).
    """
    from ..data.catalog import read_unique_catalogs
    from .presets import shared_data_dir

    if paths is None:
        folder = shared_data_dir() / "catalogs" / "sdss_dr17_specphot"
        paths = sorted(folder.glob("*.csv"))
        if not paths:
            raise InputError(folder, "no SDSS spectroscopic catalogue (*.csv)")
    # The catalogue preset masks the sentinels and puts the magnitudes on AB.
    t = read_unique_catalogs(paths, mapping="sdss-specphot")
    good = np.ones(len(t), bool)
    for b in "ugriz":
        good &= ~np.ma.getmaskarray(t[f"mag_{b}"])
    t = t[good]
    out = Table()
    out["label"] = np.array([str(c).replace("quasar", "qso") for c in t["label"]], dtype="U6")
    out["redshift"] = np.asarray(t["redshift"], dtype=float)
    for b in "ugriz":
        out[b] = np.asarray(t[f"mag_{b}"], dtype=float)
    return out


def sdss_galaxy_targeting(table: Table) -> np.ndarray:
    """Approximate SDSS/BOSS/eBOSS spectroscopic target selection of galaxies in a table.

    The cuts of the spectroscopic-target component (:func:`_target_pass`: main sample, BOSS
    LOWZ and CMASS, the optical part of the eBOSS LRG cuts) applied to the catalogue
    magnitudes ``mag_<b>``. WISE-based and emission-line-galaxy selections are not modelled.

    Parameters
    ----------
    table : astropy.table.Table
        Output of :func:`draw_population` with bands g r i z.

    Returns
    -------
    numpy.ndarray of bool
        True for objects that would have been targeted.
    """
    mags = np.stack([np.asarray(table[f"mag_{b}"], dtype=float) for b in "griz"], axis=1)
    with np.errstate(invalid="ignore"):
        return _target_pass(mags[:, 1], mags - mags[:, [1]], {"g": 0, "r": 1, "i": 2, "z": 3},
                            samples=_DEFAULT_TARGETS)


def _weighted_median(x, w):
    ok = np.isfinite(x) & (w > 0)
    x, w = x[ok], w[ok]
    if x.size == 0:
        return np.nan
    o = np.argsort(x)
    cw = np.cumsum(w[o])
    return float(x[o][np.searchsorted(cw, 0.5 * cw[-1])])


def colour_offsets_vs_real(
    survey: SurveyPreset | str = "sdss",
    n_per_class: int = 40000,
    seed: int = 2024,
    match_redshift: bool = True,
    emulate_targeting: bool = True,
    mag_range: tuple[float, float] = (14.0, 22.5),
    model: PopulationModel | None = None,
    real: Table | None = None,
) -> Table:
    """Median colours of simulated stars, galaxies and quasars against real SDSS ones.

    For each class the simulated selection-band (r) magnitudes are drawn from the real
    class's r histogram (0.25 mag bins) so that the comparison is at matched brightness.
    With ``match_redshift`` the simulated galaxies and quasars are then reweighted so that
    their joint (r, z) histogram equals the real one: SDSS spectroscopic targets are
    chosen by colour and redshift (LRGs, quasar colour boxes), a selection the field
    population does not have, so the comparison is of SEDs at the same brightness and
    redshift. With ``emulate_targeting`` the simulated galaxies are drawn from the
    spectroscopic-target component alone (``galaxy_target_fraction`` 1: the luminosity
    functions times the published SDSS/BOSS/eBOSS cuts applied to noisy magnitudes), since
    at r > 17.8 SDSS only took spectra of colour-selected luminous red galaxies; selecting
    that component again with :func:`sdss_galaxy_targeting` would count the cuts twice. Stars are
    matched in r only. Simulated magnitudes are converted to SDSS asinh magnitudes from the
    noisy fluxes, as the real catalogue's are; real rows with sentinels are dropped.

    Parameters
    ----------
    survey : SurveyPreset or str
        Must have bands u g r i z (the ``sdss`` preset).
    n_per_class : int
        Simulated objects per class.
    seed : int
        Seed of the simulation.
    match_redshift : bool
        Reweight galaxies and quasars in (r, z) as well as r.
    emulate_targeting : bool
        Draw the simulated galaxies from the spectroscopic-target component.
    mag_range : tuple of float
        r range used on both sides [AB mag].
    model : PopulationModel, optional
        Population parameters; default the preset's (:meth:`PopulationModel.from_preset`).
    real : astropy.table.Table, optional
        Output of :func:`load_sdss_specphot` (read if not given).

    Returns
    -------
    astropy.table.Table
        One row per (class, colour): ``label``, ``colour`` (e.g. ``"u-g"``), ``n_real``,
        ``n_sim``, ``median_real``, ``median_sim``, ``offset`` (sim - real) [mag].
    """
    survey = load_survey(survey)
    missing = [b for b in "ugriz" if b not in survey.band_names]
    if missing:
        raise InputError(survey.name, f"colour validation needs bands ugriz, missing {missing}")
    if real is None:
        real = load_sdss_specphot()
    model = model or PopulationModel.from_preset(survey)
    asinh_survey = survey
    if survey.catalogue_magnitudes != "asinh":
        # A preset with Pogson magnitudes is compared through the SDSS asinh softenings.
        sdss = load_survey("sdss")
        asinh_survey = survey.model_copy(update={"catalogue_magnitudes": "asinh", "bands": [
            survey.band(b).model_copy(update={"asinh_softening": sdss.band(b).asinh_softening}) for b in "ugriz"]})
    lo, hi = mag_range
    real = real[(real["r"] >= lo) & (real["r"] <= hi)]
    edges = np.arange(lo, hi + 0.25, 0.25)
    rows = []
    for ci, label in enumerate(CLASS_LABELS):
        rc = real[real["label"] == label]
        if len(rc) == 0:
            continue
        hist, _ = np.histogram(rc["r"], bins=edges)
        class_model = model
        if label == "galaxy" and emulate_targeting:
            class_model = replace(model, galaxy_target_fraction=1.0)
        sim = draw_population(
            survey,
            n_per_class,
            seed + 7919 * ci,
            kind="sources",
            class_fractions={label: 1.0},
            mag_range=mag_range,
            mag_distributions={label: (edges, hist)},
            model=class_model,
        )
        # SDSS catalogue magnitudes are asinh magnitudes, defined for any flux, so the
        # simulated ones are too (and no object is dropped for a faint u band).
        if asinh_survey is not survey:
            flux = np.stack([np.asarray(sim[f"flux_obs_{b}"], float) for b in asinh_survey.band_names], axis=1)
            mags, _ = asinh_magnitudes(asinh_survey, flux, np.ones_like(flux))
            for j, b in enumerate(asinh_survey.band_names):
                sim[f"mag_{b}"] = mags[:, j]
        w = np.ones(len(sim))
        rr = np.asarray(sim["mag_r"])
        if match_redshift and label != "star":
            zedges = (
                np.arange(0.0, 1.6, 0.05) if label == "galaxy" else np.arange(0.0, 4.6, 0.15)
            )
            redges = np.arange(lo, hi + 0.5, 0.5)
            hr, _, _ = np.histogram2d(rc["r"], np.clip(rc["redshift"], 0, zedges[-1] - 1e-6), [redges, zedges])
            hs, _, _ = np.histogram2d(rr, sim["redshift"], [redges, zedges])
            ratio = np.where(hs > 0, hr / np.where(hs > 0, hs, 1), 0.0)
            ir = np.clip(np.searchsorted(redges, rr, side="right") - 1, 0, redges.size - 2)
            iz = np.clip(np.searchsorted(zedges, sim["redshift"], side="right") - 1, 0, zedges.size - 2)
            w = ratio[ir, iz]
        for a, b in ("ug", "gr", "ri", "iz"):
            real_c = np.asarray(rc[a]) - np.asarray(rc[b])
            sim_c = np.asarray(sim[f"mag_{a}"]) - np.asarray(sim[f"mag_{b}"])
            mr = float(np.median(real_c))
            ms = _weighted_median(sim_c, w)
            rows.append((label, f"{a}-{b}", len(rc), int(np.sum(w > 0)), mr, ms, ms - mr))
    return Table(
        rows=rows,
        names=("label", "colour", "n_real", "n_sim", "median_real", "median_sim", "offset"),
    )
