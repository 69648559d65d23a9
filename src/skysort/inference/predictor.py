"""One interface for every trained classifier, whatever its task.

A :class:`Predictor` turns per-object inputs (image stamps in physical units and/or AB
magnitudes) into class probabilities. ``skysort predict`` on a stamp set, on a catalogue alone,
and the streaming survey-scale inference all go through it, so a new task only has to provide a
predictor, not its own prediction loop.

A task module ``skysort.tasks.<task>`` provides ``predictor_from_file(path, meta, state,
device)`` returning a :class:`Predictor`; :func:`load_predictor` dispatches on the model
file's ``task``.

Conventions
-----------
- ``inputs["image"]``: float32 ``(N, B, H, W)``, the model's ``image_bands`` in that order, in the
  stamp set's flux units (the model normalises them itself); NaN pixels allowed.
- ``inputs["mag"]`` / ``inputs["magerr"]``: float32 ``(N, P)`` AB magnitudes and errors in the
  model's ``photometry_bands`` order; NaN where missing.
- ``inputs["psf_fwhm"]``: float32 ``(N,)`` PSF FWHM [arcsec] in the spec's ``seeing_band``, for
  models that read the seeing; NaN (or absent) where unknown.
- ``Predictor.predict`` returns ``{"probabilities": (N, C) float32, ...}`` with rows summing to 1
  over ``classes`` (for a binary model, C = 2), plus optional extra per-object outputs
  (1-D arrays of length N) that are copied into the output table as they are.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
from astropy.table import Table

from ..data.stampset import stamps_missing_a_band, stamps_without_pixels
from ..errors import InputError

#: Bit set in the output ``flags`` column (beside the stamp set's own flags) when the model
#: ran without one of its inputs (images or some photometric bands).
MISSING_INPUT_FLAG = 1 << 8


@dataclass
class InputSpec:
    """What a predictor needs.

    Attributes
    ----------
    image_bands : list of str
        Bands of the image stamps, in order (empty: the model uses no images).
    stamp_size : (int, int) or None
        Stamp height and width in pixels.
    pixel_scale : float or None
        Arcsec per pixel the model was trained at.
    photometry_bands : list of str
        Bands of the magnitudes, in order (empty: no photometry).
    cut_size : (int, int) or None
        Stamp size to cut from survey images when the model accepts several sizes
        (``stamp_size`` None, e.g. a model that centre-crops); default ``stamp_size``.
    seeing_band : str or None
        The model also reads each object's PSF FWHM in this band (``inputs["psf_fwhm"]``).
    zero_points : dict of str to float or None
        AB zero point per image band of the flux unit the model was trained on
        (``mag = zero_point - 2.5 log10(flux)``); images on other zero points are brought to
        it (:func:`flux_scale`). None: the model's image normalisation does not depend on the
        flux unit, or the unit was not recorded.
    """

    image_bands: list[str] = field(default_factory=list)
    stamp_size: tuple[int, int] | None = None
    pixel_scale: float | None = None
    photometry_bands: list[str] = field(default_factory=list)
    cut_size: tuple[int, int] | None = None
    seeing_band: str | None = None
    zero_points: dict[str, float] | None = None

    @property
    def stamp_size_to_cut(self) -> tuple[int, int] | None:
        """The stamp size to cut from images: ``stamp_size``, else ``cut_size``."""
        return tuple(self.stamp_size) if self.stamp_size else (tuple(self.cut_size) if self.cut_size else None)

    @property
    def uses_images(self) -> bool:
        return bool(self.image_bands)

    @property
    def uses_photometry(self) -> bool:
        return bool(self.photometry_bands)


class Predictor(Protocol):
    """A loaded model ready for inference (see the module docstring for array conventions)."""

    name: str
    task: str
    classes: list[str]
    meta: dict[str, Any]
    spec: InputSpec
    model_file: Path

    def predict(self, inputs: Mapping[str, np.ndarray], *, images_available: bool = True) -> dict[str, np.ndarray]:
        """Class probabilities ``(N, C)`` under ``"probabilities"`` plus optional extras.

        ``images_available=False`` asks a model that can (e.g. sgq's photometry branch) to
        classify from photometry alone; others raise :class:`~skysort.errors.InputError`.
        """
        ...

    def to(self, device: str) -> "Predictor":
        """Move the network to ``device`` (``"cpu"``, ``"cuda"``); returns self."""
        ...


class TorchPredictor:
    """State shared by the predictors of one torch network: the network, its model file and
    metadata, classes, input spec and device. Task predictors add ``predict``."""

    task = ""

    def __init__(self, network, meta: dict[str, Any], model_file: str | os.PathLike, spec: InputSpec,
                 device: str = "cpu", default_classes: list[str] | None = None):
        from ..models.inference import fold_batch_norms

        self.network, self.meta, self.model_file = fold_batch_norms(network), meta, Path(model_file)
        self.classes = list(meta.get("classes") or default_classes or [])
        self.name = self.model_file.stem
        self.spec = spec
        self.device = "cpu"
        self.to(device)

    def to(self, device: str) -> "TorchPredictor":
        from ..models.inference import memory_format_for

        self.network.to(device, memory_format=memory_format_for(device))
        self.device = device
        return self


def load_predictor(model: str | os.PathLike, device: str | None = None) -> Predictor:
    """Load a model file or shipped model name as a :class:`Predictor`.

    Parameters
    ----------
    model : str or path-like
        Model file or shipped name (``skysort models list``).
    device : str, optional
        ``"cpu"`` or ``"cuda"``; default CUDA when available.
    """
    import torch

    from ..models.checkpoint import load_model_file
    from ..models.registry import resolve_model

    path = resolve_model(model)
    meta, state = load_model_file(path)
    task = meta.get("task")
    try:
        module = importlib.import_module(f"skysort.tasks.{task}")
        factory: Callable[..., Predictor] = getattr(module, "predictor_from_file")
    except (ImportError, AttributeError, TypeError):
        raise InputError(path, f"models of task {task!r} cannot be used for prediction by this skysort") from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return factory(path, meta, state, device)


@dataclass(frozen=True)
class ClassDecision:
    """How a model's class probabilities become the output ``p_<class>`` and ``class`` columns.

    Attributes
    ----------
    threshold : float, optional
        Binary models: the second class when its probability exceeds this (default: the most
        probable class).
    prior : mapping of str to float, str, or "auto", optional
        Class fractions expected among the objects classified (a survey field's, say), one per
        model class; at least 0, not all 0, normalised to sum to 1 (the text ``"star=0.12,galaxy=0.86,qso=0.02"``
        is read by :func:`parse_prior`). A network's probabilities hold for the class balance it was trained with
        (:func:`training_class_fractions`); with a prior they are multiplied by prior / training
        fraction and renormalised, which is Bayes' rule with the prior changed and the
        likelihoods kept (Saerens, Latinne & Decaestecker 2002). ``"auto"`` estimates the
        fractions from the predictions themselves (:func:`estimate_class_prior`), which needs
        every object's probabilities before any is decided (see :meth:`resolved`). Without a
        prior the training balance stands (for the shipped models: equal classes).
    """

    threshold: float | None = None
    prior: Mapping[str, float] | str | None = None

    def __post_init__(self):
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise InputError("--threshold", f"a probability threshold lies between 0 and 1, got {self.threshold}")
        if isinstance(self.prior, str):
            # The Python API takes the command line's text too ("star=0.12,..." or "auto").
            object.__setattr__(self, "prior", parse_prior(self.prior))
        elif self.prior is not None:
            # A plain dict of our own: the caller's mapping may change later, and the record is JSON.
            prior = {}
            for name, value in dict(self.prior).items():
                try:
                    fraction = float(value)
                except (TypeError, ValueError):
                    fraction = float("nan")
                if not np.isfinite(fraction) or fraction < 0:
                    raise InputError("--prior", f"class fractions must be numbers of at least 0; got {name}={value!r}")
                prior[str(name)] = fraction
            total = sum(prior.values())
            if not total > 0:
                # (An estimated prior may hold a class at 0, but not every class.)
                raise InputError("--prior", "give at least one class a positive fraction")
            if abs(total - 1.0) > 1e-9:
                prior = {name: fraction / total for name, fraction in prior.items()}
            object.__setattr__(self, "prior", prior)

    def check(self, predictor: "Predictor", *, allow_auto: bool = False) -> None:
        """Raise :class:`InputError` (``--prior``) unless the prior fits the predictor's model.

        ``allow_auto``: the caller sees all objects at once and can resolve ``"auto"``.
        A threshold needs a two-class model (:class:`InputError` on ``--threshold`` otherwise).
        """
        if self.threshold is not None and len(predictor.classes) != 2:
            raise InputError("--threshold", f"applies to two-class models; {predictor.name} has "
                                            f"{len(predictor.classes)} classes ({', '.join(predictor.classes)})")
        if self.prior is None:
            return
        if self.prior == "auto" and not allow_auto:
            raise InputError("--prior", "auto estimates the class mix from every prediction at once, which this "
                                        "streamed run cannot do: estimate it on a sample (skysort predict --data "
                                        "SAMPLE.h5 --out S.parquet --prior auto prints it) and give it here")
        if self.prior != "auto" and sorted(self.prior) != sorted(predictor.classes):
            raise InputError("--prior", f"give one fraction for each class of model {predictor.name}: "
                                        f"{', '.join(predictor.classes)} (got {', '.join(self.prior)})")
        training_class_fractions(predictor)

    def batchwise(self) -> "ClassDecision":
        """The decision to apply batch by batch: an ``"auto"`` prior is estimated only once
        every object's probabilities are in (:func:`apply_decision`), so batches keep the
        training balance until then."""
        return ClassDecision(threshold=self.threshold) if self.prior == "auto" else self

    def resolved(self, predictor: "Predictor", probabilities: np.ndarray) -> "ClassDecision":
        """This decision with an ``"auto"`` prior replaced by the one estimated from
        ``probabilities`` (N, C), every object's under the training balance; else itself."""
        if self.prior != "auto":
            return self
        estimate = estimate_class_prior(probabilities, training_class_fractions(predictor))
        return ClassDecision(threshold=self.threshold, prior={name: round(float(f), 6) for name, f in zip(predictor.classes, estimate)})

    def probabilities(self, predictor: "Predictor", probabilities: np.ndarray) -> np.ndarray:
        """``probabilities`` (N, C) under this decision's prior (unchanged without one)."""
        if self.prior is None:
            return probabilities
        if self.prior == "auto":
            raise ValueError("an 'auto' prior must be resolved (ClassDecision.resolved) before it is applied")
        target = np.array([self.prior[name] for name in predictor.classes], np.float64)
        shifted = np.asarray(probabilities, np.float64) * (target / training_class_fractions(predictor))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)

    def record(self) -> dict[str, Any]:
        """The decision's settings for manifests and file metadata."""
        return {"threshold": self.threshold, "prior": dict(self.prior) if isinstance(self.prior, dict) else self.prior}

    def signature(self) -> dict[str, Any]:
        """The settings in a run's signature: the prior only when there is one, so that a run
        started before priors existed still resumes."""
        return {k: v for k, v in self.record().items() if k == "threshold" or v is not None}


def parse_prior(text: str) -> dict[str, float] | str:
    """``"star=0.12,galaxy=0.86,qso=0.02"`` as ``{class: fraction}``, normalised to sum to 1;
    ``"auto"`` as itself (estimate the fractions from the predictions).

    Raises
    ------
    InputError
        A malformed item, a repeated class, or a fraction that is not a positive number.
    """
    if text.strip().lower() == "auto":
        return "auto"
    prior: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            fraction = float(value)
        except ValueError:
            fraction = float("nan")
        if not sep or not name or not np.isfinite(fraction) or fraction <= 0:
            raise InputError("--prior", f"expected CLASS=FRACTION items with positive fractions, separated by commas; got {item.strip()!r}")
        if name in prior:
            raise InputError("--prior", f"class {name!r} given twice")
        prior[name] = fraction
    total = sum(prior.values())
    return {name: fraction / total for name, fraction in prior.items()}


def estimate_class_prior(probabilities: np.ndarray, training_fractions: np.ndarray, *, tolerance: float = 1e-6,
                         max_iterations: int = 1000) -> np.ndarray:
    """Class fractions of a set of objects estimated from their predicted probabilities alone.

    The expectation-maximisation of Saerens, Latinne & Decaestecker (2002, Neural Computation
    14, 21): start from the training balance, move every object's probabilities to the current
    fractions by Bayes' rule, take their mean as the new fractions, until they change by less
    than ``tolerance``. No labels are used. It assumes the probabilities are calibrated for
    the training balance; objects whose probabilities are not finite are left out.

    Parameters
    ----------
    probabilities : ndarray (N, C)
        Every object's class probabilities under the training balance.
    training_fractions : ndarray (C,)
        That balance (:func:`training_class_fractions`).

    Returns
    -------
    ndarray (C,)
        Estimated class fractions, summing to 1.
    """
    probabilities = np.asarray(probabilities, np.float64)
    probabilities = probabilities[np.isfinite(probabilities).all(axis=1)]
    training = np.asarray(training_fractions, np.float64)
    fractions = training.copy()
    if len(probabilities) == 0:
        return fractions
    for _ in range(max_iterations):
        shifted = probabilities * (fractions / training)
        updated = (shifted / shifted.sum(axis=1, keepdims=True)).mean(axis=0)
        converged = np.max(np.abs(updated - fractions)) < tolerance
        fractions = updated
        if converged:
            break
    return fractions / fractions.sum()


def training_class_fractions(predictor: "Predictor") -> np.ndarray:
    """The class balance a model's probabilities refer to, in ``predictor.classes`` order.

    The fraction of each class among the training objects, times the class weight of the
    loss (a class weighted w counts as w times as many objects), normalised. For a model
    fine-tuned after its training (``fine_tuning`` in its metadata) the fine-tuning set's.

    Raises
    ------
    InputError
        The model file records no class counts for its (last) training.
    """
    training = predictor.meta.get("fine_tuning") or predictor.meta.get("training") or {}
    counts = training.get("class_counts")
    if not counts or any(name not in counts for name in predictor.classes):
        raise InputError(predictor.model_file, "the model records no training class counts, so a --prior cannot be applied to it")
    weights = training.get("class_weights") or [1.0] * len(predictor.classes)
    balance = np.array([counts[name] for name in predictor.classes], np.float64) * np.asarray(weights, np.float64)
    return balance / balance.sum()


def class_table(predictor: Predictor, outputs: Mapping[str, np.ndarray], ids: np.ndarray | None = None,
                extra_columns: Mapping[str, np.ndarray] | None = None, flags: np.ndarray | None = None,
                decision: ClassDecision | None = None) -> Table:
    """Output rows: ``id`` (and ``ra``, ``dec`` when given in ``extra_columns``), ``p_<class>``
    per class, ``class`` (the most probable, or for a binary model the second class when its
    probability exceeds the decision's threshold), ``flags``, then the predictor's extra
    outputs. The probabilities are those of ``decision`` (see :class:`ClassDecision`)."""
    decision = decision or ClassDecision()
    threshold = decision.threshold
    probabilities = decision.probabilities(predictor, np.asarray(outputs["probabilities"], np.float32))
    n = len(probabilities)
    table = Table()
    if ids is not None:
        table["id"] = np.asarray(ids)
    for name, values in (extra_columns or {}).items():
        table[name] = np.asarray(values)
    for index, name in enumerate(predictor.classes):
        table[f"p_{name}"] = probabilities[:, index] if n else np.zeros(0, np.float32)
    if threshold is not None and len(predictor.classes) == 2:
        chosen = (probabilities[:, 1] > threshold).astype(int) if n else np.zeros(0, int)
    else:
        chosen = np.argmax(probabilities, axis=1) if n else np.zeros(0, int)
    labels = np.asarray(predictor.classes)
    table["class"] = labels[chosen] if n else np.zeros(0, dtype=labels.dtype)
    if "inputs_used" in outputs and n:
        # An object with no usable input keeps the prior as its probabilities, but no class:
        # the most probable class of a flat prior would be an arbitrary label.
        table["class"][np.asarray(outputs["inputs_used"]) == "none"] = ""
    if n:
        # Nor does an object whose probabilities could not be computed (argmax of NaN is 0).
        table["class"][~np.isfinite(probabilities).all(axis=1)] = ""
    table["flags"] = np.asarray(flags, np.int32) if flags is not None else np.zeros(n, np.int32)
    for name, values in outputs.items():
        if name != "probabilities" and np.ndim(values) == 1:
            table[name] = np.asarray(values)
    for name, unit in _OUTPUT_UNITS.items():
        if name in table.colnames:
            table[name].unit = unit
    return table


#: Units of the prediction columns that carry one (written to every output format).
_OUTPUT_UNITS = {"ra": "deg", "dec": "deg", "psf_fwhm": "arcsec", "companion_dx": "pix", "companion_dy": "pix"}


def stampset_without_pixels(stamps, band_index: Sequence[int] | None = None, batch_size: int = 4096) -> np.ndarray:
    """:func:`stamps_without_pixels` for every stamp of a stamp set (in the planes
    ``band_index``, default all), read batch by batch."""
    blank = [stamps_without_pixels(images if band_index is None else images[:, list(band_index)])
             for _, images in stamps.iter_batches(batch_size=batch_size)]
    return np.concatenate(blank) if blank else np.zeros(0, bool)


def without_blank_stamps(stamps, blank: np.ndarray):
    """``(view, n_blank)``: the stamp set without the stamps marked ``blank`` (no finite pixel:
    :func:`stampset_without_pixels`, or the NaN predictions a model gives them), and how many
    those were. Evaluations score the view: an image-only model cannot classify such a stamp."""
    blank = np.asarray(blank, bool)
    if not blank.any():
        return stamps, 0
    if blank.all():
        raise InputError(stamps.path, "no stamp holds a finite pixel: there is nothing to score")
    return stamps[np.flatnonzero(~blank)], int(np.count_nonzero(blank))


def flux_scale(image_bands, model_zero_points: Mapping[str, float] | None,
               zero_points: Mapping[str, float]) -> np.ndarray | None:
    """Factors (one per image band) that bring images on ``zero_points`` to the flux unit a
    model was trained on (``model_zero_points``, :attr:`InputSpec.zero_points`):
    ``10 ** (0.4 * (zp_model - zp_data))``; None when nothing needs changing or either side's
    zero point is unknown (the images are then used as they are). E.g. stamps in nanomaggies
    (22.5) for a model trained in counts on 30: factor 1000."""
    if not model_zero_points or not image_bands:
        return None
    model = np.array([model_zero_points.get(b, np.nan) for b in image_bands], float)
    data = np.array([zero_points.get(b, np.nan) for b in image_bands], float)
    usable = np.isfinite(model) & np.isfinite(data)
    factors = np.where(usable, 10.0 ** (0.4 * (np.where(usable, model, 0.0) - np.where(usable, data, 0.0))), 1.0)
    return None if np.allclose(factors, 1.0, rtol=1e-9) else factors.astype(np.float32)


#: A band whose median input magnitude lies further than this many standard deviations from
#: the training mean is reported by :func:`magnitude_range_message`.
MAGNITUDE_OUTLIER_SIGMA = 5.0
#: Rows of a stamp set whose magnitudes :func:`stampset_notes` judges.
MAGNITUDE_SAMPLE_ROWS = 100_000


def magnitude_range_message(model_meta: Mapping[str, Any], bands: Sequence[str], mags: np.ndarray) -> str | None:
    """A caution when magnitudes given to a model look like something else: the median of a
    band's finite values ``mags`` ``(N, len(bands))`` [mag] lies more than
    :data:`MAGNITUDE_OUTLIER_SIGMA` standard deviations from the training mean the model
    records (``normalisation["photometry"]``). Errors, fluxes or another system mapped as
    magnitudes pass every range check one by one, but not this one. None when nothing is off
    or the model records no training magnitudes."""
    photometry = (model_meta.get("normalisation") or {}).get("photometry") or {}
    model_bands = list(model_meta.get("photometry_bands") or [])
    mean, std = photometry.get("mag_mean"), photometry.get("mag_std")
    if not mean or not std or len(mean) != len(model_bands):
        return None
    mags = np.asarray(mags, float).reshape(len(mags), len(bands))
    off = []
    for column, band in enumerate(bands):
        finite = mags[:, column][np.isfinite(mags[:, column])]
        if band not in model_bands or not finite.size:
            continue
        i = model_bands.index(band)
        median = float(np.median(finite))
        if abs(median - mean[i]) > MAGNITUDE_OUTLIER_SIGMA * std[i]:
            off.append(f"{band} median {median:.3g} (trained on {mean[i]:.1f} +- {std[i]:.1f})")
    if not off:
        return None
    return (f"magnitudes unlike the model's training magnitudes: {'; '.join(off)}; are magnitude errors, fluxes or "
            "another system mapped as magnitudes? (check the column mapping)")


def unknown_zero_point_message(model_zero_points: Mapping[str, float] | None, bands: Sequence[str]) -> str | None:
    """The warning for images whose zero point is unknown in ``bands``, for a model that reads
    absolute fluxes (one recording ``model_zero_points``); None when there is nothing to say.
    :func:`flux_scale` then uses such images as they are."""
    model_zero_points = model_zero_points or {}
    bands = [b for b in bands if np.isfinite(model_zero_points.get(b, np.nan))]
    if not bands:
        return None
    scale = ", ".join(f"{b} {model_zero_points[b]:g}" for b in bands)
    return (f"no zero point for band(s) {', '.join(bands)} (no flux unit such as nanomaggy or nJy, no MAGZP-like keyword): the "
            f"pixel values are used as they are, as if on the model's scale (AB mag of one unit: {scale}); if they are "
            "not, the classes are biased: give the images a BUNIT or MAGZP header keyword (skysort import: --zero-points)")


def check_stampset(predictor: Predictor, stamps) -> None:
    """Check that a stamp set can feed ``predictor``, from its metadata alone.

    Raises
    ------
    InputError
        The stamp set lacks an image band the model needs, its stamps are not the size the
        model takes, or they are smaller than the centre crop it reads.
    """
    spec = predictor.spec
    if not spec.uses_images:
        return
    absent = [b for b in spec.image_bands if b not in stamps.meta.bands]
    if absent:
        raise InputError(stamps.path, f"no image band(s) {absent} needed by model {predictor.name} (has {stamps.meta.bands})")
    height, width = stamps.shape[2:]
    if spec.stamp_size and (height, width) != tuple(spec.stamp_size):
        raise InputError(stamps.path, f"stamps are {height}x{width} px but model {predictor.name} expects "
                                      f"{spec.stamp_size[0]}x{spec.stamp_size[1]}")
    if spec.cut_size and (height < spec.cut_size[0] or width < spec.cut_size[1]):
        raise InputError(stamps.path, f"stamps of {height}x{width} px are smaller than model {predictor.name}'s "
                                      f"{spec.cut_size[0]}x{spec.cut_size[1]} px input")


def stampset_notes(model_meta: Mapping[str, Any], stamps) -> tuple[list[str], list[str]]:
    """What a user should hear before ``stamps`` are classified by a model, from metadata and,
    for a model that reads the seeing, the stamps' own point sources.

    Parameters
    ----------
    model_meta : mapping
        The model file's metadata (``pixel_scale``, ``image_bands``, ``psf_fwhm_range``,
        ``architecture_config["seeing_band"]``).
    stamps : StampSet
        The stamps to classify.

    Returns
    -------
    information : list of str
        The seeing measured from the stamps, where the set records none.
    warnings : list of str
        A pixel scale more than 2% from the model's (sizes on the sky misread), a seeing that
        could not be measured (the model runs at lower accuracy), a seeing outside the range
        the model was trained on, an unknown zero point for a model that reads absolute fluxes,
        magnitudes unlike the training ones (:func:`magnitude_range_message`).
    """
    from ..data.seeing import seeing_mismatch, stampset_seeing

    information, cautions = [], []
    model_scale = model_meta.get("pixel_scale")
    if model_scale and model_meta.get("image_bands") and abs(stamps.meta.pixel_scale / model_scale - 1) > 0.02:
        cautions.append(f"pixel scale {stamps.meta.pixel_scale:.4g}\"/px differs from the model's {model_scale:.4g}\"/px: "
                        f"sizes on the sky are misread; cut the stamps at the model's scale (skysort cutout --pixel-scale {model_scale:g})")
    psf_fwhm = dict(stamps.meta.psf_fwhm)
    band = (model_meta.get("architecture_config") or {}).get("seeing_band")
    if band and band in stamps.meta.bands and len(stamps):
        seeing = stampset_seeing(stamps, band)
        if seeing.source == "measured":
            information.append(seeing.describe())
            psf_fwhm[band] = float(seeing.estimate.fwhm)
        elif seeing.source == "unknown":
            cautions.append(seeing.describe())
    message = seeing_mismatch(model_meta.get("psf_fwhm_range"), psf_fwhm, model_meta.get("image_bands") or [])
    if message:
        cautions.append(message)
    unknown = [b for b in model_meta.get("image_bands") or [] if not np.isfinite(stamps.meta.zero_point(b))]
    message = unknown_zero_point_message(model_meta.get("zero_points"), unknown)
    if message:
        cautions.append(message)
    bands = [b for b in model_meta.get("photometry_bands") or [] if f"mag_{b}" in stamps.columns]
    if bands and len(stamps):
        sample = stamps[:MAGNITUDE_SAMPLE_ROWS]  # judged on the first rows, as a catalogue on its first chunk
        mags = np.stack([np.asarray(sample.column(f"mag_{b}"), float) for b in bands], axis=1)
        message = magnitude_range_message(model_meta, bands, mags)
        if message:
            cautions.append(message)
    return information, cautions


def stampset_inputs(predictor: Predictor, stamps, indices: np.ndarray | slice | None = None, *,
                    psf_fwhm: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The inputs a predictor needs, read from a stamp set (optionally a subset of rows).

    Returns ``(inputs, missing)`` where ``missing`` is True for objects lacking some of the
    model's photometric bands or with a stamp band that holds no finite pixel
    (:func:`~skysort.data.stampset.stamps_missing_a_band`). A model that reads the
    seeing gets ``psf_fwhm`` (FWHM [arcsec] per object of the rows read) when given, else the
    seeing the stamp set records.

    Raises
    ------
    InputError
        The stamp set lacks a band the model needs or has a different stamp size.
    """
    spec = predictor.spec
    check_stampset(predictor, stamps)
    if indices is not None:
        stamps = stamps[indices]
    inputs: dict[str, np.ndarray] = {}
    missing = np.zeros(len(stamps), bool)
    if spec.uses_images:
        band_index = [list(stamps.meta.bands).index(b) for b in spec.image_bands]
        inputs["image"] = np.ascontiguousarray(stamps.read_images()[:, band_index], dtype=np.float32)
        factors = flux_scale(spec.image_bands, spec.zero_points, {b: stamps.meta.zero_point(b) for b in spec.image_bands})
        if factors is not None:
            inputs["image"] *= factors[None, :, None, None]
        missing |= stamps_missing_a_band(inputs["image"])
        if spec.seeing_band:
            from ..data.seeing import object_seeing

            if psf_fwhm is not None:
                if len(psf_fwhm) != len(stamps):
                    raise InputError(stamps.path, f"psf_fwhm must have one value per stamp ({len(stamps)}), got {len(psf_fwhm)}")
                inputs["psf_fwhm"] = np.asarray(psf_fwhm, np.float32)
            else:
                inputs["psf_fwhm"] = object_seeing(stamps, spec.seeing_band)
    if spec.uses_photometry:
        mags, errs = [], []
        for band in spec.photometry_bands:
            mag = f"mag_{band}"
            mags.append(np.asarray(stamps.column(mag), np.float32) if mag in stamps.columns else np.full(len(stamps), np.nan, np.float32))
            err = f"magerr_{band}"
            errs.append(np.asarray(stamps.column(err), np.float32) if err in stamps.columns else np.full(len(stamps), np.nan, np.float32))
        inputs["mag"] = np.stack(mags, axis=1) if mags else np.zeros((len(stamps), 0), np.float32)
        inputs["magerr"] = np.stack(errs, axis=1) if errs else np.zeros((len(stamps), 0), np.float32)
        missing |= ~np.isfinite(inputs["mag"]).all(axis=1)
    return inputs, missing


def resolve_seeing(predictor: Predictor, stamps, psf_fwhm: np.ndarray | float | None = None):
    """The seeing a model that reads it gets for each object of a stamp set
    (:class:`~skysort.data.seeing.ObjectSeeing`), or None for a model that does not read it.

    ``psf_fwhm`` (FWHM [arcsec] in the model's seeing band, one value or one per object; NaN:
    unknown) overrides the stamp set; without it the set's recorded seeing is used, else the
    seeing is measured from its own point sources
    (:func:`~skysort.data.seeing.stampset_seeing`)."""
    from ..data.seeing import given_seeing, stampset_seeing

    band = predictor.spec.seeing_band
    if not (predictor.spec.uses_images and band):
        return None
    if psf_fwhm is None:
        return stampset_seeing(stamps, band)
    try:
        return given_seeing(band, psf_fwhm, len(stamps))
    except ValueError as error:
        raise InputError(stamps.path, str(error)) from None


def predict_stampset(predictor: Predictor, stamps, *, batch_size: int = 4096, decision: ClassDecision | None = None,
                     progress: Callable[[int], None] | None = None, psf_fwhm: np.ndarray | float | None = None) -> Table:
    """Classify every object of a stamp set: one row per object (see :func:`class_table`).

    Objects with missing model inputs get :data:`MISSING_INPUT_FLAG` in ``flags`` beside the
    stamp set's own flags. For a model that reads the seeing, ``psf_fwhm`` is as in
    :func:`resolve_seeing`; the seeing used and its source are in ``table.meta["seeing"]``,
    the threshold and prior in ``table.meta["threshold"]`` and ``table.meta["prior"]``.

    Raises
    ------
    InputError
        The stamp set holds no objects (as an empty catalogue is refused), or does not fit the
        model (:func:`check_stampset`).
    """
    decision = decision or ClassDecision()
    decision.check(predictor, allow_auto=True)
    per_batch = decision.batchwise()
    parts = []
    n = len(stamps)
    if n == 0:
        raise InputError(stamps.path, "the stamp set holds no objects: there is nothing to classify")
    columns = stamps.columns
    seeing = resolve_seeing(predictor, stamps, psf_fwhm)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        view = stamps[start:stop]
        inputs, missing = stampset_inputs(predictor, view, psf_fwhm=seeing.values[start:stop] if seeing is not None else None)
        outputs = predictor.predict(inputs)
        flags = np.asarray(view.column("flags"), np.int32) if "flags" in columns else np.zeros(stop - start, np.int32)
        flags = flags | np.where(missing, MISSING_INPUT_FLAG, 0).astype(np.int32)
        extra = {c: np.asarray(view.column(c)) for c in ("ra", "dec") if c in columns}
        ids = np.asarray(view.column("id")) if "id" in columns else np.arange(start, stop)
        parts.append(class_table(predictor, outputs, ids, extra, flags, per_batch))
        if progress:
            progress(stop - start)
    from astropy.table import vstack

    table = vstack(parts, metadata_conflicts="silent") if len(parts) > 1 else parts[0]
    table.meta.update({"model": predictor.name, "model_file": str(predictor.model_file), "task": predictor.task,
                       "classes": list(predictor.classes), "image_bands": list(predictor.spec.image_bands),
                       "photometry_bands": list(predictor.spec.photometry_bands), **decision.record()})
    if seeing is not None:
        table.meta["seeing"] = seeing.record()
    return apply_decision(table, predictor, decision)


def apply_decision(table: Table, predictor: Predictor, decision: ClassDecision) -> Table:
    """Finish a prediction table made by :func:`class_table` under ``decision``.

    With an ``"auto"`` prior the rows were decided under the training balance: the prior is
    estimated here from all of them and the ``p_<class>`` and ``class`` columns redecided.
    The prior applied is recorded in ``table.meta`` (``prior``, and ``prior_estimated`` when
    estimated). Returns the table."""
    if decision.prior == "auto":
        raw = np.stack([np.asarray(table[f"p_{name}"], np.float64) for name in predictor.classes], axis=1)
        decision = decision.resolved(predictor, raw)
        decided = class_table(predictor, {"probabilities": raw}, decision=decision)
        for name in predictor.classes:
            table[f"p_{name}"] = decided[f"p_{name}"]
        table["class"] = decided["class"]
        table.meta["prior_estimated"] = True
    if decision.prior is not None:
        table.meta["prior"] = dict(decision.prior)
    return table
