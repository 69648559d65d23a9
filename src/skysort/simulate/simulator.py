"""The survey simulator: labelled stamp sets of stars, galaxies, quasars and blends.

:func:`simulate` draws a population (:mod:`.population`), gives each source a morphology
(point source, COSMOS parametric or real HST galaxy), renders PSF-convolved multi-band stamps
with sky noise (:mod:`.render`), adds spectra for point sources (:mod:`.spectra`) or builds
BlendHunter-style blend stamps (:mod:`.blends`), and writes a stamp set whose table holds every
object's truth.

Reproducibility: object ``i`` of a set depends only on ``(seed, i)`` and the options. Work is
split into blocks of indices that may run in any number of processes; the output file is
identical whatever ``workers`` is.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Callable

import numpy as np
from astropy.table import Table

from .._cores import available_cores
from .._io import check_output_path
from ..data.stampset import StampMeta, StampSet
from ..errors import InputError
from .galaxies import (
    MORPHOLOGY_MODES,
    Morphology,
    ParametricLibrary,
    add_knots,
    load_parametric_library,
    median_half_light_radius,
    sample_parametric,
    REAL_GALAXY_SPLITS,
    sample_real,
)
from .population import draw_population
from .presets import STAMP_SIZE_RANGE, SurveyPreset, load_survey
from .render import render_stamps

KINDS = ("sources", "pointsources", "blends")

#: Streams of per-object random numbers, kept apart so that adding one never shifts another.
_STREAM_MORPHOLOGY, _STREAM_NOISE, _STREAM_OFFSET, _STREAM_PSF = 11, 12, 13, 14
#: Quasar host shapes and sizes.
_STREAM_HOST = 15
_STREAM_SKY = 16
_STREAM_NEIGHBOUR = 17

#: Quasar hosts are drawn from COSMOS fits whose light-weighted Sersic index is at least this:
#: low-z AGN hosts are bulge-dominated (early and early-spiral types).
_HOST_MIN_SERSIC = 2.0

#: Log-normal scatter of galaxy half-light radius at fixed magnitude (dex).
_SIZE_SCATTER_DEX = 0.2


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """What to simulate.

    Attributes
    ----------
    survey : str
        Preset name or YAML path (``kids``, ``sdss``, ``cfis``).
    kind : {"sources", "pointsources", "blends"}
        Stars + galaxies + quasars; stars + quasars with spectra; or isolated / blended galaxies.
    seed : int
        Master seed.
    balanced : bool
        Equal class fractions (sources, pointsources).
    mode : {"parametric", "clumpy", "realistic"}
        Galaxy morphologies: COSMOS Sersic / bulge+disc fits; the same with star-forming knots
        in their discs (:func:`skysort.simulate.galaxies.add_knots`; for blends also a
        magnitude and size drawn apart from the shape, see :mod:`skysort.simulate.blends`);
        or real COSMOS HST images.
    noise_sigma : float or None
        Gaussian sky noise per pixel in counts, the same in every band; default the preset's
        (per band, from its depths; for blends its ``noise.sigma_default``).
    spectra_snr : float
        Median S/N per pixel of point-source spectra.
    image_bands : tuple of str or None
        Sources and point sources: render image stamps in these bands only, in this order
        (default every band of the preset). Catalogue photometry (``mag_<b>``, ``flux_<b>``)
        is still computed for every band. Each stamp's noise is drawn for the rendered bands
        only, so a band's pixels differ between sets rendered with different band lists.
    stamp_size : int or None
        Stamp side in pixels (default the preset's ``stamp_size + 2 * stamp_padding``).
    mag_max : float or None
        Sources and point sources: faintest true magnitude in the selection band (AB; default
        the preset's ``selection.mag_max``), e.g. 22 for an r <= 22 sample.
    real_galaxies : {"all", "train", "test"}
        Realistic mode: which half of the real COSMOS library galaxies come from (even rows
        ``train``, odd rows ``test``), so a model trained on one half is tested on unseen ones.
    population : tuple of (str, value) pairs
        Overrides of the preset's ``population`` parameters
        (:class:`~skysort.simulate.population.PopulationModel`), e.g.
        ``(("galaxy_target_fraction", 0.5),)``.
    near_fraction : float
        Blends: probability that a companion is drawn within 10 px of the centre (near
        blends) rather than anywhere in the stamp (:func:`~skysort.simulate.blends.make_blend_stamps`).
    real_shear : float
        Realistic blends: largest reduced shear applied to each real galaxy (a random one
        within ``[-real_shear, real_shear]`` along a random axis; 0 keeps the library's shapes).
    """

    survey: str = "kids"
    kind: str = "sources"
    seed: int = 0
    balanced: bool = False
    mode: str = "parametric"
    noise_sigma: float | None = None
    spectra_snr: float = 10.0
    real_galaxies: str = "all"
    image_bands: tuple[str, ...] | None = None
    stamp_size: int | None = None
    mag_max: float | None = None
    population: tuple[tuple[str, Any], ...] = ()
    near_fraction: float = 0.0
    real_shear: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError("--kind", f"unknown kind {self.kind!r} (choose from {', '.join(KINDS)})")
        if self.mode not in MORPHOLOGY_MODES:
            raise InputError("--mode", f"unknown mode {self.mode!r} (choose from {', '.join(MORPHOLOGY_MODES)})")
        if self.noise_sigma is not None and self.noise_sigma < 0:
            raise InputError("--noise-sigma", f"noise sigma must be >= 0, got {self.noise_sigma}")
        if not self.spectra_snr > 0:
            raise InputError("--spectra-snr", f"spectral S/N must be positive, got {self.spectra_snr}")
        if self.real_galaxies not in REAL_GALAXY_SPLITS:
            raise InputError("--real-galaxies", f"unknown split {self.real_galaxies!r} (choose from {', '.join(REAL_GALAXY_SPLITS)})")
        if self.real_galaxies != "all" and self.mode != "realistic":
            raise InputError("--real-galaxies", f"selects real COSMOS galaxies: it needs --mode realistic, not {self.mode}")
        if self.balanced and self.kind == "blends":
            raise InputError("--balanced", "applies to --kind sources and --kind pointsources; blend sets are half blended already")
        if self.kind == "pointsources" and self.mode != "parametric":
            raise InputError("--mode", "point-source sets hold stars and quasars (hosts are parametric fits); --mode is for sources and blends")
        if self.image_bands is not None:
            # A tuple keeps the frozen config hashable whatever sequence the caller passed.
            object.__setattr__(self, "image_bands", tuple(self.image_bands))
            if not self.image_bands or len(set(self.image_bands)) != len(self.image_bands):
                raise InputError("--image-bands", f"need one or more distinct bands, got {list(self.image_bands)}")
            if self.kind == "blends":
                raise InputError("--image-bands", "blend sets have a single band; --image-bands is for sources and point sources")
        if self.stamp_size is not None and not STAMP_SIZE_RANGE[0] <= self.stamp_size <= STAMP_SIZE_RANGE[1]:
            raise InputError("--stamp-size", f"stamp side must be {STAMP_SIZE_RANGE[0]} to {STAMP_SIZE_RANGE[1]} pixels, got {self.stamp_size}")
        if self.stamp_size is not None and self.kind == "blends":
            raise InputError("--stamp-size", "blend sets follow BlendHunter's fixed 51 + 2x7 px geometry")
        if not 0.0 <= self.near_fraction <= 1.0:
            raise InputError("--near-fraction", f"is a probability, within 0 to 1, not {self.near_fraction}")
        if self.near_fraction and self.kind != "blends":
            raise InputError("--near-fraction", "places blends' companions; it is for --kind blends")
        if not 0.0 <= self.real_shear <= 0.5:
            raise InputError("--real-shear", f"is a reduced shear, within 0 to 0.5, not {self.real_shear}")
        if self.real_shear and (self.kind != "blends" or self.mode != "realistic"):
            raise InputError("--real-shear", "shears real COSMOS galaxies: it is for --kind blends --mode realistic")
        if self.mag_max is not None and self.kind == "blends":
            raise InputError("--mag-max", "blend sets draw their galaxies from the COSMOS catalogue; --mag-max is for sources and point sources")
        object.__setattr__(self, "population", tuple((str(k), v) for k, v in dict(self.population).items()))
        if self.population:
            if self.kind == "blends":
                raise InputError("--population", "blend sets draw their galaxies from the COSMOS catalogue; --population is for sources and point sources")
            from .population import PopulationModel

            # Validated now, in the parent process, rather than in every worker; the preset's
            # own parameters were checked with its file, so a problem here is the option's.
            preset = load_survey(self.survey)
            PopulationModel.from_overrides({**preset.population, **dict(self.population)}, "--population")

    def load_preset(self) -> SurveyPreset:
        """The survey preset with the ``population`` overrides applied."""
        preset = load_survey(self.survey)
        if not self.population:
            return preset
        return preset.model_copy(update={"population": {**preset.population, **dict(self.population)}})


def _object_rngs(seed: int, indices: np.ndarray, stream: int) -> list[np.random.Generator]:
    return [np.random.default_rng(np.random.SeedSequence([seed, int(i), stream])) for i in indices]


def _object_seeds(seed: int, indices: np.ndarray, stream: int) -> np.ndarray:
    return np.array([np.random.SeedSequence([seed, int(i), stream]).generate_state(1)[0] for i in indices], dtype=np.uint64)


def psf_variants(preset: SurveyPreset, seed: int) -> list[dict[str, Any]]:
    """The PSFs of a simulated set: per variant, FWHM per band (arcsec), shear (g1, g2) and, with
    the preset's ``psf.beta_range``, its Moffat index ``beta``.

    Each object is observed under one of these PSFs: ``psf.psfs_per_level`` per entry of the
    preset's ``psf.fwhm_levels`` (FWHM offsets in units of ``psf.fwhm_scatter``), in that order,
    each with its own small random shear.
    """
    from .psf import random_psf_shear

    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_PSF]))
    variants = []
    for level in preset.psf.fwhm_levels:
        fwhm = {b: max(0.3 * preset.band(b).psf_fwhm, preset.band(b).psf_fwhm + level * preset.psf.fwhm_scatter) for b in preset.band_names}
        for _ in range(preset.psf.psfs_per_level):
            g1, g2 = random_psf_shear(rng, sigma=preset.psf.ellipticity_sigma)
            variant = {"fwhm": dict(fwhm), "g1": g1, "g2": g2}
            if preset.psf.beta_range is not None:
                # Drawn only when asked for, so that the shears of presets without it stay as they were.
                variant["beta"] = float(rng.uniform(*preset.psf.beta_range))
            variants.append(variant)
    return variants


@functools.lru_cache(maxsize=1)
def _host_library() -> tuple[ParametricLibrary, np.ndarray]:
    """Bulge-dominated part of the COSMOS parametric library and its rows in the full one."""
    lib = load_parametric_library()
    keep = np.flatnonzero(np.sum(lib.n * lib.frac, axis=1) >= _HOST_MIN_SERSIC)
    fields = {f.name: getattr(lib, f.name)[keep] for f in dataclasses.fields(ParametricLibrary)}
    return ParametricLibrary(**fields), keep


def _host_morphology(preset: SurveyPreset, seed: int, indices: np.ndarray,
                     host_flux_sel: np.ndarray) -> tuple[Morphology, np.ndarray, np.ndarray]:
    """Parametric shapes of quasar hosts: (morphology, half-light radius [arcsec], COSMOS row).

    The size follows the galaxy size-magnitude relation at the host's own selection-band
    magnitude (not the quasar's), with the same scatter as field galaxies.
    """
    rngs = _object_rngs(seed, indices, _STREAM_HOST)
    host_mag = preset.zero_point - 2.5 * np.log10(host_flux_sel)
    scatter = np.array([rng.standard_normal() for rng in rngs])
    hlr = np.clip(median_half_light_radius(host_mag) * 10.0 ** (_SIZE_SCATTER_DEX * scatter), 0.05, 3.0)
    library, library_rows = _host_library()
    morphology, rows = sample_parametric(rngs, library=library, target_hlr=hlr)
    return morphology, hlr, library_rows[rows]


def _blend_psf(preset: SurveyPreset, seed: int) -> dict[str, Any]:
    """The single PSF of a blend set (as one CFIS exposure): the level nearest the nominal FWHM,
    with a small random shear from the seed."""
    nominal = int(np.argmin(np.abs(preset.psf.fwhm_levels)))
    return psf_variants(preset, seed)[nominal * preset.psf.psfs_per_level]


def _flux_unit(preset: SurveyPreset) -> str:
    return "nanomaggy" if abs(preset.zero_point - 22.5) < 1e-9 else "count"


_FIELD_STAR_COLOURS: dict[tuple[str, int], np.ndarray] = {}


def _field_star_colours(preset: SurveyPreset, seed: int, n: int = 512) -> np.ndarray:
    """Flux ratios to the selection band, ``(n, bands)``, of ``n`` stars of the preset's field
    population: the colours neighbours are drawn from. One fixed sample per (preset, seed), so
    that an object's neighbours do not depend on the block it is simulated in."""
    key = (preset.model_dump_json(), seed)
    if key not in _FIELD_STAR_COLOURS:
        stars = draw_population(preset, n, seed, start=0, kind="pointsources", class_fractions={"star": 1.0})
        fluxes = np.stack([np.asarray(stars[f"flux_{b}"], float) for b in preset.band_names], axis=1)
        fluxes = fluxes[np.all(fluxes > 0, axis=1)]
        sel = preset.band_names.index(preset.selection.band)
        _FIELD_STAR_COLOURS.clear()  # one preset at a time is the rule; keep memory flat
        _FIELD_STAR_COLOURS[key] = fluxes / fluxes[:, sel:sel + 1]
    return _FIELD_STAR_COLOURS[key]


def _draw_neighbours(preset: SurveyPreset, seed: int, indices: np.ndarray,
                     size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Field stars around each object of a block (the preset's ``neighbours``).

    Returns the owner row of each neighbour, its fluxes per band [counts], its offset from the
    stamp centre [pixels], and per object the number of neighbours and the density drawn
    [per arcmin^2]. Colours are those of a star of :func:`_field_star_colours`.
    """
    spec = preset.neighbours
    bands = preset.band_names
    n = len(indices)
    colours = _field_star_colours(preset, seed)
    area = (size * preset.pixel_scale / 60.0) ** 2  # arcmin^2
    half, min_px = 0.5 * size, spec.min_separation / preset.pixel_scale
    log_density = np.log(spec.density_range)
    bright, faint = (10.0 ** (spec.counts_slope * m) for m in spec.mag_range)
    owner, flux, offsets = [], [], []
    count, density = np.zeros(n, np.int16), np.zeros(n, np.float32)
    for row, rng in enumerate(_object_rngs(seed, indices, _STREAM_NEIGHBOUR)):
        density[row] = np.exp(rng.uniform(*log_density))
        k = rng.poisson(density[row] * area)
        if k == 0:
            continue
        # Inverse of the cumulative counts N(<m) ~ 10**(slope m) between the magnitude limits.
        u = rng.uniform(size=k)
        mag = (np.log10(bright + u * (faint - bright)) / spec.counts_slope if spec.counts_slope > 0
               else spec.mag_range[0] + u * (spec.mag_range[1] - spec.mag_range[0]))
        xy = rng.uniform(-half, half, size=(k, 2))
        keep = np.hypot(xy[:, 0], xy[:, 1]) >= min_px
        template = colours[rng.integers(len(colours), size=k)]
        count[row] = keep.sum()
        owner.append(np.full(keep.sum(), row))
        flux.append(template[keep] * preset.flux_from_mag(mag[keep])[:, None])
        offsets.append(xy[keep])
    if not owner:
        return np.zeros(0, np.int64), np.zeros((0, len(bands))), np.zeros((0, 2)), count, density
    return np.concatenate(owner), np.concatenate(flux), np.concatenate(offsets), count, density


def _render_sources(preset: SurveyPreset, population: Table, config: SimulationConfig) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Stamps ``(n, B, H, W)`` of a population block and per-object morphology truth.

    Quasars with ``host_flux_<b> > 0`` are a point source of flux ``flux_<b> - host_flux_<b>``
    plus a bulge-dominated COSMOS parametric host of flux ``host_flux_<b>`` on the same centre
    and PSF, in either ``mode``; their truth has ``morphology = "point+host"``,
    ``host_hlr_arcsec`` [arcsec], ``host_sersic_n`` (light-weighted) and ``host_cosmos_row``
    (row of the COSMOS parametric library), which are 0, NaN and -1 for everything else.
    """
    bands = preset.band_names
    n = len(population)
    indices = np.asarray(population["index"], dtype=np.int64)
    fluxes = np.stack([np.asarray(population[f"flux_{b}"], float) for b in bands], axis=1)
    psf_fwhm = np.array([preset.band(b).psf_fwhm for b in bands])
    sky = np.array([preset.sky_sigma(b) for b in bands])
    if config.noise_sigma is not None:
        sky = np.full(len(bands), config.noise_sigma)
    offsets = np.array([rng.uniform(-0.5, 0.5, 2) for rng in _object_rngs(config.seed, indices, _STREAM_OFFSET)]).reshape(n, 2)
    noise_seeds = _object_seeds(config.seed, indices, _STREAM_NOISE)
    sky_scale = np.ones((n, len(bands)))
    if config.noise_sigma is None and preset.sky_scale_range is not None:
        low, high = np.log(preset.sky_scale_range)
        sky_scale = np.exp(np.array([rng.uniform(low, high, len(bands)) for rng in _object_rngs(config.seed, indices, _STREAM_SKY)]))
    size = _source_stamp_size(preset, config)
    if preset.neighbours is not None:
        nb_owner, nb_flux, nb_offsets, nb_count, nb_density = _draw_neighbours(preset, config.seed, indices, size)
    # Photometry above covers every band; only the requested image bands are rendered.
    rendered = [bands.index(b) for b in _image_bands(preset, config)]
    images = np.empty((n, len(rendered), size, size), dtype=np.float32)
    truth = {
        "offset_x": offsets[:, 0].astype(np.float32), "offset_y": offsets[:, 1].astype(np.float32),
        "hlr_arcsec": np.zeros(n, np.float32), "sersic_n": np.full(n, np.nan, np.float32),
        "morphology": np.full(n, "point", dtype=object), "cosmos_row": np.full(n, -1, np.int64),
    }
    labels = np.asarray(population["label"]).astype(str)
    is_galaxy = labels == "galaxy"
    variants = psf_variants(preset, config.seed)
    psf_choice = np.array([rng.integers(len(variants)) for rng in _object_rngs(config.seed, indices, _STREAM_PSF)], dtype=np.int64)
    galaxy_rows = np.flatnonzero(is_galaxy)
    morphology = None
    if galaxy_rows.size:
        rngs = _object_rngs(config.seed, indices[galaxy_rows], _STREAM_MORPHOLOGY)
        selection_mag = np.asarray(population[f"mag_true_{preset.selection.band}"], float)[galaxy_rows]
        # Size from a size-magnitude relation, drawn from each object's own generator.
        scatter = np.array([rng.standard_normal() for rng in rngs])
        target_hlr = np.clip(median_half_light_radius(selection_mag) * 10.0 ** (_SIZE_SCATTER_DEX * scatter), 0.05, 3.0)
        sampler = sample_real if config.mode == "realistic" else sample_parametric
        extra = {"split": config.real_galaxies} if config.mode == "realistic" else {}
        morphology, rows = sampler(rngs, target_hlr=target_hlr, **extra)
        if config.mode == "clumpy":
            add_knots(morphology, rngs)
        truth["hlr_arcsec"][galaxy_rows] = target_hlr
        truth["morphology"][galaxy_rows] = "real" if config.mode == "realistic" else config.mode
        truth["cosmos_row"][galaxy_rows] = rows
        if config.mode != "realistic":
            # The light-weighted Sersic index of bulge+disc fits: a compact summary for users.
            truth["sersic_n"][galaxy_rows] = np.sum(morphology.n * morphology.frac, axis=1)
    galaxy_position = np.full(n, -1, dtype=np.int64)
    galaxy_position[galaxy_rows] = np.arange(galaxy_rows.size)
    # Quasar hosts: the point source keeps the AGN part of the flux, the host the rest, so the
    # stamp still holds flux_<b>. Tables written before hosts existed have no host columns.
    host_cols = [f"host_flux_{b}" for b in bands]
    if all(c in population.colnames for c in host_cols):
        host_flux = np.stack([np.asarray(population[c], float) for c in host_cols], axis=1)
    else:
        host_flux = np.zeros_like(fluxes)
    host_rows = np.flatnonzero(~is_galaxy & np.any(host_flux > 0, axis=1))
    point_flux = fluxes - host_flux
    truth["host_hlr_arcsec"] = np.zeros(n, np.float32)
    truth["host_sersic_n"] = np.full(n, np.nan, np.float32)
    truth["host_cosmos_row"] = np.full(n, -1, np.int64)
    host_morphology = None
    if host_rows.size:
        sel = bands.index(preset.selection.band)
        host_morphology, host_hlr, host_library_rows = _host_morphology(
            preset, config.seed, indices[host_rows], host_flux[host_rows, sel])
        truth["host_hlr_arcsec"][host_rows] = host_hlr
        truth["host_sersic_n"][host_rows] = np.sum(host_morphology.n * host_morphology.frac, axis=1)
        truth["host_cosmos_row"][host_rows] = host_library_rows
        truth["morphology"][host_rows] = "point+host"
    host_position = np.full(n, -1, dtype=np.int64)
    host_position[host_rows] = np.arange(host_rows.size)
    has_host = host_position >= 0
    psf_kind = preset.psf.model
    for v, variant in enumerate(variants):
        psf_beta = variant.get("beta", preset.psf.beta) if psf_kind == "moffat" else None
        psf_fwhm = np.array([variant["fwhm"][bands[k]] for k in rendered])
        options = dict(pixel_scale=preset.pixel_scale, stamp_size=size, sky_sigma=sky[rendered], psf_kind=psf_kind, psf_beta=psf_beta,
                       psf_g1=variant["g1"], psf_g2=variant["g2"])
        for galaxy in (False, True):
            chosen = np.flatnonzero((psf_choice == v) & (is_galaxy == galaxy))
            if not chosen.size:
                continue
            shapes = morphology.subset(galaxy_position[chosen]) if galaxy else None
            flux = (fluxes[chosen] if galaxy else point_flux[chosen])[:, rendered]
            images[chosen] = render_stamps(flux, psf_fwhm, morphology=shapes, offsets=offsets[chosen],
                                           noise_seeds=noise_seeds[chosen],
                                           **(options | {"sky_sigma": sky[rendered] * sky_scale[np.ix_(chosen, rendered)]}))
        if preset.neighbours is not None:
            near = np.flatnonzero(psf_choice[nb_owner] == v)
            if near.size:
                # Noiseless, on the object's PSF (the stamp got its noise once, above); the
                # renderer widens its periodic image for off-centre sources by itself.
                light = render_stamps(nb_flux[near][:, rendered], psf_fwhm, offsets=nb_offsets[near],
                                      **(options | {"sky_sigma": None}))
                np.add.at(images, nb_owner[near], light)
        hosts = np.flatnonzero((psf_choice == v) & has_host)
        if hosts.size:
            # Noiseless, on the AGN's PSF and centre: the stamp got its noise once, above.
            images[hosts] += render_stamps(host_flux[hosts][:, rendered], psf_fwhm,
                                           morphology=host_morphology.subset(host_position[hosts]),
                                           offsets=offsets[hosts], **(options | {"sky_sigma": None}))
    if preset.neighbours is not None:
        truth["n_neighbours"] = nb_count
        truth["neighbour_density"] = nb_density
        # Total neighbour flux in the selection band [counts], light partly outside the stamp.
        sel = bands.index(preset.selection.band)
        truth[f"neighbour_flux_{bands[sel]}"] = np.bincount(nb_owner, weights=nb_flux[:, sel], minlength=n).astype(np.float32)
    if preset.sky_scale_range is not None and config.noise_sigma is None:
        for k in rendered:
            truth[f"sky_sigma_{bands[k]}"] = (sky[k] * sky_scale[:, k]).astype(np.float32)
    reference = preset.selection.band
    truth["psf_fwhm_arcsec"] = np.array([variants[k]["fwhm"][reference] for k in psf_choice], dtype=np.float32)
    truth["psf_g1"] = np.array([variants[k]["g1"] for k in psf_choice], dtype=np.float32)
    truth["psf_g2"] = np.array([variants[k]["g2"] for k in psf_choice], dtype=np.float32)
    if preset.psf.model == "moffat":
        truth["psf_beta"] = np.array([variants[k].get("beta", preset.psf.beta) for k in psf_choice], dtype=np.float32)
    truth["morphology"] = truth["morphology"].astype(str)
    return images, truth


def _image_bands(preset: SurveyPreset, config: SimulationConfig) -> tuple[str, ...]:
    """Bands of the rendered stamps (sources and point sources), checked against the preset."""
    if config.image_bands is None:
        return tuple(preset.band_names)
    unknown = [b for b in config.image_bands if b not in preset.band_names]
    if unknown:
        raise InputError("--image-bands", f"bands {unknown} are not bands of survey {preset.name} ({', '.join(preset.band_names)})")
    return tuple(config.image_bands)


def _source_stamp_size(preset: SurveyPreset, config: SimulationConfig) -> int:
    return int(config.stamp_size) if config.stamp_size is not None else preset.stamp_size + 2 * preset.stamp_padding


def _blend_noise(config: SimulationConfig, preset: SurveyPreset) -> float:
    return float(config.noise_sigma if config.noise_sigma is not None else preset.noise.sigma_default)


def simulate_block(config: SimulationConfig, start: int, n: int) -> tuple[np.ndarray, dict[str, Any], dict[str, np.ndarray]]:
    """Simulate objects ``start .. start + n - 1``: images, table columns and extra arrays."""
    if config.kind == "blends":
        from .blends import make_blend_stamps

        preset = config.load_preset()
        sigma = _blend_noise(config, preset)
        # One PSF per blend set (as one CFIS exposure), with a small random shear from the seed.
        psf = _blend_psf(preset, config.seed)
        images, truth = make_blend_stamps(n, config.seed, start=start, mode=config.mode, noise_sigma=sigma,
                                          psf_fwhm=psf["fwhm"][preset.band_names[0]], psf_g1=psf["g1"], psf_g2=psf["g2"],
                                          zero_point=preset.zero_point, real_galaxies=config.real_galaxies,
                                          near_fraction=config.near_fraction, real_shear=config.real_shear)
        columns = {name: np.asarray(truth[name]) for name in truth.colnames}
        columns["id"] = columns.pop("index")
        columns["label"] = np.where(columns["blended"], "blended", "isolated")
        columns["noise_sigma"] = np.full(n, sigma, np.float32)
        band = preset.band_names[0]
        if "mag_central" in columns:
            columns[f"mag_{band}"] = columns["mag_central"]
        return images, columns, {}
    preset = config.load_preset()
    mag_range = None
    if config.mag_max is not None:
        if not config.mag_max > preset.selection.mag_min:
            raise InputError("--mag-max", f"must be fainter than the preset's brightest magnitude {preset.selection.mag_min}, got {config.mag_max}")
        mag_range = (preset.selection.mag_min, config.mag_max)
    population = draw_population(preset, n, config.seed, start=start, kind=config.kind, balanced=config.balanced,
                                 mag_range=mag_range)
    images, truth = _render_sources(preset, population, config)
    columns: dict[str, Any] = {name: np.asarray(population[name]) for name in population.colnames}
    columns["id"] = columns.pop("index")
    columns.update(truth)
    arrays = {}
    if config.kind == "pointsources":
        from .spectra import simulate_spectra

        spectra = simulate_spectra(population, preset, config.seed, snr=config.spectra_snr)
        arrays = {"spectrum": spectra["flux"].astype(np.float32), "spectrum_ivar": spectra["ivar"].astype(np.float32)}
    return images, columns, arrays


def catalogue_magnitude_convention(preset: SurveyPreset) -> dict[str, Any]:
    """How the ``mag_<band>`` columns are defined: ``{"system": "pogson"}`` or
    ``{"system": "asinh", "softening": {band: b}}`` (b in maggies, Lupton et al. 1999)."""
    if preset.catalogue_magnitudes == "asinh":
        return {"system": "asinh", "softening": {b.name: b.asinh_softening for b in preset.bands}}
    return {"system": "pogson"}


def _stamp_meta(config: SimulationConfig, preset: SurveyPreset, n: int, block: int, command: str | None) -> StampMeta:
    bands = (preset.band_names[0],) if config.kind == "blends" else _image_bands(preset, config)
    if config.kind == "blends":
        sky = {bands[0]: _blend_noise(config, preset)}
    elif config.noise_sigma is not None:
        sky = {b: float(config.noise_sigma) for b in bands}
    else:
        sky = {b: float(preset.sky_sigma(b)) for b in bands}
    return StampMeta.with_provenance(
        command=command,
        bands=bands,
        pixel_scale=preset.pixel_scale,
        flux_unit=_flux_unit(preset),
        zero_points={b: preset.zero_point for b in bands},
        psf_fwhm={b: preset.band(b).psf_fwhm for b in bands},
        survey=preset.name,
        seed=config.seed,
        extra={
            "simulation": dataclasses.asdict(config) | {"n": n, "block": block},
            "sky_sigma": sky,
            # The whole preset, so that a set made from a user's (or an earlier) preset file
            # records what drew it, not only the preset's name.
            "survey_preset": preset.model_dump(mode="json", exclude={"source_file"}),
            "psf_model": preset.psf.model_dump(),
            "psf_variants": [_blend_psf(preset, config.seed)] if config.kind == "blends" else psf_variants(preset, config.seed),
            # The band of the per-object psf_fwhm_arcsec column.
            "psf_fwhm_band": preset.selection.band,
            "colour_gradients": "ignored: one morphology per source, flux scaled per band",
            # Catalogue photometry (mag_<b>) covers these bands even when fewer are imaged.
            "photometry_bands": [preset.band_names[0]] if config.kind == "blends" else list(preset.band_names),
            "catalogue_magnitudes": catalogue_magnitude_convention(preset),
        },
    )


def simulate(
    config: SimulationConfig,
    n: int,
    out: str | os.PathLike,
    *,
    workers: int = 1,
    block: int = 512,
    command: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> StampSet:
    """Simulate ``n`` objects into a new stamp set at ``out``.

    Parameters
    ----------
    config : SimulationConfig
        What to simulate.
    n : int
        Number of objects.
    out : path-like
        Output stamp set (written atomically).
    workers : int
        Processes rendering blocks in parallel; the output does not depend on it.
    block : int
        Objects per work unit (bounds memory: at most ``2 * workers`` blocks are in flight).
    progress : callable, optional
        Called with the number of objects finished after each block.
    """
    if n <= 0:
        raise InputError("--n", f"number of objects must be positive, got {n}")
    if workers < 1:
        raise InputError("--workers", f"need at least one worker, got {workers}")
    # Found now rather than when the finished file is renamed onto it.
    check_output_path(out)
    preset = config.load_preset()
    if config.kind == "blends" and (preset.stamp_size, preset.stamp_padding) != (51, 7):
        raise InputError("--survey", f"blends follow BlendHunter's CFIS geometry (51 px + 7 px padding, 0.187\"/px); use --survey cfis, not {preset.name}")
    if config.kind != "blends":
        # A missing or mis-scaled filter curve is reported before any file is begun, not by a worker.
        preset.load_filters()
    meta = _stamp_meta(config, preset, n, block, command)
    size = (65, 65) if config.kind == "blends" else (_source_stamp_size(preset, config),) * 2
    starts = list(range(0, n, block))
    # The output does not depend on the number of processes, so more of them than blocks or
    # cores would only cost memory (each holds its own tables) and start-up time.
    workers = min(workers, len(starts), available_cores())
    array_specs = None
    array_attrs = None
    if config.kind == "pointsources":
        from .spectra import sdss_wavelength_grid

        grid = sdss_wavelength_grid()
        array_specs = {"spectrum": ((len(grid),), "float32"), "spectrum_ivar": ((len(grid),), "float32")}
        spectrum_attrs = {"loglam_start": float(np.log10(grid[0])), "loglam_step": 1e-4, "n_pixels": len(grid),
                          "flux_unit": "1e-17 erg s-1 cm-2 A-1", "snr_median": config.spectra_snr}
        array_attrs = {"spectrum": spectrum_attrs, "spectrum_ivar": {"unit": "inverse square of the spectrum's flux unit"}}
    with StampSet.create(out, meta, size, arrays=array_specs, array_attrs=array_attrs) as writer:
        def write(result):
            images, columns, arrays = result
            writer.append(images, columns, arrays or None)
            if progress:
                progress(len(images))

        if workers == 1:
            for start in starts:
                write(simulate_block(config, start, min(block, n - start)))
        else:
            # Fork keeps the preloaded tables; bounded in-flight blocks keep memory flat.
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
                pending: deque = deque()
                for start in starts:
                    pending.append(pool.submit(simulate_block, config, start, min(block, n - start)))
                    if len(pending) >= 2 * workers:
                        write(pending.popleft().result())
                while pending:
                    write(pending.popleft().result())
    return StampSet.open(out)
