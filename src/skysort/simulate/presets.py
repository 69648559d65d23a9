"""Survey presets: pixel scale, bands, filter curves, PSF, depths and noise of a survey.

A preset is a YAML file validated by :class:`SurveyPreset`. Three ship with skysort
(``kids``, ``sdss``, ``cfis``, in ``skysort/presets/surveys/``); users pass the path of
their own file to :func:`load_survey`.

Flux convention
---------------
Images are in *counts* defined by the preset's AB zero point ``zero_point``: a source of AB
magnitude ``m`` has a total image flux ``10**(-0.4 * (m - zero_point))`` counts. For ``sdss``
the zero point is 22.5, so one count is one nanomaggy, the unit of real SDSS frames.

Sky noise from depth
--------------------
Every band carries either a 5-sigma depth ``depth`` (AB) or a sky-noise level ``sky_sigma``
(counts per pixel); the other one is derived, see :meth:`SurveyPreset.sky_sigma` and
:meth:`SurveyPreset.depth`. For sky-limited background noise of ``sigma_pix`` counts per
pixel of side ``s`` arcsec, and a point source of total flux ``f5`` counts at the depth:

* ``depth_definition.kind == "aperture"`` (KiDS: 5 sigma in a 2" diameter aperture): the
  aperture of radius ``r`` holds ``N_ap = pi r**2 / s**2`` pixels, so its noise is
  ``sigma_pix * sqrt(N_ap)``; the source puts ``EE(r) * f5`` in it, where ``EE`` is the
  encircled energy of the PSF. S/N = 5 gives
  ``sigma_pix = EE(r) * f5 / (5 * sqrt(N_ap))``.
* ``kind == "psf"`` (SDSS PSF magnitudes): optimal PSF-weighted photometry has noise
  ``sigma_pix * sqrt(N_eff)`` with the effective area ``N_eff = 1 / (s**2 * integral P**2 dA)``,
  so ``sigma_pix = f5 / (5 * sqrt(N_eff))``. For a Gaussian of width sigma,
  ``N_eff = 4 pi sigma**2 / s**2``; for a Moffat of index beta and core alpha,
  ``N_eff = pi alpha**2 (2 beta - 1) / ((beta - 1)**2 s**2)``.

The same relations run backwards when the preset gives ``sky_sigma`` instead (``cfis``).
Catalogue photometry (:mod:`skysort.simulate.photometry`) uses the total-flux error
``sigma_flux = f5 / 5`` in each band, so that the catalogue's 5-sigma limit equals the depth.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import math
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import InputError

__all__ = [
    "BandSpec",
    "DepthDefinition",
    "NeighbourSpec",
    "NoiseSpec",
    "PSFSpec",
    "SelectionSpec",
    "PSF_FWHM_MAX",
    "STAMP_SIZE_RANGE",
    "SurveyPreset",
    "available_surveys",
    "load_survey",
    "resolve_data_path",
    "shared_data_dir",
]

_PRESET_DIR = Path(__file__).resolve().parent.parent / "presets" / "surveys"

#: Plausible pixel scales [arcsec per pixel]: from adaptive-optics imagers to all-sky cameras.
#: A scale outside is almost always one in degrees (0.2" is 5.6e-5 deg) or in arcmin.
PIXEL_SCALE_RANGE = (0.01, 60.0)
#: Plausible 5-sigma AB depths [mag]. A depth below the range is almost always a flux (in
#: counts, Jy or maggies) given where a magnitude belongs.
DEPTH_RANGE = (10.0, 40.0)
#: Wavelengths [Angstrom] a filter curve must lie within: the simulator's SEDs reach from
#: 300 to 60000 Angstrom, and no survey images below the Lyman limit (912 Angstrom).
FILTER_WAVE_RANGE = (900.0, 60000.0)
#: Stamp sides [pixels] a preset may give, padding included: the range ``--stamp-size`` allows.
#: Below 8 pixels a stamp holds little more than a star's core.
STAMP_SIZE_RANGE = (8, 512)
#: Broadest PSF FWHM [arcsec] a preset may give. The broadest PSFs of imaging surveys within
#: :data:`FILTER_WAVE_RANGE` are about 6" (WISE at 4.6 micrometres, GALEX); a larger value is
#: a mistake (a width in pixels, say). The narrowest allowed is one pixel: a narrower PSF is
#: undersampled, every star a single pixel, and shapes tell nothing about the source.
PSF_FWHM_MAX = 10.0


def shared_data_dir() -> Path:
    """The folder of skysort's shared reference data (filters, SEDs, catalogues).

    Looked up, in order: the environment variable ``SKYSORT_DATA``; ``../shared/data``
    relative to the current working directory; ``<repo>/../shared/data`` where ``<repo>`` is
    the checkout that holds this package (``src/skysort/simulate`` lies three levels below).

    Returns
    -------
    pathlib.Path
        The existing data folder.

    Raises
    ------
    InputError
        When ``SKYSORT_DATA`` names a missing folder, or no candidate exists.
    """
    env = os.environ.get("SKYSORT_DATA")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise InputError(path, "SKYSORT_DATA names a folder that does not exist")
        return path
    candidates = [
        Path.cwd() / ".." / "shared" / "data",
        Path(__file__).resolve().parents[3] / ".." / "shared" / "data",
    ]
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    raise InputError(
        candidates[-1].resolve(),
        "skysort reference data not found (set SKYSORT_DATA to its folder)",
    )


def resolve_data_path(name: str | os.PathLike, base: Path | None = None) -> Path:
    """Locate a data file named in a preset.

    Parameters
    ----------
    name : str or os.PathLike
        Absolute path, path relative to ``base`` (the preset file's folder), or path relative
        to :func:`shared_data_dir`.
    base : pathlib.Path, optional
        Folder of the YAML file that names the file.

    Returns
    -------
    pathlib.Path
        The existing file.

    Raises
    ------
    InputError
        When the file exists in none of those places.
    """
    path = Path(name).expanduser()
    if path.is_absolute():
        if path.exists():
            return path
        raise InputError(path, "file not found")
    if base is not None and (base / path).exists():
        return base / path
    full = shared_data_dir() / path
    if not full.exists():
        raise InputError(full, "file not found")
    return full


class BandSpec(BaseModel):
    """One photometric band of a survey.

    Attributes
    ----------
    name : str
        Band name used in column names (``mag_<name>``), e.g. ``"r"`` or ``"Ks"``.
    filter : str
        Throughput curve file: two columns, wavelength [Angstrom] and throughput (photon
        response, arbitrary normalisation); lines starting with ``#`` are comments.
    psf_fwhm : float
        Median PSF full width at half maximum [arcsec], from one pixel to
        :data:`PSF_FWHM_MAX` (checked by :class:`SurveyPreset`, which knows the pixel).
    depth : float, optional
        5-sigma limiting AB magnitude (see :class:`DepthDefinition`).
    sky_sigma : float, optional
        Background noise [counts per pixel]; derived from ``depth`` when not given.
    asinh_softening : float, optional
        Softening ``b`` of the band's asinh magnitudes (Lupton, Gunn & Szalay 1999),
        dimensionless: a flux in units of the AB zero-point flux (3631 Jy). Needed in every
        band when the preset's ``catalogue_magnitudes`` is ``"asinh"``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str
    filter: str
    # Its range depends on the pixel scale, so the preset checks it, naming the whole range.
    psf_fwhm: float
    depth: float | None = None
    sky_sigma: float | None = Field(default=None, gt=0)
    asinh_softening: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _depth_or_sigma(self) -> BandSpec:
        if self.depth is None and self.sky_sigma is None:
            raise ValueError(f"band {self.name}: give depth or sky_sigma")
        low, high = DEPTH_RANGE
        if self.depth is not None and not low <= self.depth <= high:
            raise ValueError(f"band {self.name}: depth is a 5-sigma AB magnitude ({low:g} to {high:g}), got {self.depth:g}"
                             " (a flux? give sky_sigma in counts per pixel instead)")
        return self


class PSFSpec(BaseModel):
    """PSF model the image renderer draws.

    Attributes
    ----------
    model : {"gaussian", "moffat", "kolmogorov", "moffat_kolmogorov"}
        Profile family. ``moffat_kolmogorov`` is a Moffat convolved with a Kolmogorov
        profile, the total having the band's FWHM.
    beta : float
        Moffat index (4.765 reproduces a Kolmogorov profile, Trujillo et al. 2001).
    fwhm_scatter : float
        Standard deviation of the FWHM between stamps [arcsec].
    fwhm_levels : list of float
        The seeing of a simulated set takes these values, in units of ``fwhm_scatter`` around
        each band's nominal FWHM, one PSF per value, chosen with equal probability per object.
        A few distinct PSFs keep the renderer's PSF caches effective; a classifier meant for
        fields of any seeing needs levels that span the survey's whole seeing range.
    ellipticity_sigma : float
        Standard deviation of each PSF ellipticity component (e1, e2).
    beta_range : (float, float), optional
        For ``moffat``: each PSF draws its Moffat index uniformly from this range instead
        of using ``beta``. The wings of real PSFs (optics, scattering) differ between fields
        and are broader than the atmosphere's alone.
    psfs_per_level : int
        PSFs drawn at each FWHM level, each with its own shear and (with ``beta_range``) Moffat
        index, so that a set holds several wing shapes at the same FWHM: a classifier that is
        told the FWHM but not the wings then cannot learn one wing shape per seeing.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: Literal["gaussian", "moffat", "kolmogorov", "moffat_kolmogorov"] = "moffat"
    beta: float = Field(default=4.765, gt=1)
    beta_range: tuple[float, float] | None = None
    fwhm_scatter: float = Field(default=0.0, ge=0)
    fwhm_levels: list[float] = Field(default_factory=lambda: [-1.5, -0.75, 0.0, 0.75, 1.5], min_length=1)
    ellipticity_sigma: float = Field(default=0.0, ge=0)
    psfs_per_level: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check_beta_range(self) -> "PSFSpec":
        if self.beta_range is not None and not 1 < self.beta_range[0] <= self.beta_range[1]:
            raise ValueError(f"beta_range must be (low, high) with 1 < low <= high, got {self.beta_range}")
        return self


class DepthDefinition(BaseModel):
    """How the depths of the preset are measured.

    Attributes
    ----------
    kind : {"aperture", "psf"}
        5 sigma in a circular aperture, or in PSF-fitted flux.
    aperture_diameter : float
        Aperture diameter [arcsec] for ``kind="aperture"``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["aperture", "psf"] = "aperture"
    aperture_diameter: float = Field(default=2.0, gt=0)


class NoiseSpec(BaseModel):
    """Per-stamp-set Gaussian noise levels (the BlendHunter convention, CFIS).

    Attributes
    ----------
    sigma_default : float
        Realistic background noise [counts per pixel].
    sigma_range : tuple of float
        Range of noise levels over which training sets are made [counts per pixel].
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    sigma_default: float = Field(gt=0)
    sigma_range: tuple[float, float]

    @model_validator(mode="after")
    def _check_range(self) -> "NoiseSpec":
        if not 0 <= self.sigma_range[0] <= self.sigma_range[1]:
            raise ValueError(f"sigma_range must be (low, high) with 0 <= low <= high, got {self.sigma_range}")
        return self


class NeighbourSpec(BaseModel):
    """Unrelated point sources (field stars) scattered over each simulated stamp.

    Real stamps are not empty around their object: at high Galactic latitude about one
    detected source per square arcminute, near the Galactic plane a hundred. A classifier
    trained on empty stamps reads a neighbour's light as extended structure.

    Attributes
    ----------
    density_range : (float, float)
        Surface density of neighbours [per arcmin^2], drawn log-uniformly per object.
    mag_range : (float, float)
        Neighbour magnitudes in the selection band [AB mag], drawn from number counts rising
        by ``counts_slope`` dex per magnitude; colours are those of a random star of the
        preset's population.
    counts_slope : float
        Logarithmic slope of the neighbour number counts [dex per mag].
    min_separation : float
        No neighbour closer than this to the stamp centre [arcsec]: closer pairs are blends,
        a different question.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    density_range: tuple[float, float]
    mag_range: tuple[float, float] = (15.0, 23.5)
    counts_slope: float = Field(default=0.3, ge=0)
    min_separation: float = Field(default=2.5, ge=0)

    @model_validator(mode="after")
    def _check_ranges(self) -> "NeighbourSpec":
        if not 0 < self.density_range[0] <= self.density_range[1]:
            raise ValueError(f"density_range must be (low, high) with 0 < low <= high, got {self.density_range}")
        if not self.mag_range[0] <= self.mag_range[1]:
            raise ValueError(f"mag_range must be (bright, faint), got {self.mag_range}")
        return self


class SelectionSpec(BaseModel):
    """Magnitude selection of simulated sources.

    Attributes
    ----------
    band : str
        Band in which sources are selected; also the band of the luminosity functions.
    mag_min, mag_max : float
        Range of true AB magnitude drawn in ``band``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    band: str = "r"
    mag_min: float = 14.0
    mag_max: float = 23.0

    @model_validator(mode="after")
    def _check_order(self) -> "SelectionSpec":
        if not self.mag_min < self.mag_max:
            raise ValueError(f"mag_min (brightest) must be smaller than mag_max (faintest), got {self.mag_min:g} and {self.mag_max:g}")
        return self


class SurveyPreset(BaseModel):
    """A survey's imaging set-up, validated from YAML.

    Attributes
    ----------
    name : str
        Preset name.
    description : str
        One-paragraph description with the provenance of the numbers.
    pixel_scale : float
        [arcsec per pixel].
    zero_point : float
        AB magnitude of a source with a total image flux of 1 count.
    stamp_size : int
        Stamp side [pixels] before padding; with the padding within :data:`STAMP_SIZE_RANGE`.
    stamp_padding : int
        Zero pixels added on each side of a stamp.
    bands : list of BandSpec
        Bands, blue to red.
    psf : PSFSpec
        PSF model (the FWHM is per band).
    depth_definition : DepthDefinition
        Meaning of the band depths.
    selection : SelectionSpec
        Default magnitude selection.
    noise : NoiseSpec, optional
        Stamp-set noise levels, for presets defined by noise rather than depth.
    sky_scale_range : (float, float), optional
        Image sky noise varies between fields (moon, airmass, unresolved starlight near the
        Galactic plane): each simulated object's sky noise in each band is the band's
        ``sky_sigma`` times a factor drawn log-uniformly from this range. Catalogue
        photometry keeps the nominal errors. ``None``: every stamp has the nominal noise.
    neighbours : NeighbourSpec, optional
        Field stars around each simulated source or point source (not blends); catalogue
        photometry stays that of the object alone (a deblended catalogue). ``None``: none.
    mag_error_floor : float
        Calibration error added in quadrature to catalogue magnitude errors [mag].
    catalogue_magnitudes : {"pogson", "asinh"}
        The survey catalogue's magnitude convention, which simulated ``mag_<band>`` columns
        follow: ``pogson`` (``-2.5 log10 f``, undefined -- NaN -- for non-detections, as in
        KiDS) or ``asinh`` (Lupton et al. 1999, defined for any flux including negative ones,
        as in every SDSS catalogue; each band's ``asinh_softening`` sets ``b``).
    galactic_ebv_mean : float
        Mean Milky Way E(B-V) of the footprint [mag]; drawn per object from an exponential.
    population : dict, optional
        Overrides of :class:`skysort.simulate.population.PopulationModel` scalar parameters
        used when no model is passed to ``draw_population`` (e.g. the SDSS preset's
        ``galaxy_target_fraction``); empty means the default model.
    source_file : str, optional
        The YAML file the preset came from (filled in by :func:`load_survey`).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str
    description: str = ""
    pixel_scale: float = Field(gt=0)
    zero_point: float
    stamp_size: int
    stamp_padding: int = Field(default=0, ge=0)
    bands: list[BandSpec] = Field(min_length=1)
    psf: PSFSpec = PSFSpec()
    depth_definition: DepthDefinition = DepthDefinition()
    selection: SelectionSpec = SelectionSpec()
    noise: NoiseSpec | None = None
    sky_scale_range: tuple[float, float] | None = None
    neighbours: NeighbourSpec | None = None
    mag_error_floor: float = Field(default=0.0, ge=0)
    catalogue_magnitudes: Literal["pogson", "asinh"] = "pogson"
    galactic_ebv_mean: float = Field(default=0.03, ge=0)
    population: dict[str, float | int | bool | str | list] = Field(default_factory=dict)
    source_file: str | None = None

    @model_validator(mode="after")
    def _check(self) -> SurveyPreset:
        names = [b.name for b in self.bands]
        if len(set(names)) != len(names):
            raise ValueError(f"band names repeat: {names}")
        low, high = PIXEL_SCALE_RANGE
        if not low <= self.pixel_scale <= high:
            hint = ""
            if low <= self.pixel_scale * 3600 <= high:
                hint = f" (degrees? that is {self.pixel_scale * 3600:.4g} arcsec)"
            elif low <= self.pixel_scale * 60 <= high:
                hint = f" (arcmin? that is {self.pixel_scale * 60:.4g} arcsec)"
            raise ValueError(f"pixel_scale is in arcsec per pixel, {low:g} to {high:g}, got {self.pixel_scale:g}{hint}")
        low, high = STAMP_SIZE_RANGE
        side = self.stamp_size + 2 * self.stamp_padding
        if not low <= side <= high:
            padded = f" with stamp_padding {self.stamp_padding} on each side" if self.stamp_padding else ""
            raise ValueError(f"stamp_size is the stamp side in pixels, {low} to {high} padding included, got {self.stamp_size}{padded}")
        for band in self.bands:
            fwhm = band.psf_fwhm
            if not self.pixel_scale <= fwhm <= PSF_FWHM_MAX:
                hint = ""
                if 0 < fwhm < self.pixel_scale and self.pixel_scale <= fwhm * 3600 <= PSF_FWHM_MAX:
                    hint = f" (degrees? that is {fwhm * 3600:.4g} arcsec)"
                raise ValueError(f"band {band.name}: psf_fwhm is the PSF's FWHM in arcsec, from one pixel ({self.pixel_scale:g}) "
                                 f"to {PSF_FWHM_MAX:g}, got {fwhm:g}{hint}")
        if self.sky_scale_range is not None and not 0 < self.sky_scale_range[0] <= self.sky_scale_range[1]:
            raise ValueError(f"sky_scale_range must be (low, high) with 0 < low <= high, got {self.sky_scale_range}")
        if self.selection.band not in names:
            raise ValueError(f"selection band {self.selection.band!r} is not one of {names}")
        if self.catalogue_magnitudes == "asinh":
            lacking = [b.name for b in self.bands if b.asinh_softening is None]
            if lacking:
                raise ValueError(f"asinh catalogue magnitudes need asinh_softening in every band; missing in {lacking}")
        if self.population:
            # Checked with the file, so that a misspelt or out-of-range parameter is named
            # with the preset rather than found by a simulation's worker.
            from .population import PopulationModel

            try:
                PopulationModel.from_overrides(self.population, "population")
            except InputError as exc:
                raise ValueError(f"population: {exc.problem}") from None
        return self

    # ---------------------------------------------------------------- accessors
    @property
    def band_names(self) -> list[str]:
        """Band names, in preset order."""
        return [b.name for b in self.bands]

    def band(self, name: str) -> BandSpec:
        """The :class:`BandSpec` called ``name``; ``KeyError`` if absent."""
        for b in self.bands:
            if b.name == name:
                return b
        raise KeyError(name)

    def filter_path(self, name: str) -> Path:
        """Resolved path of band ``name``'s throughput file.

        Raises
        ------
        InputError
            Naming the preset file and the band when the curve is found nowhere.
        """
        base = Path(self.source_file).parent if self.source_file else None
        given = self.band(name).filter
        try:
            return resolve_data_path(given, base)
        except InputError:
            places = [str(base)] if base is not None and not Path(given).expanduser().is_absolute() else []
            with contextlib.suppress(InputError):
                places.append(str(shared_data_dir()))
            where = f" (looked in {' and '.join(places)})" if places and not Path(given).expanduser().is_absolute() else ""
            raise InputError(self.source_file or self.name, f"band {name}: filter curve {given} not found{where}") from None

    def load_filters(self) -> list:
        """The bands' filter curves, checked to be in Angstrom within the simulator's range.

        Returns
        -------
        list of skysort.simulate.filters.Filter
            One per band, in preset order.

        Raises
        ------
        InputError
            A curve that is missing, unreadable, or whose non-zero throughput lies outside
            :data:`FILTER_WAVE_RANGE` (wavelengths in nm or micrometres, or the two columns
            swapped); it names the curve's file and the band.
        """
        from .filters import load_filter

        filters = []
        low, high = FILTER_WAVE_RANGE
        for name in self.band_names:
            curve = load_filter(self.filter_path(name), name)
            inside = curve.wave[curve.throughput > 0]
            first, last = float(inside.min()), float(inside.max())
            if not (low <= first and last <= high):
                hint = ""
                if low <= first * 10 and last * 10 <= high:
                    hint = " (nanometres? multiply by 10)"
                elif low <= first * 1e4 and last * 1e4 <= high:
                    hint = " (micrometres? multiply by 10,000)"
                raise InputError(curve.path, f"band {name}: the filter's throughput spans {first:g} to {last:g}; the first column "
                                             f"must be the wavelength in Angstrom, within {low:g} to {high:g}{hint}")
            filters.append(curve)
        return filters

    # ------------------------------------------------------------ flux <-> mag
    def flux_from_mag(self, mag):
        """Image flux [counts] of AB magnitude ``mag`` (scalar or array)."""
        return 10.0 ** (-0.4 * (mag - self.zero_point))

    def mag_from_flux(self, flux):
        """AB magnitude of an image flux [counts]; NaN where ``flux <= 0``."""
        import numpy as np

        flux = np.asarray(flux, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(flux > 0, self.zero_point - 2.5 * np.log10(flux), np.nan)

    # --------------------------------------------------------------- PSF areas
    def _psf_moments(self, fwhm: float) -> tuple[float, float]:
        """Effective area [arcsec^2] and encircled energy in the depth aperture."""
        radius = 0.5 * self.depth_definition.aperture_diameter
        if self.psf.model == "gaussian":
            sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
            area = 4.0 * math.pi * sigma**2
            ee = 1.0 - math.exp(-(radius**2) / (2.0 * sigma**2))
        else:
            # A Kolmogorov profile (and its Moffat convolution) is close to a Moffat of
            # beta 4.765 with the same FWHM, so all three non-Gaussian models share this.
            if self.psf.model != "moffat":
                betas = [4.765]
            elif self.psf.beta_range is None:
                betas = [self.psf.beta]
            else:
                # The PSF levels draw beta uniformly from the range: average over it, so that
                # depth and sky noise describe the PSFs the renderer really draws.
                low, high = self.psf.beta_range
                betas = [low + (high - low) * (k + 0.5) / 16 for k in range(16)]
            area = ee = 0.0
            for beta in betas:
                alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
                area += math.pi * alpha**2 * (2.0 * beta - 1.0) / (beta - 1.0) ** 2 / len(betas)
                ee += (1.0 - (1.0 + radius**2 / alpha**2) ** (1.0 - beta)) / len(betas)
        return area, ee

    def _noise_pixels(self, name: str) -> float:
        """Ratio (5-sigma total flux) / (5 sigma_pix): the number of noise pixels' root."""
        area, ee = self._psf_moments(self.band(name).psf_fwhm)
        s2 = self.pixel_scale**2
        if self.depth_definition.kind == "aperture":
            radius = 0.5 * self.depth_definition.aperture_diameter
            return math.sqrt(math.pi * radius**2 / s2) / ee
        return math.sqrt(area / s2)

    def sky_sigma(self, name: str) -> float:
        """Background noise of band ``name`` [counts per pixel].

        Given in the preset, or derived from the depth as in the module docstring:
        ``sigma_pix = f5 / (5 * K)`` with ``K = sqrt(N_ap) / EE`` (aperture depths) or
        ``K = sqrt(N_eff)`` (PSF depths), ``f5`` the depth's flux in counts.
        """
        band = self.band(name)
        if band.sky_sigma is not None:
            return float(band.sky_sigma)
        f5 = self.flux_from_mag(band.depth)
        return float(f5 / (5.0 * self._noise_pixels(name)))

    def depth(self, name: str) -> float:
        """5-sigma limiting AB magnitude of band ``name`` (given or derived from sky_sigma)."""
        band = self.band(name)
        if band.depth is not None:
            return float(band.depth)
        f5 = 5.0 * band.sky_sigma * self._noise_pixels(name)
        return float(self.zero_point - 2.5 * math.log10(f5))

    def flux_sigma(self, name: str) -> float:
        """1-sigma catalogue error of a total flux in band ``name`` [counts]: ``f5 / 5``."""
        return float(self.flux_from_mag(self.depth(name)) / 5.0)


def available_surveys() -> list[str]:
    """Names of the presets shipped with skysort."""
    return sorted(p.stem for p in _PRESET_DIR.glob("*.yaml"))


@functools.lru_cache(maxsize=32)
def _load_cached(path: str) -> SurveyPreset:
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise InputError(path, "a survey preset must be a YAML mapping")
    raw = dict(raw)
    raw["source_file"] = path
    try:
        return SurveyPreset.model_validate(raw)
    except ValidationError as exc:
        raise InputError(path, _describe(exc)) from None


#: The model that reads each block of a preset, by the key that holds the block.
_SECTIONS = {"bands": "BandSpec", "psf": "PSFSpec", "depth_definition": "DepthDefinition", "noise": "NoiseSpec",
             "neighbours": "NeighbourSpec", "selection": "SelectionSpec"}


def _describe(exc: ValidationError) -> str:
    """One line for the first problem of a preset, an unknown key before anything else: a
    misspelt key also makes the intended one missing, and only the misspelling helps."""
    errors = exc.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    first = (unknown or errors)[0]
    loc = ".".join(str(x) for x in first["loc"])
    if first["type"] == "extra_forbidden":
        key = str(first["loc"][-1])
        section = _SECTIONS.get(str(first["loc"][0])) if len(first["loc"]) > 1 else None
        model = globals()[section] if section else SurveyPreset
        known = [k for k in model.model_fields if k != "source_file"]
        close = difflib.get_close_matches(key, known, n=1)
        suggestion = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        return f"{loc}: unknown key ({suggestion})"
    message = first["msg"].removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message


def load_survey(name_or_path: str | os.PathLike | SurveyPreset) -> SurveyPreset:
    """Load a survey preset by name (``"kids"``, ``"sdss"``, ``"cfis"``) or YAML path.

    Parameters
    ----------
    name_or_path : str, os.PathLike or SurveyPreset
        A shipped preset's name, or the path of a YAML file; a ``SurveyPreset`` is returned
        unchanged.

    Returns
    -------
    SurveyPreset

    Raises
    ------
    InputError
        Unknown name, missing file, invalid YAML or invalid preset content.
    """
    if isinstance(name_or_path, SurveyPreset):
        return name_or_path
    text = os.fspath(name_or_path)
    shipped = _PRESET_DIR / f"{text}.yaml"
    if shipped.is_file() and os.sep not in text and not text.endswith((".yaml", ".yml")):
        return _load_cached(str(shipped))
    path = Path(text).expanduser()
    if not path.is_file():
        raise InputError(
            text, f"no such survey preset (shipped ones: {', '.join(available_surveys())})"
        )
    return _load_cached(str(path.resolve()))
