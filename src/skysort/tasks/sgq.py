"""Star / galaxy / quasar classification from image stamps plus multi-band photometry.

The model (:class:`~skysort.models.sgq.SGQNet`, after the KiDS DR5 multimodal network) has an
image branch (CNN on asinh-stretched stamps), a photometry branch (MLP on standardised
magnitudes, adjacent colours and missing-value mask bits) and a fused softmax head over
``star``, ``galaxy``, ``qso``. ``branches="image"`` or ``"photometry"`` trains one branch alone
with the same code (the ablations).

Inputs the model cannot use directly
------------------------------------
- *No images* (a catalogue): the photometry branch runs alone through its auxiliary head,
  trained jointly with the fused head (deep supervision; see :mod:`skysort.models.sgq`).
- *No photometry at all for an object* (e.g. stamps cut from images without a catalogue): the
  image branch's auxiliary head classifies it; with some bands missing, the fused head runs
  with those bands masked.
- *Larger stamps*: the network sees a centre crop of fixed size (``meta["stamp_size"]``; at
  least 4 arcsec and 16 px on a side, chosen at training time); larger stamps at the same pixel
  scale are centre-cropped, smaller ones are refused.

Every prediction row says which inputs it used (``inputs_used``: ``both``, ``image``,
``photometry`` or ``none``).
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from astropy.table import Table

from ..data.catalog import read_unique_catalogs
from ..data.cutout import centre_crop
from ..data.dataset import random_dihedral_batch
from ..data.seeing import object_seeing
from ..data.stampset import StampSet, stamps_without_pixels
from ..errors import InputError
from ..inference.predictor import InputSpec, TorchPredictor
from ..models.card import percent, write_card
from ..models.checkpoint import load_model_file, save_model_file
from ..models.registry import resolve_model
from ..models.sgq import BRANCHES, SGQNet, sgq_loss
from ..evaluation.calibration import calibration_metrics
from ..evaluation.magnitudes import binning_r_magnitudes
from ..training.data import (InMemoryBatches, batch_loader, model_seeing_range, open_training_set, require_classes,
                             require_finite_images, require_magnitudes, require_same_imaging, split_indices,
                             training_data_meta)

CLASSES = ["star", "galaxy", "qso"]
#: Smallest side of the image branch's centre crop, arcsec and pixels.
MIN_CROP_ARCSEC, MIN_CROP_PX = 4.0, 16
#: Bins of r magnitude for accuracy vs magnitude.
MAG_BINS = np.arange(14.0, 25.01, 1.0)
#: Probability thresholds of the purity / completeness curves.
THRESHOLDS = np.round(np.linspace(0.0, 0.99, 100), 3)
#: Models that read the seeing: share of training objects whose seeing is hidden, and the
#: log-normal scatter put on the rest (the precision of a seeing measured on real images).
SEEING_DROPOUT, SEEING_JITTER = 0.15, 0.04


# ----------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------


def class_indices(labels: Sequence[str], where: str | os.PathLike = "labels", allow_unknown: bool = False) -> np.ndarray:
    """Class index (0 star, 1 galaxy, 2 qso) of each label; ``quasar`` counts as ``qso``.

    Raises
    ------
    InputError
        A label is not one of the classes (unless ``allow_unknown``, which gives -1).
    """
    names = np.char.lower(np.char.strip(np.asarray(labels).astype(str)))
    names = np.where(names == "quasar", "qso", names)
    lookup = {name: i for i, name in enumerate(CLASSES)}
    index = np.array([lookup.get(str(name), -1) for name in names], dtype=np.int64)
    if not allow_unknown and (index < 0).any():
        bad = sorted(set(names[index < 0].tolist()))[:5]
        raise InputError(where, f"labels {bad} are not among {CLASSES}")
    return index


def default_crop(pixel_scale: float, stamp_side: int) -> int:
    """Side of the image branch's centre crop: the smallest multiple of 4 pixels covering
    :data:`MIN_CROP_ARCSEC`, at least :data:`MIN_CROP_PX`, at most the stamp."""
    side = max(MIN_CROP_PX, 4 * math.ceil(MIN_CROP_ARCSEC / pixel_scale / 4))
    return int(min(side, stamp_side))


def load_crops(stamps: StampSet, bands: Sequence[str], crop: int, indices: np.ndarray | None = None,
               chunk: int = 8192) -> np.ndarray:
    """Centre crops ``(n, len(bands), crop, crop)`` float32 of the stamps at ``indices`` (default
    all), read chunk by chunk so that the full stamps are never all in memory."""
    indices = np.arange(len(stamps)) if indices is None else np.asarray(indices)
    band_index = [list(stamps.meta.bands).index(b) for b in bands]
    out = np.empty((len(indices), len(bands), crop, crop), np.float32)
    for start in range(0, len(indices), chunk):
        part = indices[start : start + chunk]
        out[start : start + len(part)] = centre_crop(stamps.read_images(part)[:, band_index], crop)
    return out


def default_photometry_bands(stamps: StampSet) -> list[str]:
    """Every band with an observed ``mag_<band>`` column (simulation truths ``mag_true_<band>``
    excluded), in the survey's band order when the set records it (adjacent colours then pair
    neighbouring filters), else in column order."""
    present = [c[len("mag_"):] for c in stamps.columns if c.startswith("mag_") and not c.startswith("mag_true_")]
    order = list(stamps.meta.extra.get("photometry_bands") or [])
    if not order and stamps.meta.survey:
        from ..simulate.presets import load_survey

        try:
            order = list(load_survey(stamps.meta.survey).band_names)
        except InputError:  # a survey name that is not a preset: keep the column order
            order = []
    return [b for b in order if b in present] + [b for b in present if b not in order]


def stamp_magnitudes(stamps: StampSet, bands: Sequence[str], indices: np.ndarray | None = None) -> np.ndarray:
    """Magnitudes ``(n, len(bands))`` from the stamp set's ``mag_<band>`` columns, NaN where a
    column is absent or a value missing."""
    n = len(stamps) if indices is None else len(indices)
    columns = set(stamps.columns)
    mags = np.full((n, len(bands)), np.nan, np.float32)
    for j, band in enumerate(bands):
        if f"mag_{band}" in columns:
            mags[:, j] = np.asarray(stamps.column(f"mag_{band}", indices), np.float32)
    mags[~np.isfinite(mags)] = np.nan
    return mags


def photometry_statistics(mags: np.ndarray) -> dict[str, list[float]]:
    """Mean and standard deviation of each magnitude and adjacent colour (NaN ignored) [mag]."""
    mags = np.asarray(mags, np.float64)

    def stats(values):
        mean = np.array([np.nanmean(v) if np.isfinite(v).any() else 0.0 for v in values.T])
        std = np.array([np.nanstd(v) if np.isfinite(v).sum() > 1 else 1.0 for v in values.T])
        # A constant input (one object, or a band fixed in the set) must not divide by zero.
        return mean.tolist(), np.maximum(np.nan_to_num(std, nan=1.0), 0.05).tolist()

    mag_mean, mag_std = stats(mags)
    colour_mean, colour_std = stats(mags[:, :-1] - mags[:, 1:]) if mags.shape[1] > 1 else ([], [])
    return {"mag_mean": mag_mean, "mag_std": mag_std, "colour_mean": colour_mean, "colour_std": colour_std}


def balanced_class_weights(labels: np.ndarray, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Inverse class frequencies scaled to mean 1 over the classes present (absent classes: 1)."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights


def magnitude_balance_weights(mag: np.ndarray, labels: np.ndarray, bin_width: float = 0.5, max_weight: float = 20.0) -> np.ndarray:
    """Per-object weights that give every class the same magnitude distribution.

    A simulated population carries the simulation's number counts: e.g. galaxies are rare at
    bright magnitudes, so a network learns "bright means star", which fails on real samples
    selected differently (spectroscopic targets are bright galaxies). Weighting each object by
    ``pooled density / its class's density`` of the reference magnitude (bins of ``bin_width``
    mag) leaves the magnitude informative only through the noise it implies, and the colours
    decide the class.

    Parameters
    ----------
    mag : ndarray (N,)
        Reference magnitude (NaN: weight 1).
    labels : ndarray (N,) of int
        Class index.
    max_weight : float
        Upper clip of a weight relative to its class's mean (limits the influence of the few
        objects in sparsely populated bins).

    Returns
    -------
    ndarray (N,) float32
        Weights with mean 1 within each class.
    """
    mag = np.asarray(mag, float)
    labels = np.asarray(labels)
    weights = np.ones(len(mag))
    finite = np.isfinite(mag)
    if not finite.any():
        return weights.astype(np.float32)
    low = np.floor(mag[finite].min())
    high = max(np.ceil(mag[finite].max()), low + bin_width)
    edges = np.arange(low, high + bin_width / 2, bin_width)
    classes = np.unique(labels)
    density = {c: np.histogram(mag[finite & (labels == c)], edges)[0] / max(np.sum(finite & (labels == c)), 1) for c in classes}
    pooled = np.mean([density[c] for c in classes], axis=0)
    which = np.clip(np.digitize(mag, edges) - 1, 0, len(edges) - 2)
    for c in classes:
        rows = finite & (labels == c)
        ratio = pooled[which[rows]] / np.maximum(density[c][which[rows]], 1e-12)
        weights[rows] = np.minimum(ratio, max_weight * ratio.mean()) if rows.any() else ratio
        in_class = labels == c
        weights[in_class] /= weights[in_class].mean()
    return weights.astype(np.float32)


class SGQAugmentation:
    """Random flips and 90-degree rotations of the stamps (the classes do not depend on
    orientation), random masking of single magnitudes (robustness to missing bands) and
    optional random magnitude offsets (robustness to the simulation's colour systematics).

    Parameters
    ----------
    mag_dropout : float
        Probability that each magnitude of each object is treated as missing.
    seed : int
        Seed of the augmentation random numbers.
    mag_jitter : sequence of float, optional
        One standard deviation per photometric band [mag]: each object's magnitude in that
        band is shifted by a fresh Gaussian offset every time it is drawn. Template SEDs
        reproduce real colour loci only to about 0.05-0.2 mag (the u band worst), so a
        classifier trained on sharp simulated loci leans on differences that real data do
        not have; the offsets blur them by about that much.
    seeing_dropout : float
        For a model that reads the seeing (``batch["psf_fwhm"]``): probability that an object's
        seeing is hidden (NaN), so that the model also classifies images of unknown seeing.
    seeing_jitter : float
        Log-normal scatter of the seeing given to the model (fraction): the seeing measured on
        real images is uncertain by a few per cent.
    """

    def __init__(self, mag_dropout: float = 0.05, seed: int = 0, mag_jitter: Sequence[float] | None = None,
                 seeing_dropout: float = SEEING_DROPOUT, seeing_jitter: float = SEEING_JITTER):
        self.mag_dropout = mag_dropout
        self.seeing_dropout = seeing_dropout
        self.seeing_jitter = seeing_jitter
        self.mag_jitter = torch.as_tensor(mag_jitter, dtype=torch.float32) if mag_jitter is not None and any(mag_jitter) else None
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = dict(batch)
        g = self.generator
        if "image" in batch:
            out["image"], _, _ = random_dihedral_batch(batch["image"], g)
        # Random numbers come from the CPU generator and move to the batch's device (one seed,
        # the same augmentation on every device).
        if "mag" in batch and self.mag_jitter is not None:
            # NaN (missing) magnitudes stay NaN: NaN + offset is NaN.
            offsets = torch.randn(batch["mag"].shape, generator=g) * self.mag_jitter.to(batch["mag"].dtype)
            out["mag"] = batch["mag"] + offsets.to(batch["mag"].device)
        if "mag" in batch and self.mag_dropout > 0:
            drop = (torch.rand(batch["mag"].shape, generator=g) < self.mag_dropout).to(batch["mag"].device)
            out["mag"] = torch.where(drop, torch.full_like(out["mag"], float("nan")), out["mag"])
        if "psf_fwhm" in batch:
            device = batch["psf_fwhm"].device
            fwhm = batch["psf_fwhm"] * torch.exp(torch.randn(batch["psf_fwhm"].shape, generator=g) * self.seeing_jitter).to(device)
            drop = (torch.rand(fwhm.shape, generator=g) < self.seeing_dropout).to(device)
            out["psf_fwhm"] = torch.where(drop, torch.full_like(fwhm, float("nan")), fwhm)
        return out


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------


def _jitter_per_band(mag_jitter: Mapping[str, float] | None, photometry_bands: Sequence[str]) -> list[float] | None:
    """``{band: sigma}`` -> one sigma per photometric band, in order (0 where not given)."""
    if not mag_jitter:
        return None
    unknown = [b for b in mag_jitter if b not in photometry_bands]
    if unknown:
        raise InputError("--mag-jitter", f"band(s) {unknown} are not photometric bands of the model {list(photometry_bands)}")
    sigmas = []
    for band in photometry_bands:
        sigma = float(mag_jitter.get(band, 0.0))
        if not np.isfinite(sigma) or sigma < 0:
            raise InputError("--mag-jitter", f"{band}: the standard deviation must be a finite number >= 0, got {sigma}")
        sigmas.append(sigma)
    return sigmas if any(sigmas) else None


def _check_bands(stamps: StampSet, image_bands: Sequence[str], photometry_bands: Sequence[str], branches: str) -> None:
    if branches in ("both", "image"):
        absent = [b for b in image_bands if b not in stamps.meta.bands]
        if absent or not image_bands:
            raise InputError(stamps.path, f"no image band(s) {absent or image_bands} (the stamp set has {list(stamps.meta.bands)})")
    if branches in ("both", "photometry"):
        absent = [b for b in photometry_bands if f"mag_{b}" not in stamps.columns]
        if absent or not photometry_bands:
            raise InputError(stamps.path, f"no magnitude column(s) mag_<band> for {absent or 'any band'}")


def _arrays(stamps: StampSet, indices: np.ndarray, image_bands: Sequence[str], photometry_bands: Sequence[str],
            crop: int, branches: str, seeing_band: str | None = None) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"label": class_indices(stamps.column("label", indices), stamps.path)}
    if branches in ("both", "image"):
        arrays["image"] = load_crops(stamps, image_bands, crop, indices)
        if seeing_band:
            arrays["psf_fwhm"] = object_seeing(stamps, seeing_band, indices)
    if branches in ("both", "photometry"):
        arrays["mag"] = stamp_magnitudes(stamps, photometry_bands, indices)
    return arrays


def _validation_metrics(network: SGQNet, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    probabilities = _network_probabilities(network, arrays.get("image"), arrays.get("mag"), mode="main", seeing=arrays.get("psf_fwhm"))
    predicted = probabilities.argmax(axis=1)
    truth = arrays["label"]
    f1 = f1_score(truth, predicted, labels=range(len(CLASSES)), average=None, zero_division=0)
    return {"n": int(len(truth)), "accuracy": float(np.mean(predicted == truth)),
            **{f"f1_{name}": float(f1[i]) for i, name in enumerate(CLASSES)}}


def train_sgq_model(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    val_data: str | os.PathLike | None = None,
    branches: str = "both",
    image_bands: Sequence[str] | None = None,
    photometry_bands: Sequence[str] | None = None,
    init: str | os.PathLike | None = None,
    epochs: int = 30,
    patience: int = 6,
    batch_size: int = 256,
    lr: float = 2e-3,
    max_objects: int | None = None,
    seed: int = 0,
    progress: bool = True,
    command: str | None = None,
    crop: int | None = None,
    widths: Sequence[int] = (16, 32, 48),
    aux_weight: float = 0.5,
    mag_dropout: float = 0.05,
    magnitude_balance: bool = False,
    freeze: Sequence[str] = (),
    mag_jitter: Mapping[str, float] | None = None,
    seeing_input: bool = False,
) -> dict[str, Any]:
    """Train an :class:`SGQNet` on a labelled stamp set and save it as a skysort model file.

    Parameters
    ----------
    data : path-like
        Training stamp set with ``label`` (star / galaxy / qso) and ``mag_<band>`` columns;
        10% is held out for validation unless ``val_data`` is given.
    out : path-like
        Model file to write.
    branches : {"both", "image", "photometry"}
        Both branches (the multimodal model) or one alone (ablations).
    image_bands : sequence of str, optional
        Image bands (default ``r``, else the set's first band).
    photometry_bands : sequence of str, optional
        Photometric bands (default every ``mag_<band>`` column of the set, in column order).
    init : str or path-like, optional
        Model (file or shipped name) whose weights and input normalisation start the training
        (fine-tuning); its bands and architecture are kept.
    epochs, patience, batch_size, lr, seed
        Training settings (early stopping on the validation loss).
    max_objects : int, optional
        Use at most this many training objects (the first ones).
    crop : int, optional
        Side in pixels of the centre crop the image branch sees (default :func:`default_crop`).
    widths : sequence of int
        Image encoder stage widths.
    aux_weight : float
        Weight of each auxiliary (single-branch) head's loss.
    mag_dropout : float
        Probability of masking each magnitude during training.
    magnitude_balance : bool
        Weight training objects so that every class has the same r-band (else the first
        photometric band's) magnitude distribution (:func:`magnitude_balance_weights`):
        removes the simulation's number-count prior, for use on differently selected real
        samples.
    freeze : sequence of {"image", "photometry"}
        With ``init``: branches kept exactly as in the initial model (weights, batch-norm
        statistics) while the rest trains, e.g. ``("image",)`` to retrain the photometry
        branch and the fused head on another population without touching the image
        classifier.
    mag_jitter : mapping of str to float, optional
        Band -> standard deviation [mag] of a random Gaussian offset added to that band's
        magnitude of every training object at every step (:class:`SGQAugmentation`); bands
        left out get none. Validation magnitudes are not touched.
    seeing_input : bool
        The image branch also reads each object's seeing (PSF FWHM in ``r``, else the first
        image band; :func:`skysort.data.seeing.object_seeing`), so that one model serves fields
        of any seeing within the training range. The training set must record its seeing (a
        simulated set does). A model given with ``init`` keeps its own choice.

    Returns
    -------
    dict
        Validation ``n``, ``accuracy``, ``f1_star``, ``f1_galaxy``, ``f1_qso`` and the training
        record (``epochs``, ``seconds``, ``history``, ...).
    """
    from ..training.module import OptimConfig, TaskModule, fit, seed_everything  # Lightning: training only (slow to import)

    if branches not in BRANCHES:
        raise InputError("--branches", f"unknown branches {branches!r} (choose from {', '.join(BRANCHES)})")
    freeze = sorted(set(freeze))
    if freeze and init is None:
        raise InputError("--freeze", "needs --init: a frozen branch keeps the initial model's weights")
    if seeing_input and branches == "photometry":
        raise InputError("--seeing-input", "the seeing is read by the image branch; --branches photometry has none")
    if image_bands and branches == "photometry":
        raise InputError("--image-bands", "are read by the image branch; --branches photometry has none")
    if photometry_bands and branches == "image":
        raise InputError("--photometry-bands", "are read by the photometry branch; --branches image has none")
    stamps = open_training_set(data)
    if "label" not in stamps.columns:
        raise InputError(data, "no label column: sgq training needs star / galaxy / qso labels")
    init_meta, init_state = (None, None)
    if init is not None:
        init_meta, init_state = load_model_file(resolve_model(init))
        if init_meta.get("task") != "sgq":
            raise InputError(init, f"not an sgq model (task {init_meta.get('task')!r})")
        config = init_meta["architecture_config"]
        if config["branches"] != branches:
            raise InputError("--init", f"model {init} has branches {config['branches']!r}, not {branches!r}")
        image_bands = list(init_meta.get("image_bands") or [])
        photometry_bands = list(init_meta.get("photometry_bands") or [])
    if image_bands is None:
        image_bands = ["r"] if "r" in stamps.meta.bands else [stamps.meta.bands[0]]
    if photometry_bands is None:
        photometry_bands = default_photometry_bands(stamps)
    image_bands = list(image_bands) if branches != "photometry" else []
    photometry_bands = list(photometry_bands) if branches != "image" else []
    _check_bands(stamps, image_bands, photometry_bands, branches)
    jitter = _jitter_per_band(mag_jitter, photometry_bands)
    if init_meta is not None:
        seeing_band = init_meta["architecture_config"].get("seeing_band")
        seeing_reference = init_meta["architecture_config"].get("seeing_reference", 1.0)
        if seeing_input and not seeing_band:
            raise InputError("--seeing-input", f"model {init} does not read the seeing; a fine-tuned model keeps its inputs")
    else:
        seeing_band = ("r" if "r" in image_bands else image_bands[0]) if seeing_input and image_bands else None
        seeing_reference = 1.0
        if seeing_band:
            known = object_seeing(stamps, seeing_band)
            known = known[np.isfinite(known)]
            if len(known) == 0:
                raise InputError(data, f"--seeing-input: the stamp set records no seeing in {seeing_band} "
                                       f"(no psf_fwhm_{seeing_band} column, simulated PSF or recorded FWHM)")
            seeing_reference = round(float(np.median(known)), 4)
    side = int(stamps.shape[2])
    if init_meta is not None:
        crop = int(init_meta["architecture_config"]["crop"])
    crop = int(crop or default_crop(stamps.meta.pixel_scale, side))
    if crop > min(stamps.shape[2:]):
        raise InputError(data, f"stamps of {side} px are smaller than the {crop} px crop")

    n = len(stamps) if max_objects is None else min(len(stamps), max_objects)
    if val_data is None:
        train_idx, val_idx = split_indices(n, [0.9, 0.1], seed=seed)
        val_stamps = stamps
    else:
        train_idx = np.arange(n)
        val_stamps = open_training_set(val_data)
        _check_bands(val_stamps, image_bands, photometry_bands, branches)
        # Both sets are centre-cropped to the same size, so only the stamps' scale must agree.
        require_same_imaging(stamps, val_stamps, image_bands, val_data, same_size=False)
        val_idx = np.arange(len(val_stamps))
    train_arrays = _arrays(stamps, train_idx, image_bands, photometry_bands, crop, branches, seeing_band)
    val_arrays = _arrays(val_stamps, val_idx, image_bands, photometry_bands, crop, branches, seeing_band)
    for arrays, source, what in ((train_arrays, data, "training"), (val_arrays, val_data or data, "validation")):
        if "image" in arrays:
            require_finite_images(arrays["image"], source, what)
    if "mag" in train_arrays:
        require_magnitudes(train_arrays["mag"], photometry_bands, data)

    seed_everything(seed)  # the network's initial weights follow the seed
    if init_meta is not None:
        network = _network_from_meta(init_meta)
        network.load_state_dict(init_state)
        normalisation = init_meta["normalisation"]
        try:
            network.freeze(freeze)
        except ValueError as error:
            raise InputError("--freeze", str(error)) from None
    else:
        normalisation = {}
        if "image" in train_arrays:
            from ..data.dataset import AsinhStretch

            stretch = AsinhStretch.fit(stamps, bands=image_bands, seed=seed)
            normalisation["image"] = stretch.state_dict()
        if "mag" in train_arrays:
            normalisation["photometry"] = photometry_statistics(train_arrays["mag"])
        network = SGQNet(len(image_bands), len(photometry_bands), branches=branches, crop=crop,
                         softening=normalisation.get("image", {}).get("softening", ()),
                         widths=widths, seeing_band=seeing_band, seeing_reference=seeing_reference,
                         **normalisation.get("photometry", {}))
    require_classes(train_arrays["label"], CLASSES, data)
    weights = balanced_class_weights(train_arrays["label"])
    balance_band = None
    if magnitude_balance:
        balance_band = "r" if "mag_r" in stamps.columns else (photometry_bands or [None])[0]
        if balance_band is None:
            raise InputError("--magnitude-balance", "needs magnitudes (mag_<band> columns)")
        reference = stamp_magnitudes(stamps, [balance_band], train_idx)[:, 0]
        train_arrays["weight"] = magnitude_balance_weights(reference, train_arrays["label"])
    train_set = InMemoryBatches(train_arrays, transform=SGQAugmentation(mag_dropout, seed=seed, mag_jitter=jitter))
    val_set = InMemoryBatches(val_arrays)
    module = TaskModule(network, sgq_loss(torch.as_tensor(weights, dtype=torch.float32), aux_weight),
                        OptimConfig(lr=lr, lr_patience=2))
    record = fit(module, batch_loader(train_set, batch_size, shuffle=True, seed=seed, drop_last=len(train_set) > batch_size),
                 batch_loader(val_set, 2048, shuffle=False), max_epochs=epochs, patience=patience, progress=progress, seed=seed)
    network.eval()
    val_metrics = _validation_metrics(network, val_arrays)
    counts = np.bincount(train_arrays["label"], minlength=len(CLASSES))
    metadata = {
        "task": "sgq",
        "architecture": "SGQNet",
        "architecture_config": network.config,
        "classes": CLASSES,
        "branches": branches,
        "image_bands": image_bands,
        "photometry_bands": photometry_bands,
        "pixel_scale": stamps.meta.pixel_scale,
        # The network's input: the centre crop. Larger stamps are centre-cropped to it.
        "stamp_size": [crop, crop] if image_bands else None,
        "training_stamp_size": list(stamps.shape[2:]),
        "psf_fwhm_range": model_seeing_range(stamps, image_bands, init_meta),
        "flux_unit": stamps.meta.flux_unit,
        "zero_points": {b: stamps.meta.zero_points.get(b) for b in image_bands},
        "normalisation": normalisation,
        "photometry_inputs": "standardised magnitudes, adjacent-band colours and one missing-value bit per band",
        # The convention of the magnitudes the photometry branch learnt from (asinh for SDSS):
        # a catalogue given to the model should use the same.
        "catalogue_magnitudes": (stamps.meta.extra.get("catalogue_magnitudes") or {"system": "pogson"}) if photometry_bands else None,
        "photometry_only_path": "auxiliary photometry head trained jointly with the fused head",
        "training": {
            "data": str(data), "val_data": str(val_data) if val_data else None, "init": str(init) if init else None,
            "n_train": int(len(train_idx)), "n_val": int(len(val_idx)), "seed": seed,
            "class_counts": {c: int(k) for c, k in zip(CLASSES, counts)}, "class_weights": [round(float(w), 4) for w in weights],
            "data_meta": training_data_meta(stamps),
            "batch_size": batch_size, "lr": lr, "aux_weight": aux_weight, "mag_dropout": mag_dropout,
            "frozen_branches": freeze,
            "magnitude_balance": f"mag_{balance_band} distribution equalised across classes" if balance_band else None,
            "mag_jitter": {b: float(sigma) for b, sigma in zip(photometry_bands, jitter) if sigma} if jitter else None,
            "augmentation": "random flips and 90-degree rotations; each magnitude masked with probability mag_dropout"
                            + ("; Gaussian magnitude offsets of mag_jitter [mag] per band" if jitter else "")
                            + (f"; seeing scattered by {SEEING_JITTER:.0%} (log-normal) and hidden with probability "
                               f"{SEEING_DROPOUT}" if seeing_band else ""),
            "seeing_input": {"band": seeing_band, "reference_arcsec": seeing_reference} if seeing_band else None,
            **{k: v for k, v in record.items() if k != "history"}, "history": record["history"],
        },
        "metrics": {f"val_{k}": v for k, v in val_metrics.items() if k != "n"},
    }
    save_model_file(out, network.state_dict(), metadata, command=command)
    return {**val_metrics, **record, "n_train": int(len(train_idx)), "n_val": int(len(val_idx))}


# ----------------------------------------------------------------------------------------
# Loading and prediction
# ----------------------------------------------------------------------------------------


def _network_from_meta(meta: Mapping[str, Any]) -> SGQNet:
    config = dict(meta["architecture_config"])
    normalisation = meta.get("normalisation", {})
    return SGQNet(config.pop("n_image_bands"), config.pop("n_photometry_bands"),
                  softening=normalisation.get("image", {}).get("softening", ()),
                  **normalisation.get("photometry", {}), **config)


def load_sgq_model(model: str | os.PathLike) -> tuple[SGQNet, dict[str, Any], Path]:
    """Load an sgq model file (path or shipped name): ``(network in eval mode, metadata, path)``."""
    path = resolve_model(model)
    meta, state = load_model_file(path)
    if meta.get("task") != "sgq" or meta.get("architecture") != "SGQNet":
        raise InputError(path, f"not an sgq model (task {meta.get('task')!r}, architecture {meta.get('architecture')!r})")
    network = _network_from_meta(meta)
    network.load_state_dict(state)
    network.eval()
    return network, meta, path


@torch.inference_mode()
def _network_probabilities(network: SGQNet, images: np.ndarray | None, mags: np.ndarray | None, mode: str,
                           batch_size: int = 4096, device: str = "cpu", seeing: np.ndarray | None = None) -> np.ndarray:
    """Softmax probabilities ``(N, C)`` from the ``main``, ``image`` or ``photometry`` head
    (``seeing``: PSF FWHM per object [arcsec], for a model that reads it)."""
    n = len(images) if images is not None else len(mags)
    parts = []
    for start in range(0, n, batch_size):
        batch = {}
        if images is not None and mode in ("main", "image"):
            batch["image"] = torch.as_tensor(np.asarray(images[start : start + batch_size], np.float32), device=device)
            if seeing is not None and network.seeing_band:
                batch["psf_fwhm"] = torch.as_tensor(np.asarray(seeing[start : start + batch_size], np.float32), device=device)
        if mags is not None and mode in ("main", "photometry"):
            batch["mag"] = torch.as_tensor(np.asarray(mags[start : start + batch_size], np.float32), device=device)
        if mode == "main":
            logits = network(batch)["logits"]
        elif mode == "image":
            logits = network.image_logits(batch["image"], batch.get("psf_fwhm"))
        else:
            logits = network.photometry_logits(batch["mag"])
        parts.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, len(CLASSES)), np.float32)


#: Magnitudes outside this range [mag] are no measurement: catalogue sentinels (99, -99,
#: -9999, 999) that reached the model without a mapping to mask them.
PLAUSIBLE_MAGNITUDES = (-10.0, 50.0)


def plausible_magnitudes(mags: np.ndarray) -> np.ndarray:
    """True where a magnitude is a measurement: finite and within :data:`PLAUSIBLE_MAGNITUDES`."""
    lo, hi = PLAUSIBLE_MAGNITUDES
    with np.errstate(invalid="ignore"):
        return np.isfinite(mags) & (mags > lo) & (mags < hi)


class SGQPredictor(TorchPredictor):
    """:class:`~skysort.inference.predictor.Predictor` of an sgq model.

    ``predict`` picks, object by object, the head that matches the inputs at hand: the fused
    head with images and at least one magnitude (missing bands masked), the photometry head
    without images (``images_available=False`` or no ``"image"`` input), the image head for
    objects with no magnitude at all; a stamp whose crop holds no finite pixel counts as no
    image. Stamps larger than the model's input are centre-cropped.
    A model that reads the seeing takes ``inputs["psf_fwhm"]`` (unknown where absent or NaN).
    Magnitudes that are not finite or lie outside :data:`PLAUSIBLE_MAGNITUDES` count as missing.
    Extra outputs: ``inputs_used`` (``both``, ``image``, ``photometry``, ``none``),
    ``n_missing_bands`` (magnitudes missing among the model's photometric bands) and, for a
    model that reads the seeing, ``psf_fwhm`` (the FWHM it was given [arcsec], NaN if unknown).
    """

    task = "sgq"

    def __init__(self, network: SGQNet, meta: dict[str, Any], model_file: Path, device: str = "cpu"):
        # stamp_size is left open: any stamp at least the model's crop is accepted and cropped here;
        # cutting from survey tiles needs no more than the crop itself.
        self.crop = int(meta["architecture_config"]["crop"])
        spec = InputSpec(image_bands=list(meta.get("image_bands") or []), stamp_size=None, pixel_scale=meta.get("pixel_scale"),
                         photometry_bands=list(meta.get("photometry_bands") or []), cut_size=(self.crop, self.crop),
                         seeing_band=network.seeing_band, zero_points=meta.get("zero_points"))
        super().__init__(network, meta, model_file, spec, device, CLASSES)

    def predict(self, inputs: Mapping[str, np.ndarray], *, images_available: bool = True) -> dict[str, np.ndarray]:
        spec = self.spec
        images = inputs.get("image") if images_available and spec.uses_images else None
        if images is not None:
            images = np.asarray(images, np.float32)
            if images.ndim != 4 or images.shape[1] != len(spec.image_bands):
                raise InputError(self.name, f"images must be (N, {len(spec.image_bands)}, H, W) in bands {spec.image_bands}")
            if min(images.shape[-2:]) < self.crop:
                raise InputError(self.name, f"stamps of {images.shape[-2]}x{images.shape[-1]} px are smaller than "
                                            f"the model's {self.crop} px input")
            images = np.ascontiguousarray(centre_crop(images, self.crop))
        mags = None
        if spec.uses_photometry:
            if "mag" in inputs:
                mags = np.asarray(inputs["mag"], np.float32).copy()
                if mags.ndim != 2 or mags.shape[1] != len(spec.photometry_bands):
                    raise InputError(self.name, f"magnitudes must be (N, {len(spec.photometry_bands)}) in bands {spec.photometry_bands}")
                mags[~plausible_magnitudes(mags)] = np.nan
        n = len(images) if images is not None else (len(mags) if mags is not None else len(next(iter(inputs.values()), [])))
        if images is None and mags is None:
            raise InputError(self.name, "no usable inputs: this model needs " +
                             ("magnitudes" if not spec.uses_images else "image stamps" if not spec.uses_photometry else "image stamps or magnitudes"))
        # Unknown seeing (absent or NaN) is an input a seeing model was trained with, not an error;
        # models that do not read it ignore it.
        seeing = np.asarray(inputs["psf_fwhm"], np.float32).reshape(-1) if "psf_fwhm" in inputs and images is not None \
            else np.full(n, np.nan, np.float32)
        if len(seeing) != n:
            raise InputError(self.name, f"psf_fwhm must have one value per stamp ({n}), got {len(seeing)}")
        has_mag = np.isfinite(mags).any(axis=1) if mags is not None else np.zeros(n, bool)
        has_image = ~stamps_without_pixels(images) if images is not None else np.zeros(n, bool)
        n_missing = (~np.isfinite(mags)).sum(axis=1).astype(np.int16) if mags is not None else np.full(n, len(spec.photometry_bands), np.int16)
        probabilities = np.full((n, len(self.classes)), 1.0 / len(self.classes), np.float32)
        kinds = ("both", "image", "photometry", "none")
        kind_of = np.where(has_image & has_mag, 0, np.where(has_image, 1, np.where(has_mag, 2, 3)))
        used = np.asarray(kinds, dtype="<U10")[kind_of]
        # The head for each kind of input at hand: a single-branch network has only its main head.
        heads = {"both": {"both": "main", "image": "image", "photometry": "photometry"},
                 "image": {"image": "main"}, "photometry": {"photometry": "main"}}[self.network.branches]
        for kind, head in heads.items():
            chosen = kind_of == kinds.index(kind)
            rows = slice(None) if chosen.all() else np.flatnonzero(chosen)  # no copies in the usual case
            if chosen.any():
                probabilities[rows] = _network_probabilities(
                    self.network, images[rows] if kind != "photometry" else None, mags[rows] if kind != "image" else None,
                    head, device=self.device, seeing=seeing[rows])
        outputs = {"probabilities": probabilities.astype(np.float32), "inputs_used": used, "n_missing_bands": n_missing}
        if spec.seeing_band:
            # The seeing the model was given, per object (NaN: unknown or no images), for provenance.
            outputs["psf_fwhm"] = np.where(has_image, seeing, np.float32(np.nan))
        return outputs


def predictor_from_file(path: Path, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str = "cpu") -> SGQPredictor:
    """The sgq task's entry for :func:`skysort.inference.predictor.load_predictor`."""
    if meta.get("architecture") != "SGQNet":
        raise InputError(path, f"not an SGQNet model (architecture {meta.get('architecture')!r})")
    network = _network_from_meta(meta)
    network.load_state_dict(state)
    network.eval()
    return SGQPredictor(network, meta, Path(path), device)


def predict_sgq(model: str | os.PathLike | SGQPredictor, stamps: StampSet | str | os.PathLike | None = None, *,
                images: np.ndarray | None = None, mag: np.ndarray | None = None, ids: np.ndarray | None = None,
                psf_fwhm: np.ndarray | float | None = None, batch_size: int = 4096, prior: Mapping[str, float] | str | None = None,
                progress: Callable[[int], None] | None = None, input_warnings: bool = True) -> Table:
    """Classify a stamp set, or arrays of stamps and / or magnitudes.

    Parameters
    ----------
    model : str, path-like or SGQPredictor
        Model file, shipped name (``sgq-kids``, ``sgq-sdss``) or a loaded predictor.
    stamps : StampSet or path-like, optional
        Stamps in the model's image bands plus ``mag_<band>`` columns (those absent count as missing).
    images : ndarray (N, B, H, W), optional
        Stamps in the model's image bands, in the flux units it was trained on; without them
        (and without ``stamps``) the photometry branch runs alone.
    mag : ndarray (N, P), optional
        AB magnitudes in the model's photometric bands, NaN where missing. Values outside
        :data:`PLAUSIBLE_MAGNITUDES` (sentinels such as 99 or -9999) are taken as missing, with a
        warning.
    ids : ndarray, optional
        Object identifiers for the array form (default 0..N-1).
    psf_fwhm : float or ndarray (N,), optional
        Seeing of the images [arcsec], in the model's seeing band, for a model that reads it
        (``meta["architecture_config"]["seeing_band"]``); NaN: unknown, which the model allows
        at lower accuracy. By default a stamp set's recorded seeing is used; where none is
        recorded, and for arrays, the seeing is measured from the stamps' own point sources, one
        value for all of them (:func:`skysort.data.seeing.stampset_seeing`, which needs stamps
        of one seeing and a few tens of isolated stars among them). The table's
        ``meta["seeing"]`` records the seeing used and where it came from.
    prior : mapping of str to float, or "auto", optional
        Class fractions expected among these objects, e.g. ``{"star": 0.12, "galaxy": 0.86,
        "qso": 0.02}``, or ``"auto"`` to estimate them from the predictions; the probabilities
        are moved from the training balance to it (see
        :class:`~skysort.inference.predictor.ClassDecision`). The table's ``meta["prior"]``
        records the one applied.
    input_warnings : bool
        Warn (:func:`warnings.warn`) when a stamp set's pixel scale differs from the model's, its
        seeing cannot be measured or lies outside the training range
        (:func:`~skysort.inference.predictor.stampset_notes`), and when the seeing of arrays
        cannot be measured; False for a caller that has reported them already.

    Returns
    -------
    astropy.table.Table
        ``id`` (``ra``, ``dec`` for a stamp set), ``p_star``, ``p_galaxy``, ``p_qso``, ``class``,
        ``flags`` (with :data:`~skysort.inference.predictor.MISSING_INPUT_FLAG` where inputs were
        missing), ``inputs_used``, ``n_missing_bands`` and, for a model that reads the seeing,
        ``psf_fwhm`` [arcsec] (the seeing it was given, NaN where unknown).

    Raises
    ------
    InputError
        Not an sgq model; no input; arrays of different lengths or shapes the model cannot
        read; a prior that does not fit the model.
    """
    from ..inference.predictor import (MISSING_INPUT_FLAG, ClassDecision, apply_decision, check_stampset, class_table, load_predictor,
                                       magnitude_range_message, predict_stampset, stampset_notes)

    predictor = model if isinstance(model, SGQPredictor) else load_predictor(model, device="cpu")
    if predictor.task != "sgq":
        raise InputError(str(model), f"not an sgq model (task {predictor.task!r})")
    decision = ClassDecision(prior=prior)
    decision.check(predictor, allow_auto=True)
    if stamps is not None:
        if isinstance(stamps, (str, os.PathLike)):
            with StampSet.open(stamps) as opened:
                return predict_sgq(predictor, opened, psf_fwhm=psf_fwhm, batch_size=batch_size, prior=decision.prior,
                                   progress=progress, input_warnings=input_warnings)
        check_stampset(predictor, stamps)
        if psf_fwhm is None and input_warnings:
            # The command line's warnings, as Python warnings: misread pixel scale, unknown seeing
            # or seeing outside the training range all cost accuracy without any error.
            for message in stampset_notes(predictor.meta, stamps)[1]:
                warnings.warn(f"{stamps.path}: {message}", stacklevel=2)
        return predict_stampset(predictor, stamps, batch_size=batch_size, decision=decision, progress=progress, psf_fwhm=psf_fwhm)
    if images is None and mag is None:
        raise InputError("predict_sgq", "give a stamp set, images, magnitudes or both")
    lengths = {name: len(values) for name, values in (("images", images), ("mag", mag), ("ids", ids)) if values is not None}
    if len(set(lengths.values())) > 1:
        raise InputError("predict_sgq", "arrays of different lengths: " + ", ".join(f"{k} {v}" for k, v in lengths.items()))
    if mag is not None:
        mag = np.asarray(mag, np.float32)
        wild = np.isfinite(mag) & ~plausible_magnitudes(mag)
        if wild.any():
            lo, hi = PLAUSIBLE_MAGNITUDES
            warnings.warn(f"{int(wild.sum())} magnitude(s) outside {lo:g} to {hi:g} (catalogue sentinels such as 99 or "
                          "-9999?) are taken as missing", stacklevel=2)
        if input_warnings and mag.ndim == 2 and mag.shape[1] == len(predictor.spec.photometry_bands):
            message = magnitude_range_message(predictor.meta, predictor.spec.photometry_bands,
                                              np.where(plausible_magnitudes(mag), mag, np.nan))
            if message:
                warnings.warn(message, stacklevel=2)
    inputs = {}
    seeing = None
    if images is not None:
        inputs["image"] = np.asarray(images, np.float32)
        seeing = _array_seeing(predictor, inputs["image"], psf_fwhm)
        if seeing is not None:
            inputs["psf_fwhm"] = seeing.values
            if seeing.source == "unknown" and psf_fwhm is None and input_warnings:
                warnings.warn(f"the seeing in {seeing.band} is unknown (too few isolated point sources among the images to "
                              "measure it): the model classifies without it, less accurately; give psf_fwhm [arcsec]",
                              stacklevel=2)
    if mag is not None:
        inputs["mag"] = np.asarray(mag, np.float32)
    outputs = predictor.predict(inputs, images_available=images is not None)
    n = len(outputs["probabilities"])
    missing = (outputs["n_missing_bands"] > 0) | (outputs["inputs_used"] != "both") if predictor.spec.uses_images and predictor.spec.uses_photometry \
        else outputs["n_missing_bands"] > 0
    flags = np.where(missing, MISSING_INPUT_FLAG, 0).astype(np.int32)
    table = class_table(predictor, outputs, ids if ids is not None else np.arange(n), flags=flags,
                        decision=decision.batchwise())
    table.meta.update({"model": predictor.name, "model_file": str(predictor.model_file), "task": "sgq", "classes": list(predictor.classes),
                       "images_used": images is not None})
    if seeing is not None:
        table.meta["seeing"] = seeing.record()
    apply_decision(table, predictor, decision)
    if progress:
        progress(n)
    return table


def _array_seeing(predictor: SGQPredictor, images: np.ndarray, psf_fwhm: np.ndarray | float | None):
    """The seeing given with arrays of stamps (:func:`predict_sgq`), or None for a model that
    does not read it: as given, else measured from the stamps in the model's seeing band at
    the pixel scale the model was trained at."""
    from ..data.seeing import ObjectSeeing, given_seeing, images_seeing

    spec = predictor.spec
    if not spec.seeing_band:
        return None
    n = len(images)
    if psf_fwhm is not None:
        try:
            return given_seeing(spec.seeing_band, psf_fwhm, n)
        except ValueError as error:
            raise InputError("psf_fwhm", str(error)) from None
    if images.ndim != 4 or not spec.pixel_scale:
        return ObjectSeeing(spec.seeing_band, np.full(n, np.nan, np.float32), "unknown")
    return images_seeing(images[:, spec.image_bands.index(spec.seeing_band)], float(spec.pixel_scale), spec.seeing_band)


# ----------------------------------------------------------------------------------------
# Fine-tuning the photometry branch on a labelled catalogue
# ----------------------------------------------------------------------------------------


def fine_tune_photometry(model: str | os.PathLike, mag: np.ndarray, labels: Sequence[str], out: str | os.PathLike, *,
                         epochs: int = 40, patience: int = 6, batch_size: int = 256, lr: float = 5e-4, seed: int = 0,
                         progress: bool = False, command: str | None = None, data_description: str = "",
                         class_weighting: bool = False) -> dict[str, Any]:
    """Fine-tune the photometry branch and its head on a labelled catalogue (e.g. real
    spectroscopic classes); the image branch and fused head are kept as they are.

    Parameters
    ----------
    model : str or path-like
        Starting sgq model (with a photometry branch).
    mag : ndarray (N, P)
        AB magnitudes in the model's photometric bands, NaN where missing.
    labels : sequence of str
        Classes (star, galaxy, qso).
    out : path-like
        Model file to write.
    epochs, patience, batch_size, lr, seed
        Training settings; 10% of the rows are held out for early stopping.
    data_description : str
        What the catalogue is, recorded in the model metadata.
    class_weighting : bool
        Weight classes by inverse frequency. Off by default: a catalogue representative of the
        target population should pass its class priors on to the model.

    Returns
    -------
    dict
        Training record with the held-out ``accuracy`` and F1 per class.
    """
    from ..training.module import OptimConfig, TaskModule, fit  # Lightning: training only (slow to import)

    network, meta, path = load_sgq_model(model)
    if not network.use_photometry:
        raise InputError(path, "this model has no photometry branch")
    mag = np.asarray(mag, np.float32)
    truth = class_indices(labels)
    if mag.ndim != 2 or mag.shape[1] != len(meta["photometry_bands"]) or len(mag) != len(truth):
        raise InputError("mag", f"need magnitudes (N, {len(meta['photometry_bands'])}) matching {len(truth)} labels")
    mag[~np.isfinite(mag)] = np.nan

    class PhotometryOnly(torch.nn.Module):
        """The photometry branch as a network of its own, sharing the weights."""

        def __init__(self, parent: SGQNet):
            super().__init__()
            self.parent = parent

        def forward(self, batch):
            return {"logits": self.parent.photometry_logits(batch["mag"])}

    for name, parameter in network.named_parameters():
        parameter.requires_grad = name.startswith(("photometry.", "photometry_head."))
    train_idx, val_idx = split_indices(len(truth), [0.9, 0.1], seed=seed)
    weights = balanced_class_weights(truth[train_idx]) if class_weighting else np.ones(len(CLASSES))
    train_set = InMemoryBatches({"mag": mag[train_idx], "label": truth[train_idx]}, transform=SGQAugmentation(0.05, seed=seed))
    val_set = InMemoryBatches({"mag": mag[val_idx], "label": truth[val_idx]})
    wrapper = PhotometryOnly(network)
    # The loaded network is in eval mode; dropout must act while fine-tuning.
    wrapper.train()
    module = TaskModule(wrapper, sgq_loss(torch.as_tensor(weights, dtype=torch.float32)), OptimConfig(lr=lr, lr_patience=2))
    record = fit(module, batch_loader(train_set, batch_size, shuffle=True, seed=seed, drop_last=len(train_set) > batch_size),
                 batch_loader(val_set, 4096, shuffle=False), max_epochs=epochs, patience=patience, progress=progress, seed=seed)
    for parameter in network.parameters():
        parameter.requires_grad = True
    network.eval()
    probabilities = _network_probabilities(network, None, mag[val_idx], "photometry")
    from sklearn.metrics import f1_score

    predicted = probabilities.argmax(axis=1)
    f1 = f1_score(truth[val_idx], predicted, labels=range(len(CLASSES)), average=None, zero_division=0)
    held_out = {"n": int(len(val_idx)), "accuracy": float(np.mean(predicted == truth[val_idx])),
                **{f"f1_{c}": float(f1[i]) for i, c in enumerate(CLASSES)}}
    new_meta = {k: v for k, v in meta.items() if k not in ("format_version", "created", "creator", "command", "software")}
    new_meta["fine_tuning"] = {"from": str(model), "data": data_description, "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
                               "part": "photometry branch and head", "lr": lr,
                               "class_counts": {c: int(np.sum(truth[train_idx] == i)) for i, c in enumerate(CLASSES)},
                               "class_weights": [round(float(w), 4) for w in weights],
                               **{k: v for k, v in record.items() if k != "history"}, "held_out": held_out}
    save_model_file(out, network.state_dict(), new_meta, command=command)
    return {**held_out, **record}


# ----------------------------------------------------------------------------------------
# Metrics and evaluation
# ----------------------------------------------------------------------------------------


def sgq_metrics(truth: np.ndarray, probabilities: np.ndarray, *, r_mag: np.ndarray | None = None,
                expected_class: str | None = None, bright_limit: float = 21.0) -> dict[str, Any]:
    """Classification metrics of star / galaxy / qso probabilities.

    Parameters
    ----------
    truth : ndarray (N,) of int
        True class index (-1 where unknown; such rows only count for ``expected_class``).
    probabilities : ndarray (N, 3)
        Predicted probabilities.
    r_mag : ndarray (N,), optional
        r magnitude for accuracy vs magnitude and the ``bright`` subset (r < ``bright_limit``).
    expected_class : str, optional
        External validation of a pure sample (e.g. Gaia stars), every object taken to be of this
        class: ``expected_class_fraction`` is the fraction of all the objects assigned to it.
        The class is not used as a label: unlabelled objects (``truth`` -1) are scored for
        nothing else, since a sample without contaminants has no purity to measure and its
        accuracy would only repeat the fraction.

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``per_class`` (precision, recall, f1, support, as
        :func:`sklearn.metrics.precision_recall_fscore_support`; None where undefined: the
        precision of a class never predicted, the recall of a class without objects, the f1 of
        a class neither present nor predicted), flat ``f1_<class>`` (None without objects of the class),
        ``confusion_matrix``, ``purity_completeness`` (per class, against the threshold on its
        probability), ``calibration`` (:func:`~skysort.evaluation.calibration.calibration_metrics`),
        ``accuracy_vs_r_mag`` (non-empty bins of :data:`MAG_BINS`, ``[r_min, r_max)``),
        ``n_without_r_mag`` (scored objects whose r magnitude is missing or outside
        :data:`PLAUSIBLE_MAGNITUDES`, in no bin), ``point_extended_agreement`` (star and qso merged
        as point sources against galaxies: the comparison with a morphological star / galaxy
        type), ``bright`` (the same for r < bright_limit) and, with ``expected_class``,
        ``expected_class``, ``expected_class_fraction``, ``n_expected_class_sample`` (the objects
        it counts), ``n_labelled_other_class`` (class -> number of objects whose label names
        another class than the expected one: a sample that is not pure) and, given ``r_mag``,
        ``expected_class_fraction_vs_r_mag`` (non-empty bins of :data:`MAG_BINS`: ``r_min``,
        ``r_max``, ``n``, ``fraction``).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    probabilities = np.asarray(probabilities, float)
    predicted = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, int)
    truth = np.asarray(truth, int)
    known = truth >= 0
    t, p, prob = truth[known], predicted[known], probabilities[known]
    metrics: dict[str, Any] = {"n": int(known.sum()), "classes": CLASSES}
    metrics["accuracy"] = float(np.mean(t == p)) if len(t) else None
    if len(t):
        # Undefined ratios stay undefined (NaN, then None): the precision of a class never
        # predicted, the recall of a class absent from the set. Reported as 0 they would read
        # as a model that fails on that class.
        precision, recall, f1, support = precision_recall_fscore_support(t, p, labels=range(len(CLASSES)),
                                                                         zero_division=np.nan)
    else:  # a pure sample without labels (expected_class): nothing to score per class
        precision = recall = f1 = np.full(len(CLASSES), np.nan)
        support = np.zeros(len(CLASSES), int)
    present = [i for i in range(len(CLASSES)) if support[i] > 0 or np.any(p == i)]

    def defined(value: float) -> float | None:
        return float(value) if np.isfinite(value) else None

    metrics["per_class"] = {c: {"precision": defined(precision[i]), "recall": defined(recall[i]), "f1": defined(f1[i]),
                                "support": int(support[i])} for i, c in enumerate(CLASSES)}
    for i, c in enumerate(CLASSES):
        metrics[f"f1_{c}"] = float(f1[i]) if support[i] > 0 else None
    metrics["classes_present"] = [CLASSES[i] for i in present]
    metrics["confusion_matrix"] = {"rows": "true", "columns": "predicted", "labels": CLASSES,
                                   "matrix": confusion_matrix(t, p, labels=range(len(CLASSES))).tolist() if len(t) else []}
    curves = {}
    for i, c in enumerate(CLASSES):
        is_c = t == i
        if not is_c.any():
            continue
        selected = prob[:, i][None, :] >= THRESHOLDS[:, None]
        n_selected = selected.sum(axis=1)
        true_selected = (selected & is_c[None, :]).sum(axis=1)
        purity = np.where(n_selected > 0, true_selected / np.maximum(n_selected, 1), np.nan)
        curves[c] = {"threshold": THRESHOLDS.tolist(), "purity": purity.tolist(),
                     "completeness": (true_selected / is_c.sum()).tolist()}
    metrics["purity_completeness"] = curves
    metrics["calibration"] = calibration_metrics(t, prob, CLASSES)
    point_true, point_pred = t != 1, p != 1
    metrics["point_extended_agreement"] = float(np.mean(point_true == point_pred)) if len(t) else None
    if r_mag is not None:
        r = _binnable_magnitudes(np.asarray(r_mag, float)[known])
        metrics["n_without_r_mag"] = int(np.count_nonzero(np.isnan(r)))
        metrics["accuracy_vs_r_mag"] = [
            {"r_min": low, "r_max": high, "n": int(inside.sum()), "accuracy": float(np.mean(t[inside] == p[inside])),
             "point_extended_agreement": float(np.mean(point_true[inside] == point_pred[inside]))}
            for low, high, inside in _magnitude_bins(r)]
        bright = r < bright_limit
        metrics["bright"] = {"r_max": bright_limit, "n": int(bright.sum()),
                             "accuracy": float(np.mean(t[bright] == p[bright])) if bright.any() else None,
                             "point_extended_agreement": float(np.mean(point_true[bright] == point_pred[bright])) if bright.any() else None}
    if expected_class is not None:
        _check_expected_class(expected_class)
        assigned = predicted == CLASSES.index(expected_class)
        metrics["expected_class"] = expected_class
        metrics["expected_class_fraction"] = float(np.mean(assigned)) if len(assigned) else None
        metrics["n_expected_class_sample"] = int(len(assigned))
        # Labels that name another class contradict the sample's purity: each such object is
        # still counted in the fraction, as one the model did not assign to the expected class
        # when it agrees with its label. Reported so a sample that is not pure is noticed.
        other = (truth >= 0) & (truth != CLASSES.index(expected_class))
        metrics["n_labelled_other_class"] = {c: int(np.sum(truth[other] == i)) for i, c in enumerate(CLASSES)
                                             if np.any(truth[other] == i)}
        if r_mag is not None:
            metrics["expected_class_fraction_vs_r_mag"] = [
                {"r_min": low, "r_max": high, "n": int(inside.sum()), "fraction": float(np.mean(assigned[inside]))}
                for low, high, inside in _magnitude_bins(_binnable_magnitudes(np.asarray(r_mag, float)))]
    return metrics


def _binnable_magnitudes(r: np.ndarray) -> np.ndarray:
    """``r`` with NaN where it holds no magnitude: a sentinel the catalogue mapping left in (99,
    -99) is none, as for the model, and -99 would otherwise count as bright."""
    return np.where(plausible_magnitudes(r), r, np.nan)


def _magnitude_bins(r: np.ndarray) -> list[tuple[float, float, np.ndarray]]:
    """``(r_min, r_max, mask)`` of each non-empty bin ``[r_min, r_max)`` of :data:`MAG_BINS`."""
    bins = [(float(low), float(high), (r >= low) & (r < high)) for low, high in zip(MAG_BINS[:-1], MAG_BINS[1:])]
    return [(low, high, inside) for low, high, inside in bins if inside.any()]


def plot_sgq_report(metrics: Mapping[str, Any], out_dir: str | os.PathLike, *, name: str = "model") -> list[Path]:
    """Confusion matrix, purity / completeness vs threshold, reliability diagram, accuracy vs r
    magnitude and, for a pure sample, the fraction given the expected class vs r magnitude
    (PNGs; each one only where its metrics exist)."""
    from ..evaluation.calibration import plot_reliability
    from ..evaluation.plots import _CLASS_COLOURS, _save, plt

    out_dir = Path(out_dir)
    written = []
    if metrics.get("calibration"):
        written.append(plot_reliability(metrics["calibration"], out_dir / "reliability.png", colours=_CLASS_COLOURS,
                                        title=f"{name}: ECE {metrics['calibration']['ece']:.4f}"))
    matrix = np.asarray(metrics["confusion_matrix"]["matrix"], float)
    if matrix.size:
        rows = matrix.sum(axis=1, keepdims=True)
        fraction = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
        fig, ax = plt.subplots(figsize=(4.8, 4.2))
        ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(CLASSES)):
            for j in range(len(CLASSES)):
                ax.text(j, i, f"{int(matrix[i, j])}\n{fraction[i, j]:.1%}", ha="center", va="center",
                        color="white" if fraction[i, j] > 0.6 else "black", fontsize=9)
        ax.set_xticks(range(len(CLASSES)), CLASSES)
        ax.set_yticks(range(len(CLASSES)), CLASSES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        accuracy = metrics.get("accuracy")
        ax.set_title(f"{name}: accuracy {accuracy:.2%}" if accuracy is not None else name, fontsize=10)
        written.append(_save(fig, out_dir / "confusion_matrix.png"))
    curves = metrics.get("purity_completeness") or {}
    if curves:
        fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.4), squeeze=False)
        for ax, (c, curve) in zip(axes[0], curves.items()):
            ax.plot(curve["threshold"], curve["purity"], color=_CLASS_COLOURS.get(c), label="purity")
            ax.plot(curve["threshold"], curve["completeness"], color=_CLASS_COLOURS.get(c), ls="--", label="completeness")
            ax.set_xlabel(f"threshold on p_{c}")
            ax.set_ylim(max(0.0, min(np.nanmin(np.asarray(curve["purity"], float)), np.nanmin(curve["completeness"])) - 0.02), 1.005)
            ax.set_title(c, fontsize=10)
            ax.legend(fontsize=8, loc="lower left")
        written.append(_save(fig, out_dir / "purity_completeness.png"))
    rows = metrics.get("accuracy_vs_r_mag") or []
    if rows:
        centre = [(r["r_min"] + r["r_max"]) / 2 for r in rows]
        fig, ax = plt.subplots(figsize=(4.8, 3.4))
        ax.plot(centre, [r["accuracy"] for r in rows], "o-", label="3-class accuracy")
        ax.plot(centre, [r["point_extended_agreement"] for r in rows], "s--", label="point (star+qso) vs galaxy")
        for x, r in zip(centre, rows):
            ax.annotate(str(r["n"]), (x, r["accuracy"]), fontsize=7, textcoords="offset points", xytext=(0, 5), ha="center")
        ax.set_xlabel("r magnitude")
        ax.set_ylabel("fraction correct")
        ax.legend(fontsize=8)
        ax.set_title(name, fontsize=10)
        written.append(_save(fig, out_dir / "accuracy_vs_r_mag.png"))
    rows = metrics.get("expected_class_fraction_vs_r_mag") or []
    if rows:
        expected = metrics["expected_class"]
        centre = [(r["r_min"] + r["r_max"]) / 2 for r in rows]
        fig, ax = plt.subplots(figsize=(4.8, 3.4))
        ax.plot(centre, [r["fraction"] for r in rows], "o-", color=_CLASS_COLOURS.get(expected))
        for x, r in zip(centre, rows):
            ax.annotate(str(r["n"]), (x, r["fraction"]), fontsize=7, textcoords="offset points", xytext=(0, 5), ha="center")
        ax.set_xlabel("r magnitude")
        ax.set_ylabel(f"fraction classified {expected}")
        ax.set_ylim(min(0.95, min(r["fraction"] for r in rows)) - 0.05, 1.05)
        ax.set_title(f"{name}: {metrics['expected_class_fraction']:.2%} of the sample classified {expected}", fontsize=10)
        written.append(_save(fig, out_dir / "expected_class_fraction_vs_r_mag.png"))
    return written


def _scored(table: Table) -> np.ndarray:
    """Which predictions an evaluation scores: those the model had an input for.

    Parameters
    ----------
    table : astropy.table.Table
        Predictions of :func:`predict_sgq`, with ``inputs_used``.

    Returns
    -------
    ndarray (N,) of bool
        False for an object without a usable input (``inputs_used`` none: no finite pixel and no
        magnitude the model accepts, a sentinel such as 99 being none). Such an object gets no
        class, and scoring its flat probabilities would count it as the first class.
    """
    return np.asarray(table["inputs_used"]).astype(str) != "none"


def _check_expected_class(expected_class: str | None) -> None:
    """Refuse an ``--expect`` class that is not one of :data:`CLASSES` (``None``: no pure sample)."""
    if expected_class is not None and expected_class not in CLASSES:
        raise InputError("--expect", f"unknown class {expected_class!r} (choose from {', '.join(CLASSES)})")


def require_sgq_evaluation_set(stamps: StampSet, expected_class: str | None = None) -> np.ndarray:
    """The class index of each object (-1 where unlabelled), refusing a set with no star / galaxy /
    qso label at all unless ``expected_class`` makes it a pure sample."""
    data = stamps.path
    _check_expected_class(expected_class)
    if "label" not in stamps.columns and expected_class is None:
        raise InputError(data, "no label column: give --expect CLASS to evaluate a pure sample")
    truth = class_indices(stamps.column("label"), data, allow_unknown=True) if "label" in stamps.columns else np.full(len(stamps), -1)
    if expected_class is None and len(stamps) and not np.any(truth >= 0):
        found = sorted({str(v) for v in stamps.column("label")} - {""})[:5]
        raise InputError(data, f"no object has a {' / '.join(CLASSES)} label (labels found: {', '.join(found) or 'none'}); "
                               "give --expect CLASS to evaluate a pure sample")
    return truth


def evaluate_sgq_model(model: str | os.PathLike, data: str | os.PathLike, out_dir: str | os.PathLike, *,
                       expected_class: str | None = None, prior: Mapping[str, float] | str | None = None,
                       progress: Callable[[int], None] | None = None, command: str | None = None,
                       input_warnings: bool = True) -> dict[str, Any]:
    """Evaluate an sgq model on a labelled stamp set (or, with ``expected_class``, a pure sample).

    With ``prior`` (class fractions expected in the set, or ``"auto"`` to estimate them from the
    predictions; see :func:`predict_sgq`) the model's probabilities are moved to that class
    balance before they are scored; ``metrics.json`` records it (``prior``, ``prior_estimated``).

    Writes into ``out_dir``: ``metrics.json`` (see :func:`sgq_metrics`; plus the inputs used),
    ``predictions.parquet`` (the prediction table with ``true_label`` and ``r_mag``) and the
    plots ``confusion_matrix.png``, ``purity_completeness.png``, ``reliability.png``,
    ``accuracy_vs_r_mag.png`` (with ``expected_class``: ``expected_class_fraction_vs_r_mag.png``),
    those whose metrics exist, all of them or none
    (:func:`skysort.evaluation.evaluation_folder`).
    Objects without a star / galaxy / qso label are classified but not scored, except in
    ``expected_class_fraction``: with ``expected_class`` (a pure sample) every object counts
    there, and a set without labels gets that fraction alone, no accuracy, purity or
    calibration (see :func:`sgq_metrics`). Objects with neither a finite pixel nor a magnitude
    (``inputs_used`` none: no class) are not scored and are counted as ``n_without_input``.
    ``input_warnings`` is as in :func:`predict_sgq`.
    """
    from ..data.catalog import write_catalog
    from ..evaluation import evaluation_folder
    from ..evaluation.blend_metrics import source_provenance, write_metrics_json
    from ..inference.predictor import load_predictor

    stamps = StampSet.open(data)
    truth = require_sgq_evaluation_set(stamps, expected_class)
    predictor = load_predictor(model, device="cpu")
    if predictor.task != "sgq":
        raise InputError(str(model), f"not an sgq model (task {predictor.task!r})")
    table = predict_sgq(predictor, stamps, prior=prior, progress=progress, input_warnings=input_warnings)
    probabilities = np.stack([np.asarray(table[f"p_{c}"], float) for c in CLASSES], axis=1) if len(table) else np.zeros((0, 3))
    r_mag, r_source = binning_r_magnitudes(stamps, ("mag_r",))
    scored = _scored(table)
    metrics = sgq_metrics(truth[scored], probabilities[scored], r_mag=None if r_mag is None else np.asarray(r_mag)[scored],
                          expected_class=expected_class)
    used, counts = np.unique(np.asarray(table["inputs_used"]).astype(str), return_counts=True)
    metrics.update({"model": str(model), "data": str(data), "r_mag_source": r_source,
                    "source_provenance": source_provenance(predictor.model_file, predictor.meta, stamps.meta.seed),
                    "inputs_used": {str(u): int(c) for u, c in zip(used, counts)}, "n_without_input": int(np.sum(~scored)),
                    "n_objects": int(len(stamps)), "n_unlabelled": int(np.sum(truth < 0)),
                    "prior": table.meta.get("prior"), "prior_estimated": bool(table.meta.get("prior_estimated", False))})
    table["true_label"] = np.where(truth >= 0, np.asarray(CLASSES)[np.maximum(truth, 0)], "")
    if r_mag is not None:
        table["r_mag"] = np.asarray(r_mag, np.float32)
    table.meta.update({"data": str(data)})
    with evaluation_folder(out_dir) as folder:
        write_catalog(table, folder / "predictions.parquet")
        write_metrics_json(metrics, folder / "metrics.json", command=command)
        plot_sgq_report(metrics, folder, name=Path(str(model)).stem)
    return metrics


#: Names a catalogue's class column often has (compared without case), for the hint below.
_CLASS_COLUMN_NAMES = ("class", "specclass", "spec_class", "spectype", "type", "objtype", "classification")


def _label_column_hint(catalog: Table) -> str:
    """`` (e.g. --mapping NAME:label=COLUMN)`` for a column that looks like the classes, else empty."""
    found = next((name for wanted in _CLASS_COLUMN_NAMES for name in catalog.colnames if name.lower() == wanted), None)
    if found is None:
        return ""
    from ..data.catalog import preset_names

    # The catalogue records its mapping as described: "sdss (kind=psf)", a preset with its options
    # (a YAML file's or a compact string's mapping has a name too, but no preset to extend).
    described = re.match(r"^([A-Za-z0-9_.-]+)(?: \((.*)\))?$", str(catalog.meta.get("mapping", "")))
    if described is None or described.group(1) not in preset_names():
        return f" (column {found!r} looks like it: label={found} in the mapping)"
    options = [o.strip() for o in (described.group(2) or "").split(",") if o.strip()]
    return f" (column {found!r} looks like it: --mapping {described.group(1)}:{','.join([*options, f'label={found}'])})"


def evaluate_sgq_catalog(model: str | os.PathLike, catalog: Table, out_dir: str | os.PathLike, *,
                         command: str | None = None, description: str = "",
                         prior: Mapping[str, float] | str | None = None,
                         expected_class: str | None = None) -> dict[str, Any]:
    """Evaluate the photometry branch alone on a labelled catalogue (standard column names,
    e.g. from :func:`skysort.data.catalog.read_catalog`), or with ``expected_class`` on a pure
    sample without labels (the fraction given that class, as the KiDS network was validated
    on Gaia stars and GAMA galaxies; the class is not taken as every object's label, so such a
    sample gets no accuracy, purity or calibration, as in :func:`evaluate_sgq_model`): the
    same outputs as :func:`evaluate_sgq_model`, with ``catalog_predictions.parquet``.
    ``prior`` is as in :func:`predict_sgq` (``"auto"``: the class mix estimated from the
    predictions, no label used); the one applied is recorded as ``metrics["prior"]``. Objects
    without a single magnitude the model accepts (finite and within
    :data:`PLAUSIBLE_MAGNITUDES`) get no class and are not scored (``n_without_input``)."""
    from ..data.catalog import photometry_arrays, write_catalog
    from ..evaluation import evaluation_folder
    from ..evaluation.blend_metrics import source_provenance, write_metrics_json
    from ..inference.predictor import load_predictor

    where = description or catalog.meta.get("source_file", "catalogue")
    predictor = load_predictor(model, device="cpu")
    if predictor.task != "sgq" or not predictor.spec.uses_photometry:
        raise InputError(str(model), "needs an sgq model with a photometry branch")
    _check_expected_class(expected_class)
    if "label" not in catalog.colnames and expected_class is None:
        raise InputError(where, "no label column: map the catalogue's class column as label"
                                f"{_label_column_hint(catalog)}, or give the class of a pure sample (--expect)")
    mags, _, _ = photometry_arrays(catalog, predictor.spec.photometry_bands)
    ids = np.asarray(catalog["id"]) if "id" in catalog.colnames else None
    table = predict_sgq(predictor, mag=mags, ids=ids, prior=prior)
    # A pure sample's class is not a label: scored against it, the classifier would get a purity
    # of 1 by construction and an accuracy that merely repeats the fraction (as for stamps).
    truth = (class_indices(np.ma.filled(catalog["label"], ""), "label", allow_unknown=True) if "label" in catalog.colnames
             else np.full(len(catalog), -1))
    if expected_class is None and len(catalog) and not np.any(truth >= 0):
        raise InputError(where, f"no label is one of {', '.join(CLASSES)}: map the labels (labels=GALAXY:galaxy ...)")
    probabilities = np.stack([np.asarray(table[f"p_{c}"], float) for c in CLASSES], axis=1)
    r_mag = mags[:, predictor.spec.photometry_bands.index("r")] if "r" in predictor.spec.photometry_bands else None
    scored = _scored(table)
    metrics = sgq_metrics(truth[scored], probabilities[scored], r_mag=None if r_mag is None else r_mag[scored],
                          expected_class=expected_class)
    metrics.update({"model": str(model), "data": str(where), "inputs": "photometry only", "n_objects": int(len(catalog)),
                    "source_provenance": source_provenance(predictor.model_file, predictor.meta),
                    "n_unlabelled": int(np.sum(truth < 0)), "n_without_input": int(np.sum(~scored)),
                    "prior": table.meta.get("prior"), "prior_estimated": bool(table.meta.get("prior_estimated", False))})
    table["true_label"] = np.where(truth >= 0, np.asarray(CLASSES)[np.maximum(truth, 0)], "")
    with evaluation_folder(out_dir) as folder:
        write_catalog(table, folder / "catalog_predictions.parquet")
        write_metrics_json(metrics, folder / "metrics.json", command=command)
        plot_sgq_report(metrics, folder, name=Path(str(model)).stem + " (photometry)")
    return metrics


# ----------------------------------------------------------------------------------------
# Model card
# ----------------------------------------------------------------------------------------


def _pct(value) -> str:
    """A fraction as a percentage with two decimals, ``-`` when unknown."""
    return percent(value, digits=2)


def _read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such metrics file (run skysort evaluate first)")
    return json.loads(path.read_text())


def ablation_table(evaluations: Mapping[str, str | os.PathLike]) -> list[str]:
    """Markdown table comparing models on one test set: accuracy, F1 per class, r < 21 accuracy.

    Parameters
    ----------
    evaluations : mapping of str to path-like
        Row label (e.g. the branches) -> ``metrics.json`` of :func:`evaluate_sgq_model`.
    """
    lines = ["| model (branches) | accuracy | F1 star | F1 galaxy | F1 qso | r < 21 accuracy |", "|---|---|---|---|---|---|"]
    for label, path in evaluations.items():
        m = _read_metrics(path)
        lines.append(f"| {label} | {_pct(m.get('accuracy'))} | {_pct(m.get('f1_star'))} | {_pct(m.get('f1_galaxy'))} | "
                     f"{_pct(m.get('f1_qso'))} | {_pct((m.get('bright') or {}).get('accuracy'))} |")
    return lines


def magnitude_table(metrics_path: str | os.PathLike, *, quantity: str = "accuracy", header: str = "r mag",
                    quantity_header: str = "accuracy") -> list[str]:
    """Markdown table of one metric per r-magnitude bin (``accuracy_vs_r_mag`` of a ``metrics.json``).

    Parameters
    ----------
    metrics_path : path-like
        ``metrics.json`` of :func:`evaluate_sgq_model`.
    quantity : str
        Key of each bin to show: ``accuracy`` or ``point_extended_agreement``.
    header, quantity_header : str
        Column titles of the magnitude bins (AB mag) and of the quantity.
    """
    rows = _read_metrics(metrics_path).get("accuracy_vs_r_mag") or []
    return [f"| {header} | n | {quantity_header} |", "|---|---|---|"] + [
        f"| {r['r_min']:.0f}-{r['r_max']:.0f} | {r['n']} | {_pct(r.get(quantity))} |" for r in rows]


def purity_completeness_table(metrics_path: str | os.PathLike, thresholds: Sequence[float] = (0.5, 0.9)) -> list[str]:
    """Markdown table of purity and completeness per class at two or more probability thresholds.

    Parameters
    ----------
    metrics_path : path-like
        ``metrics.json`` of :func:`evaluate_sgq_model` (its ``purity_completeness`` curves).
    thresholds : sequence of float
        Thresholds to show; each must be a point of the stored curves (:data:`THRESHOLDS`).
    """
    curves = _read_metrics(metrics_path).get("purity_completeness") or {}
    lines = ["| class | " + " | ".join(f"{'threshold ' if i == 0 else ''}{t:g}: purity, completeness"
                                       for i, t in enumerate(thresholds)) + " |",
             "|---|" + "---|" * len(thresholds)]
    for name, curve in curves.items():
        cells = []
        for t in thresholds:
            matches = [i for i, x in enumerate(curve["threshold"]) if abs(x - t) < 1e-9]
            if not matches:
                raise InputError(metrics_path, f"threshold {t} is not a point of the stored {name} curve")
            cells.append(f"{_pct(curve['purity'][matches[0]])}, {_pct(curve['completeness'][matches[0]])}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def specphot_table(summary_path: str | os.PathLike) -> list[str]:
    """Markdown table of :func:`evaluate_sgq_specphot`'s ``summary.json``: simulation-only and
    fine-tuned photometry branch on real spectroscopic classes."""
    s = _read_metrics(summary_path)
    return [
        "| model | test objects | accuracy | F1 star | F1 galaxy | F1 qso |", "|---|---|---|---|---|---|",
        f"| simulation only | all {s['n_unique']:,} | {_pct(s['simulation_only_accuracy'])} | {_pct(s['simulation_only_f1_star'])} | "
        f"{_pct(s['simulation_only_f1_galaxy'])} | {_pct(s['simulation_only_f1_qso'])} |",
        *([f"| simulation only, class mix estimated from its predictions (`prior=\"auto\"`: "
           + ", ".join(f"{c} {v:.2f}" for c, v in s["prior_estimated"].items()) + f") | all {s['n_unique']:,} | "
           f"{_pct(s['simulation_only_prior_auto_accuracy'])} | {_pct(s['simulation_only_prior_auto_f1_star'])} | "
           f"{_pct(s['simulation_only_prior_auto_f1_galaxy'])} | {_pct(s['simulation_only_prior_auto_f1_qso'])} |"]
          if "simulation_only_prior_auto_accuracy" in s else []),
        f"| simulation only | held-out half, {s['n_test']:,} | {_pct(s['test_half_simulation_only_accuracy'])} | | | |",
        f"| fine-tuned on the other half ({s['n_fine_tune']:,}) | held-out half, {s['n_test']:,} | {_pct(s['fine_tuned_accuracy'])} | "
        f"{_pct(s['fine_tuned_f1_star'])} | {_pct(s['fine_tuned_f1_galaxy'])} | {_pct(s['fine_tuned_f1_qso'])} |",
    ]


def _magnitude_convention_text(convention: Mapping[str, Any] | None, bands: Sequence[str]) -> str:
    if not convention:
        return ""
    if convention.get("system") == "asinh":
        values = convention.get("softening") or {}
        softening = ", ".join(f"{b} {values[b]:.2g}" for b in bands if b in values)
        return f"; asinh magnitudes as in SDSS catalogues (Lupton et al. 1999; softening b: {softening} maggies)"
    return "; Pogson magnitudes, NaN where not detected"


def _seeing_text(meta: Mapping[str, Any]) -> str:
    """The model card's line on seeing: the training range and whether the model reads it."""
    ranges = meta.get("psf_fwhm_range") or {}
    trained = ", ".join(f"{b} {low:.2f}-{high:.2f}\"" for b, (low, high) in ranges.items()) or "not recorded"
    band = (meta.get("architecture_config") or {}).get("seeing_band")
    reads = (f"the image branch reads each object's {band}-band PSF FWHM (measured on the tile by `skysort cutout` "
             "and `skysort predict --tiles`; unknown seeing is allowed)") if band else "the model is not told the seeing"
    warning = "; predictions on images of other seeing are reported by a warning" if ranges else ""
    return f"trained on PSF FWHM {trained}; {reads}{warning}"


def write_model_card(model: str | os.PathLike, evaluations: Mapping[str, str | os.PathLike], out: str | os.PathLike, *,
                     title: str = "", notes: Sequence[str] = (), sections: Mapping[str, Sequence[str]] | None = None) -> Path:
    """Write a Markdown model card from a model file's metadata and ``metrics.json`` files.

    Every figure of the card comes from the model file or the metrics files; remarks come in
    through ``notes`` and ``sections`` (build tables for those with :func:`ablation_table`,
    :func:`magnitude_table`, :func:`purity_completeness_table` and :func:`specphot_table`).
    ``benchmarks/model_cards.py`` writes the shipped cards with it.

    Parameters
    ----------
    model : path-like
        The model file, or a shipped model's name.
    evaluations : mapping of str to path-like
        Test description -> ``metrics.json`` (from :func:`evaluate_sgq_model` or
        :func:`evaluate_sgq_catalog`): one row each of the performance table.
    out : path-like
        The card (``NAME.md`` beside ``NAME.pt`` for a shipped model).
    title : str
        What the model does, after its name in the heading.
    notes : sequence of str
        Known limitations, one bullet each.
    sections : mapping of str to sequence of str, optional
        Further sections after the performance table (heading -> Markdown lines).

    Returns
    -------
    Path
        The card.
    """
    meta, state = load_model_file(resolve_model(model))
    if meta.get("task") != "sgq":
        raise InputError(model, f"not an sgq model (task {meta.get('task')!r})")
    training = meta.get("training", {})
    simulation = (training.get("data_meta") or {}).get("simulation") or {}
    jitter = training.get("mag_jitter")
    jitter_text = f"; mag_jitter {', '.join(f'{b} {sigma:g}' for b, sigma in jitter.items())} mag" if jitter else ""
    # Batch-norm running statistics are buffers, not learnt parameters.
    n_parameters = sum(int(t.numel()) for k, t in state.items() if hasattr(t, "numel") and "running_" not in k and "num_batches" not in k)

    lines = [
        f"# {Path(str(model)).stem}: {title or 'star / galaxy / quasar classifier'}", "",
        f"- created {meta.get('created')} by {meta.get('creator')}; model format version {meta.get('format_version')}",
        f"- command: `{meta.get('command')}`",
        f"- architecture: {meta.get('architecture')} (branches {meta.get('branches')}), {n_parameters:,} parameters; "
        f"config {json.dumps(meta.get('architecture_config'))}",
        f"- image input: bands {meta.get('image_bands')}, centre crop {meta.get('stamp_size')} px at {meta.get('pixel_scale')}\"/px "
        f"(trained on {meta.get('training_stamp_size')} px stamps; larger stamps are centre-cropped), asinh stretch with "
        f"softening {((meta.get('normalisation') or {}).get('image') or {}).get('softening')} {meta.get('flux_unit')}",
        f"- photometry input: bands {meta.get('photometry_bands')}: {meta.get('photometry_inputs')}"
        f"{_magnitude_convention_text(meta.get('catalogue_magnitudes'), meta.get('photometry_bands') or [])}",
        f"- photometry-only prediction (catalogue, no images): {meta.get('photometry_only_path')}",
        f"- seeing: {_seeing_text(meta)}",
        "- outputs: p_star, p_galaxy, p_qso, class, inputs_used, missing-input flag", "",
        "## Training data", "",
        f"- `{training.get('data')}`: simulated {simulation.get('survey', '')} {simulation.get('kind', '')} "
        f"(seed {simulation.get('seed')}, balanced {simulation.get('balanced')}, {simulation.get('mode')} galaxies, "
        f"image bands {simulation.get('image_bands')}, stamp size {simulation.get('stamp_size')}"
        f"{''.join(f', {k} {v}' for k, v in simulation.get('population') or [])})",
        f"- {training.get('n_train', 0):,} training / {training.get('n_val', 0):,} validation objects; class counts "
        f"{training.get('class_counts')}; class weights {training.get('class_weights')}",
        f"- {training.get('augmentation')} (mag_dropout {training.get('mag_dropout')}{jitter_text}); magnitude balance: "
        f"{training.get('magnitude_balance') or 'off'}; auxiliary-head loss weight {training.get('aux_weight')}",
        *([f"- started from the weights of `{training.get('init')}` (an earlier stage of the same training, or another model)"]
          if training.get("init") else []),
        *([f"- branches kept fixed (weights and batch-norm statistics of the initial model): {', '.join(training['frozen_branches'])}"]
          if training.get("frozen_branches") else []),
        f"- {training.get('epochs')} epochs (early stopping, patience on validation loss), batch {training.get('batch_size')}, "
        f"lr {training.get('lr')}, {training.get('seconds')} s on {training.get('accelerator')} ({training.get('precision')})", "",
        "## Measured performance", "",
        "| test set | n | accuracy | F1 star | F1 galaxy | F1 qso | point/extended agreement | r < 21: n, agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, path in evaluations.items():
        m = _read_metrics(path)
        bright = m.get("bright") or {}
        lines.append(f"| {name} | {m.get('n')} | {_pct(m.get('accuracy'))} | {_pct(m.get('f1_star'))} | {_pct(m.get('f1_galaxy'))} | "
                     f"{_pct(m.get('f1_qso'))} | {_pct(m.get('point_extended_agreement'))} | "
                     f"{bright.get('n', '-')}, {_pct(bright.get('point_extended_agreement'))} |")
    lines += ["", "Point/extended agreement merges star and qso (point sources) against galaxies: the comparison "
              "with a morphological star / galaxy type such as SDSS's photometric type.", ""]
    for heading, body in (sections or {}).items():
        lines += [f"## {heading}", "", *body, ""]
    return write_card(out, lines, notes)


# ----------------------------------------------------------------------------------------
# Real spectroscopic classes: simulation-only and fine-tuned photometry branch
# ----------------------------------------------------------------------------------------


#: What :func:`evaluate_sgq_specphot` writes into its folder, replaced whole by a rerun.
SPECPHOT_OUTPUTS = frozenset({"all", "all_prior_auto", "test_half_simulation_only", "test_half_fine_tuned",
                              "fine_tuned.pt", "summary.json"})


def evaluate_sgq_specphot(model: str | os.PathLike, paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                          mapping: str = "sdss-specphot", fine_tune: bool = True, seed: int = 0, epochs: int = 40,
                          lr: float = 2e-3, command: str | None = None) -> dict[str, Any]:
    """The photometry branch on real objects with spectroscopic classes, before and after
    fine-tuning on half of them.

    Writes into ``out_dir``: ``all/`` (the simulation-only model on every unique object; and
    ``all_prior_auto/``, the same with the class mix estimated from its predictions),
    ``test_half_simulation_only/`` and ``test_half_fine_tuned/`` (both models on the same held-out
    half), each with ``metrics.json``, predictions and plots; ``fine_tuned.pt`` (tuned on the
    other half, 10% of which stops the training early); and ``summary.json``: all of them or
    none (:func:`skysort.evaluation.evaluation_folder`; a rerun replaces these and keeps any
    other file in ``out_dir``).

    Returns
    -------
    dict
        ``n_unique``, ``simulation_only_accuracy`` (all objects), ``simulation_only_prior_auto_accuracy``
        (all objects, class mix estimated from the predictions: ``prior_estimated``), ``test_half_simulation_only_accuracy``,
        ``fine_tuned_accuracy`` (held-out half) and the F1 per class of each.
    """
    from ..data.catalog import photometry_arrays
    from ..evaluation import evaluation_folder, record_final_paths
    from ..evaluation.blend_metrics import write_metrics_json

    network, meta, path = load_sgq_model(model)
    bands = list(meta.get("photometry_bands") or [])
    if not bands:
        raise InputError(path, "the model has no photometry branch")
    table = read_unique_catalogs(paths, mapping=mapping)
    labels = np.asarray(np.ma.filled(table["label"], "")).astype(str)
    table = table[class_indices(labels, "label", allow_unknown=True) >= 0]
    description = f"{', '.join(Path(p).name for p in paths)} ({mapping}), {len(table)} unique labelled objects"
    summary: dict[str, Any] = {"model": str(model), "data": [str(p) for p in paths], "n_unique": int(len(table)),
                               "class_counts": {c: int(np.sum(np.char.lower(np.asarray(np.ma.filled(table['label'], '')).astype(str)) == c))
                                                for c in CLASSES}}
    # summary.json sums up the subfolders beside it: a run stopped midway must not leave it
    # beside another run's, nor a rerun without fine-tuning an earlier run's tuned model.
    with evaluation_folder(out_dir, outputs=SPECPHOT_OUTPUTS) as folder:
        every = evaluate_sgq_catalog(model, table, folder / "all", command=command, description=description)
        summary.update({"simulation_only_accuracy": every["accuracy"], **{f"simulation_only_f1_{c}": every[f"f1_{c}"] for c in CLASSES}})
        # The model is trained on balanced classes; a spectroscopic table is not. The class mix
        # estimated from the model's own predictions (no label) moves the probabilities to it.
        mixed = evaluate_sgq_catalog(model, table, folder / "all_prior_auto", command=command, description=description, prior="auto")
        summary.update({"simulation_only_prior_auto_accuracy": mixed["accuracy"], "prior_estimated": mixed["prior"],
                        **{f"simulation_only_prior_auto_f1_{c}": mixed[f"f1_{c}"] for c in CLASSES}})
        if fine_tune:
            tune_idx, test_idx = split_indices(len(table), [0.5, 0.5], seed=seed)
            mags, _, _ = photometry_arrays(table, bands)
            tuned = folder / "fine_tuned.pt"
            record = fine_tune_photometry(model, mags[tune_idx], np.asarray(np.ma.filled(table["label"], "")).astype(str)[tune_idx], tuned,
                                          epochs=epochs, lr=lr, seed=seed, command=command,
                                          data_description=f"half of {description} (seed {seed})")
            before = evaluate_sgq_catalog(model, table[test_idx], folder / "test_half_simulation_only", command=command,
                                          description=f"held-out half of {description}")
            after = evaluate_sgq_catalog(tuned, table[test_idx], folder / "test_half_fine_tuned", command=command,
                                         description=f"held-out half of {description}")
            summary.update({"n_fine_tune": int(len(tune_idx)), "n_test": int(len(test_idx)), "fine_tune_epochs": record["epochs"],
                            "test_half_simulation_only_accuracy": before["accuracy"], "fine_tuned_accuracy": after["accuracy"],
                            **{f"fine_tuned_f1_{c}": after[f"f1_{c}"] for c in CLASSES}})
        write_metrics_json(summary, folder / "summary.json", command=command)
        record_final_paths(folder, out_dir)
    return summary
