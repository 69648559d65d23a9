"""Star vs quasar for point sources: spectral knowledge transferred to image-only classification.

Training (:func:`train_pointsource_model`, ``skysort train --task pointsource``) runs, on one
split of a ``skysort simulate --kind pointsources`` stamp set (images + SDSS-grid spectra):

0. the image-only baseline (:class:`~skysort.models.pointsource.ImageClassifier`), kept inside
   the model file so that evaluation compares against a network trained on the same split;
1. the 1-D ResNet spectral encoder, a star / quasar classifier on spectra whose 128-d
   feature is then frozen (trained on the set's spectra plus noisy spectra of every Pickles
   stellar template, :func:`library_star_spectra`, so that hot stars absent from faint
   high-latitude samples are still recognised as stars; half of the spectra are degraded to
   S/N 2-10 and half lose up to 30% of the grid at each end (:class:`SpectrumAugmentation`),
   so that faint objects' spectra and spectra of other coverage are still read);
2. the conditional GAN: a generator maps images (+ noise) to 128-d features, trained against a
   discriminator on (feature, image embedding) pairs together with an L2 term to the frozen
   encoder's features, a feature-matching term on the discriminator's hidden layer, and a
   class-consistency term (the frozen spectral classifier applied to generated features, as in
   feature-generating GANs, Xian et al. 2018);
3. the fusion classifier: its own image CNN (initialised from the generator's, the same
   architecture as the baseline) plus the frozen generator's feature.

Stages 0, 1 and 3 train through the shared Lightning loop (:func:`skysort.training.module.fit`);
stage 2 is :class:`~skysort.training.gan.FeatureGanModule`, a ``TaskModule`` with manual optimisation (one
discriminator and one generator step per batch) run by the same ``fit``, whose validation loss
(early stopping) is the generator's feature MSE at zero noise.

Images: every band of the stamp set by default (``sdss`` ugriz stamps), stretched by a per-band
:class:`~skysort.data.dataset.AsinhStretch` fitted on the training stamps and stored in the
model; random flips and 90-degree rotations in training. Inference needs images only.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.cutout import centre_crop
from ..data.dataset import AsinhStretch, random_dihedral_batch
# Re-exported: the real-spectrum readers were first documented under this module.
from ..data.spectra import air_to_vacuum, read_real_spectrum, resample_spectrum  # noqa: F401
from ..data.stampset import StampSet, stamps_without_pixels
from ..errors import InputError
from ..inference.predictor import InputSpec, TorchPredictor, stampset_without_pixels, without_blank_stamps
from ..models.checkpoint import load_model_file, save_model_file
from ..models.pointsource import (
    FeatureDiscriminator,
    ImageClassifier,
    PointSourceNet,
    normalise_spectra,
)
from ..models.registry import resolve_model
from ..evaluation.calibration import calibration_metrics, plot_reliability
from ..evaluation.magnitudes import binning_r_magnitudes
from ..training.data import (InMemoryBatches, batch_loader, model_seeing_range, open_training_set, require_classes,
                             require_finite_images, require_same_imaging, split_indices, training_data_meta)

CLASSES = ["star", "qso"]
#: Image CNN widths and head size shared by the baseline, the generator and the fusion.
IMAGE_WIDTHS = (16, 32, 64)
SPECTRAL_WIDTHS = (8, 16, 32, 64)
#: Epoch limit of the spectral encoder (stage 1), the costliest stage per epoch: spectra at S/N 10
#: separate stars from quasars within a few epochs (validation accuracy 1.0 after 3 epochs on
#: 7,000 spectra), so more epochs would spend time without use.
ENCODER_MAX_EPOCHS = 4
#: Generator loss weights: L2 to the true feature (1), adversarial, feature matching, class consistency.
GAN_WEIGHTS = {"l2": 1.0, "adversarial": 0.05, "feature_matching": 0.1, "class": 0.1}
#: Spectral encoder: besides the training set's spectra, every Pickles (1998) template (O to M,
#: dwarfs to supergiants) this many times per S/N level. Faint high-latitude samples hold almost
#: no O/B stars, yet the encoder must recognise any star's spectrum as stellar.
LIBRARY_STARS_PER_TEMPLATE = 8
LIBRARY_STAR_SNR = (5.0, 10.0, 30.0)


# ----------------------------------------------------------------------------- data


def require_pointsource_set(stamps: StampSet, spectra: bool) -> None:
    """Refuse a set whose labels are not star / qso (or, with ``spectra``, that holds no spectra)."""
    labels = set(np.unique(stamps.labels()).tolist())
    unknown = labels - set(CLASSES)
    if unknown:
        raise InputError(stamps.path, f"not a point-source set: labels must be {CLASSES}, found {sorted(unknown)}")
    if spectra and "spectrum" not in stamps.array_names:
        raise InputError(stamps.path, "no 'spectrum' array (make training sets with skysort simulate --kind pointsources)")


def _band_index(stamps: StampSet, bands: Sequence[str] | None) -> tuple[list[int], list[str]]:
    bands = list(bands) if bands else list(stamps.meta.bands)
    missing = [b for b in bands if b not in stamps.meta.bands]
    if missing:
        raise InputError(stamps.path, f"no image band(s) {missing} (has {list(stamps.meta.bands)})")
    return [list(stamps.meta.bands).index(b) for b in bands], bands


def _spectrum_grid(stamps: StampSet) -> dict[str, Any]:
    attrs = stamps.array_attrs("spectrum")
    return {"loglam_start": float(attrs["loglam_start"]), "loglam_step": float(attrs["loglam_step"]),
            "n_pixels": int(attrs["n_pixels"]), "flux_unit": attrs.get("flux_unit")}


def read_spectra(stamps: StampSet, indices: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Normalised spectra (float16) and valid masks of ``indices``, read in bounded chunks."""
    parts, masks = [], []
    for start in range(0, len(indices), chunk):
        idx = indices[start : start + chunk]
        flux = stamps.array("spectrum", idx)
        ivar = stamps.array("spectrum_ivar", idx) if "spectrum_ivar" in stamps.array_names else np.ones_like(flux)
        values, valid = normalise_spectra(flux, (ivar > 0) & np.isfinite(ivar))
        parts.append(values)
        masks.append(valid)
    n = stamps.array_attrs("spectrum").get("n_pixels", 0)
    if not parts:
        return np.zeros((0, n), np.float16), np.zeros((0, n), bool)
    return np.concatenate(parts), np.concatenate(masks)


def library_star_spectra(survey: str, grid: Mapping[str, Any], seed: int, per_template: int = LIBRARY_STARS_PER_TEMPLATE,
                         snr_levels: Sequence[float] = LIBRARY_STAR_SNR) -> tuple[np.ndarray, np.ndarray]:
    """Noisy spectra of every Pickles stellar template on the model's grid (normalised, float16).

    Each template appears ``per_template`` times per S/N level in ``snr_levels`` (median S/N per
    pixel), with Milky Way reddening E(B-V) drawn uniformly in 0-0.15 mag, through the
    simulator's own spectrum model (:func:`skysort.simulate.spectra.simulate_spectra`).

    Returns
    -------
    spectrum, valid : ndarray
        As :func:`read_spectra`.
    """
    from astropy.table import Table

    from ..simulate import seds
    from ..simulate.presets import load_survey
    from ..simulate.spectra import simulate_spectra

    preset = load_survey(survey)
    names = seds.load_star_library().names
    wave = 10.0 ** (grid["loglam_start"] + grid["loglam_step"] * np.arange(int(grid["n_pixels"])))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4242]))
    parts, masks = [], []
    for level, snr in enumerate(snr_levels):
        n = len(names) * per_template
        table = Table({"index": np.arange(n), "label": np.full(n, "star"), "sed_name": np.repeat(names, per_template),
                       "redshift": np.zeros(n), "ebv": np.zeros(n), "ebv_mw": rng.uniform(0.0, 0.15, n),
                       f"mag_true_{preset.selection.band}": np.full(n, 18.0)})
        result = simulate_spectra(table, preset, seed=seed * 100 + level + 1, snr=float(snr), wave=wave)
        values, valid = normalise_spectra(result["flux"], result["ivar"] > 0)
        parts.append(values)
        masks.append(valid)
    return np.concatenate(parts), np.concatenate(masks)


def _library_survey(stamps: StampSet) -> str:
    """The preset :func:`library_star_spectra` draws through for a training set.

    Library spectra are normalised by their median flux, so the preset (which only scales them
    to a selection-band magnitude) does not change them: a set simulated from a user's preset
    file names a survey that cannot be loaded by name, and the shipped ``sdss`` serves.
    """
    from ..simulate.presets import available_surveys

    name = stamps.meta.survey
    return name if name in available_surveys() else "sdss"


def _labels(stamps: StampSet, indices: np.ndarray) -> np.ndarray:
    return (stamps.column("label", indices).astype(str) == "qso").astype(np.int64)


def _images(stamps: StampSet, indices: np.ndarray, band_index: list[int], stretch: AsinhStretch) -> np.ndarray:
    return stretch(stamps.read_images(indices)[:, band_index]).numpy()


class Dihedral:
    """Random flips and 90-degree rotations of ``batch["image"]``, drawn per stamp."""

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, _, _ = random_dihedral_batch(batch["image"], self.generator)
        return {**batch, "image": images}


#: Most of the wavelength grid lost at each end in the encoder's training (:class:`SpectrumCoverage`).
#: Models trained before this was recorded in the model file (``encoder_augmentation``) lost up to 0.1.
SPECTRUM_COVERAGE_LOSS = 0.3
#: Median S/N per pixel the encoder's noise augmentation degrades spectra to (:class:`SpectrumNoise`):
#: simulated spectra are drawn at S/N 10, while SDSS spectra of r = 21-22 sources hold 2-5.
SPECTRUM_SNR_RANGE = (2.0, 10.0)
#: What models record no augmentation for were trained with: 10% lost at each end, no added noise.
LEGACY_AUGMENTATION = {"coverage_loss": 0.1, "snr_range": None}


def min_trained_coverage(meta: Mapping[str, Any]) -> float:
    """The least grid coverage of a spectrum the model's encoder was trained on (0-1).

    A real spectrum covering less is outside its training, and its class is flagged as unreliable.
    """
    augmentation = meta.get("encoder_augmentation") or LEGACY_AUGMENTATION
    return 1.0 - 2.0 * float(augmentation["coverage_loss"])


class SpectrumCoverage:
    """Random loss of wavelength coverage at the blue and red ends (up to ``max_fraction`` of
    the grid each), so the encoder copes with real spectra that do not fill the grid."""

    def __init__(self, max_fraction: float = SPECTRUM_COVERAGE_LOSS, probability: float = 0.5, seed: int = 0):
        self.max_fraction, self.probability = max_fraction, probability
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        spectrum, valid = batch["spectrum"], batch["spectrum_valid"]
        n, length = spectrum.shape
        g = self.generator
        limit = int(self.max_fraction * length)
        apply = torch.rand(n, generator=g) < self.probability
        # Drawn on the CPU generator and moved: one seed, the same spectra on every device.
        blue = torch.where(apply, torch.randint(0, limit + 1, (n,), generator=g), 0).to(spectrum.device)
        red = torch.where(apply, torch.randint(0, limit + 1, (n,), generator=g), 0).to(spectrum.device)
        position = torch.arange(length, device=spectrum.device).unsqueeze(0)
        keep = (position >= blue.unsqueeze(1)) & (position < (length - red).unsqueeze(1))
        return {**batch, "spectrum": torch.where(keep, spectrum, torch.zeros((), dtype=spectrum.dtype)),
                "spectrum_valid": valid & keep}


class SpectrumNoise:
    """Extra Gaussian noise bringing normalised spectra down to a median S/N per pixel drawn
    log-uniformly in ``snr_range``, so the encoder knows faint objects' spectra.

    The spectra are stored normalised (:func:`~skysort.models.pointsource.normalise_spectra`:
    ``asinh(flux / s)``, ``s`` the median |flux|), so the flux is ``sinh`` of them in units of
    ``s``; noise of standard deviation ``sqrt(1 / snr**2 - 1 / base_snr**2)`` in those units is
    added to the usable pixels and the result normalised again. ``base_snr`` is the S/N the
    spectra already have (white noise; real spectra are noisier under sky lines).
    """

    def __init__(self, snr_range: tuple[float, float] = SPECTRUM_SNR_RANGE, base_snr: float = 10.0, probability: float = 0.5,
                 seed: int = 0):
        if not 0 < snr_range[0] <= snr_range[1]:
            raise ValueError(f"snr_range must be increasing and positive, got {snr_range}")
        self.snr_range, self.base_snr, self.probability = snr_range, base_snr, probability
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        spectrum, valid = batch["spectrum"], batch["spectrum_valid"]
        n = spectrum.shape[0]
        g = self.generator
        low, high = np.log(self.snr_range[0]), np.log(self.snr_range[1])
        snr = torch.exp(low + (high - low) * torch.rand(n, generator=g))
        sigma = torch.sqrt(torch.clamp(1.0 / snr**2 - 1.0 / self.base_snr**2, min=0.0))
        # Drawn on the CPU generator and moved: one seed, the same spectra on every device.
        sigma = torch.where(torch.rand(n, generator=g) < self.probability, sigma, 0.0).to(spectrum.device)
        flux = torch.sinh(spectrum.float()) + sigma.unsqueeze(1) * torch.randn(spectrum.shape, generator=g).to(spectrum.device)
        scale = torch.nanmedian(torch.where(valid, flux.abs(), torch.nan), dim=1).values
        scale = torch.where(torch.isfinite(scale) & (scale > 0), scale, 1.0)
        noisy = torch.where(valid, torch.asinh(flux / scale.unsqueeze(1)), 0.0).to(spectrum.dtype)
        return {**batch, "spectrum": torch.where(sigma.unsqueeze(1) > 0, noisy, spectrum)}


class SpectrumAugmentation:
    """The encoder's training augmentation: :class:`SpectrumNoise`, then :class:`SpectrumCoverage`."""

    def __init__(self, coverage_loss: float = SPECTRUM_COVERAGE_LOSS, snr_range: tuple[float, float] | None = SPECTRUM_SNR_RANGE,
                 seed: int = 0):
        self.coverage = SpectrumCoverage(coverage_loss, seed=seed)
        self.noise = SpectrumNoise(snr_range, seed=seed + 1) if snr_range else None

    @property
    def record(self) -> dict[str, Any]:
        """What the model file records (``encoder_augmentation``)."""
        return {"coverage_loss": self.coverage.max_fraction, "snr_range": list(self.noise.snr_range) if self.noise else None}

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.coverage(self.noise(batch) if self.noise else batch)


# ----------------------------------------------------------------------------- losses and GAN stage


def classification_loss(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]):
    """Cross-entropy on ``label`` with the accuracy as a logged extra."""
    logits = outputs["logits"].float()
    loss = F.cross_entropy(logits, batch["label"])
    return loss, {"accuracy": (logits.argmax(1) == batch["label"]).float().mean()}


# ----------------------------------------------------------------------------- inference helpers


def _device_of(network: nn.Module) -> torch.device:
    return next(network.parameters()).device


@torch.inference_mode()
def _batched(function: Callable[[dict[str, torch.Tensor]], torch.Tensor | tuple], arrays: Mapping[str, np.ndarray], network: nn.Module,
             batch_size: int = 2048) -> np.ndarray:
    """Apply ``function`` to batches of ``arrays`` on the network's device; concatenated as numpy."""
    network.eval()
    device = _device_of(network)
    n = len(next(iter(arrays.values())))
    parts = []
    for start in range(0, n, batch_size):
        batch = {k: torch.as_tensor(np.asarray(v[start : start + batch_size])).to(device) for k, v in arrays.items()}
        parts.append(function(batch).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0,))


def _softmax_qso(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits), dim=1)[:, 1].numpy() if len(logits) else np.zeros(0, np.float32)


def _binary_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    if len(truth) == 0:
        return {"n": 0, "accuracy": float("nan"), "f1": float("nan")}
    # F1 is undefined (NaN, null in JSON) for a subset with no quasar, true or predicted.
    return {"n": int(len(truth)), "accuracy": float(accuracy_score(truth, predicted)),
            "f1": float(f1_score(truth, predicted, pos_label=1, zero_division=np.nan))}


def _error_rate_reduction(accuracy: float, baseline_accuracy: float) -> float:
    """``1 - error / baseline error`` (NaN when the baseline makes no error)."""
    baseline_error = 1.0 - baseline_accuracy
    return float(1.0 - (1.0 - accuracy) / baseline_error) if baseline_error > 0 else float("nan")


# ----------------------------------------------------------------------------- training


def train_pointsource_model(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    val_data: str | os.PathLike | None = None,
    baseline: str | None = None,
    image_bands: Sequence[str] | None = None,
    epochs: int = 30,
    patience: int = 6,
    batch_size: int = 256,
    lr: float = 2e-3,
    max_objects: int | None = None,
    seed: int = 0,
    progress: bool = True,
    command: str | None = None,
    library_stars_per_template: int = LIBRARY_STARS_PER_TEMPLATE,
    coverage_loss: float = SPECTRUM_COVERAGE_LOSS,
    spectrum_snr_range: tuple[float, float] | None = SPECTRUM_SNR_RANGE,
) -> dict[str, Any]:
    """Train a point-source (star / quasar) model and write it to ``out``.

    Parameters
    ----------
    data : path-like
        Stamp set from ``skysort simulate --kind pointsources`` (labels ``star`` / ``qso``,
        arrays ``spectrum`` and ``spectrum_ivar`` on the SDSS log-lambda grid).
    out : path-like
        Model file to write.
    val_data : path-like, optional
        Validation stamp set; default a seeded 10% of ``data``.
    baseline : {None, "image-only"}
        ``"image-only"``: train only the image-only baseline (the same CNN and head, on the same
        split for the same ``seed``) and write it as a stand-alone model. Otherwise train the
        three stages, plus the baseline, stored beside them for :func:`evaluate_pointsource_model`.
    image_bands : sequence of str, optional
        Image bands the model uses, in order (default every band of ``data``).
    epochs, patience : int
        Per stage: epoch limit, and early stopping after ``patience`` epochs without a
        validation-loss improvement.
    batch_size : int
        Training batch size.
    lr : float
        Adam learning rate (every stage).
    max_objects : int, optional
        Use at most this many objects of ``data`` (a seeded random subset).
    seed : int
        Seed of the split, the subset, the augmentation and the weights.
    library_stars_per_template : int
        Spectra of each Pickles template per S/N level added to the encoder's training
        (:func:`library_star_spectra`; 0: none).
    coverage_loss : float
        Most of the wavelength grid lost at each end in the encoder's training
        (:class:`SpectrumCoverage`); spectra covering at least ``1 - 2 * coverage_loss`` of the
        grid are within the model's training.
    spectrum_snr_range : (float, float) or None
        Median S/N per pixel the encoder's training degrades half of the spectra to
        (:class:`SpectrumNoise`; None: no added noise).

    Returns
    -------
    dict
        Validation ``n``, ``accuracy``, ``f1`` (quasar class, fusion model), ``f1_image_only``,
        ``encoder_f1`` (on true spectra), ``feature_cosine_similarity``, total ``epochs`` and
        ``seconds``, plus the per-stage training records under ``stages``.
    """
    # Lightning is imported for training only: it adds seconds to every prediction process's start.
    from ..training.gan import FeatureGanModule
    from ..training.module import OptimConfig, TaskModule, fit

    if baseline not in (None, "image-only"):
        raise InputError("--baseline", f"unknown baseline {baseline!r} (choose image-only)")
    if epochs < 1:
        raise InputError("--epochs", f"need at least one epoch, got {epochs}")
    if not 0 <= coverage_loss < 0.5:
        raise InputError("coverage_loss", f"must lie in [0, 0.5), got {coverage_loss}")
    start_time = time.perf_counter()
    stamps = open_training_set(data)
    only_baseline = baseline == "image-only"
    require_pointsource_set(stamps, spectra=not only_baseline)
    band_index, bands = _band_index(stamps, image_bands)
    n_all = len(stamps)
    chosen = np.arange(n_all)
    if max_objects is not None and max_objects < n_all:
        chosen = np.sort(np.random.default_rng(seed).choice(n_all, size=max_objects, replace=False))
    if val_data is not None:
        val_stamps = open_training_set(val_data)
        require_pointsource_set(val_stamps, spectra=not only_baseline)
        val_band_index, _ = _band_index(val_stamps, bands)
        require_same_imaging(stamps, val_stamps, bands, val_data)
        train_idx, val_idx = chosen, np.arange(len(val_stamps))
    else:
        val_stamps, val_band_index = stamps, band_index
        train_part, val_part = split_indices(len(chosen), [0.9, 0.1], seed=seed)
        train_idx, val_idx = chosen[train_part], chosen[val_part]
    if len(train_idx) < 2 or len(val_idx) < 1:
        raise InputError(data, f"too few objects to train ({len(train_idx)} training, {len(val_idx)} validation)")
    stretch = AsinhStretch.fit(stamps[train_idx], bands, seed=seed)
    train_images = _images(stamps, train_idx, band_index, stretch)
    val_images = _images(val_stamps, val_idx, val_band_index, stretch)
    require_finite_images(train_images, data)
    require_finite_images(val_images, val_data or data, "validation")
    train_labels, val_labels = _labels(stamps, train_idx), _labels(val_stamps, val_idx)
    require_classes(train_labels, CLASSES, data)
    optim = OptimConfig(lr=lr, lr_patience=2)
    options = dict(max_epochs=epochs, patience=patience, progress=progress, seed=seed)

    def loaders(train_arrays, val_arrays, transform, stage_seed):
        train_set = InMemoryBatches(train_arrays, transform)
        val_set = InMemoryBatches(val_arrays)
        return (batch_loader(train_set, batch_size, shuffle=True, seed=stage_seed, drop_last=len(train_set) > batch_size),
                batch_loader(val_set, 2048, shuffle=False))

    image_train = {"image": train_images, "label": train_labels}
    image_val = {"image": val_images, "label": val_labels}
    in_channels = len(bands)
    stages: dict[str, Any] = {}

    # Stage 0: the image-only baseline, on exactly the split the other stages use.
    torch.manual_seed(seed)
    baseline_net = ImageClassifier(in_channels, IMAGE_WIDTHS)
    stages["baseline"] = fit(TaskModule(baseline_net, classification_loss, optim), *loaders(image_train, image_val, Dihedral(seed), seed), **options)
    baseline_val = _binary_metrics(val_labels, _softmax_qso(_batched(lambda b: baseline_net(b)["logits"], {"image": val_images}, baseline_net)) > 0.5)

    common_meta = {
        "task": "pointsource", "classes": CLASSES, "image_bands": bands, "photometry_bands": [],
        "pixel_scale": stamps.meta.pixel_scale, "stamp_size": list(stamps.shape[2:]), "normalisation": stretch.state_dict(),
        "flux_unit": stamps.meta.flux_unit, "zero_points": {b: stamps.meta.zero_points.get(b) for b in bands},
        "psf_fwhm_range": model_seeing_range(stamps, bands), "inference_inputs": "images only",
    }
    training_meta = {
        "data": str(data), "val_data": str(val_data) if val_data else None, "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
        "seed": seed, "batch_size": batch_size, "lr": lr, "max_objects": max_objects, "split": "seeded 90/10 of data" if val_data is None else "val_data",
        # The classifiers' probabilities refer to this balance (unweighted loss); --prior needs it.
        "class_counts": {name: int(np.sum(train_labels == i)) for i, name in enumerate(CLASSES)},
        "data_meta": training_data_meta(stamps),
    }
    if only_baseline:
        seconds = round(time.perf_counter() - start_time, 2)
        metrics = {"n": baseline_val["n"], "accuracy": baseline_val["accuracy"], "f1": baseline_val["f1"], "f1_image_only": baseline_val["f1"]}
        save_model_file(out, baseline_net.state_dict(), {
            **common_meta, "architecture": "ImageClassifier", "architecture_config": baseline_net.config,
            "training": {**training_meta, "stages": {"baseline": stages["baseline"]}, "seconds": seconds},
            "metrics": {f"val_{k}": v for k, v in metrics.items()},
        }, command=command)
        return {**metrics, "epochs": stages["baseline"]["epochs"], "seconds": seconds, "stages": stages}

    grid = _spectrum_grid(stamps)
    if val_data is not None and _spectrum_grid(val_stamps)["n_pixels"] != grid["n_pixels"]:
        raise InputError(val_data, "spectra are on a different wavelength grid from the training set's")
    net = PointSourceNet(in_channels, IMAGE_WIDTHS, SPECTRAL_WIDTHS, with_baseline=True)
    net.baseline.load_state_dict(baseline_net.state_dict())

    # Stage 1: spectral encoder.
    train_spec, train_valid = read_spectra(stamps, train_idx)
    val_spec, val_valid = read_spectra(val_stamps, val_idx)
    library_spec, library_valid = (library_star_spectra(_library_survey(stamps), grid, seed, library_stars_per_template)
                                   if library_stars_per_template > 0 else (train_spec[:0], train_valid[:0]))
    spectral_train = {"spectrum": np.concatenate([train_spec, library_spec]), "spectrum_valid": np.concatenate([train_valid, library_valid]),
                      "label": np.concatenate([train_labels, np.zeros(len(library_spec), np.int64)])}
    del library_spec, library_valid
    spectral_val = {"spectrum": val_spec, "spectrum_valid": val_valid, "label": val_labels}
    torch.manual_seed(seed + 1)
    augmentation = SpectrumAugmentation(coverage_loss, spectrum_snr_range, seed=seed + 1)
    stages["encoder"] = fit(TaskModule(net.spectral, classification_loss, optim),
                            *loaders(spectral_train, spectral_val, augmentation, seed + 1),
                            **(options | {"max_epochs": min(epochs, ENCODER_MAX_EPOCHS)}))
    spectral_arrays = lambda spec, valid: {"spectrum": spec, "spectrum_valid": valid}  # noqa: E731
    encoder_val = _binary_metrics(val_labels, _softmax_qso(_batched(lambda b: net.spectral(b)["logits"], spectral_arrays(val_spec, val_valid), net.spectral)) > 0.5)
    train_features = _batched(lambda b: net.spectral(b)["feature"], spectral_arrays(train_spec, train_valid), net.spectral)
    val_features = _batched(lambda b: net.spectral(b)["feature"], spectral_arrays(val_spec, val_valid), net.spectral)
    del train_spec, train_valid, spectral_train

    # Stage 2: generator against discriminator, to the frozen encoder's features.
    torch.manual_seed(seed + 2)
    generator = net.fusion.generator
    for parameter in generator.parameters():
        parameter.requires_grad_(True)
    discriminator = FeatureDiscriminator(generator.config["feature_dim"], generator.embedding_dim)
    gan = FeatureGanModule(generator, discriminator, net.spectral.classifier[-1], OptimConfig(lr=lr * 0.5), GAN_WEIGHTS)
    stages["generator"] = fit(gan, *loaders({**image_train, "target_feature": train_features},
                                            {**image_val, "target_feature": val_features}, Dihedral(seed + 2), seed + 2), **options)
    for parameter in generator.parameters():
        parameter.requires_grad_(False)
    generated_val = _batched(lambda b: generator(b["image"])[0], {"image": val_images}, generator)
    cosine = float(np.mean(np.sum(generated_val * val_features, 1) / np.maximum(
        np.linalg.norm(generated_val, axis=1) * np.linalg.norm(val_features, axis=1), 1e-12)))

    # Stage 3: fusion classifier; its CNN starts from the generator's, which learned spectral cues.
    torch.manual_seed(seed + 3)
    net.fusion.encoder.load_state_dict(generator.encoder.state_dict())
    stages["fusion"] = fit(TaskModule(net.fusion, classification_loss, optim), *loaders(image_train, image_val, Dihedral(seed + 3), seed + 3), **options)
    fusion_val = _binary_metrics(val_labels, _softmax_qso(_batched(lambda b: net.fusion(b)["logits"], {"image": val_images}, net.fusion)) > 0.5)

    seconds = round(time.perf_counter() - start_time, 2)
    metrics = {
        "n": fusion_val["n"], "accuracy": fusion_val["accuracy"], "f1": fusion_val["f1"],
        "f1_image_only": baseline_val["f1"], "accuracy_image_only": baseline_val["accuracy"],
        "error_rate_reduction": _error_rate_reduction(fusion_val["accuracy"], baseline_val["accuracy"]),
        "encoder_f1": encoder_val["f1"], "feature_cosine_similarity": cosine,
    }
    net.cpu()
    save_model_file(out, net.state_dict(), {
        **common_meta, "architecture": "PointSourceNet", "architecture_config": net.config, "spectrum_grid": grid,
        "spectrum_normalisation": "asinh(flux / median|flux| over valid pixels); valid-pixel mask as a second channel",
        "encoder_augmentation": augmentation.record,
        "encoder_library_stars": {"library": "Pickles 1998", "per_template_per_snr": library_stars_per_template, "snr": list(LIBRARY_STAR_SNR)},
        "gan_weights": GAN_WEIGHTS, "baseline": "image-only ImageClassifier stored under 'baseline.' (same CNN, same split)",
        "training": {**training_meta, "stages": stages, "seconds": seconds},
        "metrics": {f"val_{k}": v for k, v in metrics.items()},
    }, command=command)
    total_epochs = sum(s["epochs"] for s in stages.values())
    return {**metrics, "epochs": total_epochs, "seconds": seconds, "stages": stages}


# ----------------------------------------------------------------------------- loading and prediction


def load_pointsource_model(model: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a point-source model file (path or shipped name): a :class:`PointSourceNet`, or an
    :class:`ImageClassifier` for a stand-alone image-only baseline."""
    path = resolve_model(model)
    meta, state = load_model_file(path)
    return _network_from(path, meta, state).to(device), meta


def _network_from(path: Path, meta: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> nn.Module:
    if meta.get("task") != "pointsource":
        raise InputError(path, f"not a point-source model (task {meta.get('task')!r})")
    architecture = meta.get("architecture")
    config = meta.get("architecture_config") or {}
    if architecture == "PointSourceNet":
        network: nn.Module = PointSourceNet.from_config(config)
    elif architecture == "ImageClassifier":
        network = ImageClassifier(config["in_channels"], config["widths"], config["hidden"], config["n_classes"])
    else:
        raise InputError(path, f"unknown point-source architecture {architecture!r}")
    network.load_state_dict(state)
    network.eval()
    return network


def _image_logits(network: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return network({"image": images})["logits"]


class PointSourcePredictor(TorchPredictor):
    """:class:`~skysort.inference.predictor.Predictor` of a point-source model: classes
    ``star`` / ``qso`` from image stamps alone (the fusion of the image CNN and the generated
    spectral feature, or the image-only CNN of a baseline model file).

    Stamps larger than the training size (e.g. 64 px cutouts shared with other models) are
    centre-cropped to it; smaller ones are refused."""

    task = "pointsource"

    def __init__(self, network: nn.Module, meta: dict[str, Any], model_file: Path, device: str = "cpu"):
        self.stretch = AsinhStretch.from_state_dict(meta["normalisation"])
        self.input_size = tuple(int(v) for v in meta["stamp_size"])
        spec = InputSpec(image_bands=list(meta["image_bands"]), stamp_size=None, pixel_scale=meta.get("pixel_scale"),
                         cut_size=self.input_size, zero_points=meta.get("zero_points"))
        super().__init__(network, meta, model_file, spec, device, CLASSES)

    @torch.inference_mode()
    def predict(self, inputs: Mapping[str, np.ndarray], *, images_available: bool = True) -> dict[str, np.ndarray]:
        if not images_available or "image" not in inputs:
            raise InputError(self.name, "point-source models need image stamps (spectra are not used at inference)")
        images = np.asarray(inputs["image"], np.float32)
        if images.ndim != 4 or images.shape[-2] < self.input_size[0] or images.shape[-1] < self.input_size[1]:
            raise InputError(self.name, f"images must be (N, {len(self.spec.image_bands)}, H, W) with H, W at least "
                                        f"{self.input_size[0]}x{self.input_size[1]} px, got {images.shape}")
        images = np.ascontiguousarray(centre_crop(images, self.input_size))
        if len(images) == 0:
            return {"probabilities": np.zeros((0, len(self.classes)), np.float32)}
        blank = stamps_without_pixels(images)
        probabilities = torch.softmax(_image_logits(self.network, self.stretch(images).to(self.device)).float(), dim=1).cpu().numpy()
        probabilities[blank] = np.nan
        return {"probabilities": probabilities.astype(np.float32)}


def predictor_from_file(path: Path, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str = "cpu") -> PointSourcePredictor:
    """The point-source task's entry for :func:`skysort.inference.predictor.load_predictor`."""
    return PointSourcePredictor(_network_from(Path(path), meta, state), meta, Path(path), device)


# ----------------------------------------------------------------------------- real spectra


def encode_real_spectrum(model: str | os.PathLike | PointSourceNet, wave: np.ndarray, flux: np.ndarray,
                         valid: np.ndarray | None = None, *, ivar: np.ndarray | None = None,
                         grid: Mapping[str, Any] | None = None, min_coverage: float | None = None) -> dict[str, Any]:
    """Resample a real spectrum onto the model's grid and classify it with the spectral encoder.

    Parameters
    ----------
    model : path-like, shipped name or PointSourceNet
        A point-source model (with ``grid`` when a network is passed).
    wave, flux, valid : ndarray
        Vacuum wavelengths [A], f_lambda (any unit) and usable pixels (see :func:`~skysort.data.spectra.read_real_spectrum`).
    ivar : ndarray, optional
        Inverse variance of ``flux``; it weights the input pixels that share a grid pixel
        (:func:`~skysort.data.spectra.resample_spectrum`).
    grid : mapping, optional
        ``loglam_start``, ``loglam_step``, ``n_pixels`` (default the model file's ``spectrum_grid``).
    min_coverage : float, optional
        The least coverage the encoder was trained on (default from the model file,
        :func:`min_trained_coverage`; with a network and no value, 0.8, the least any model was
        trained on).

    Returns
    -------
    dict
        ``class`` (``"star"`` / ``"qso"``), ``p_qso``, ``feature`` (128-d), ``coverage``
        (fraction of the grid covered), ``reliable`` (False when the coverage is below
        ``min_coverage``; a warning says so: the model shipped before encoders were trained on
        partial spectra called a real quasar with its spectrum red of 7000 A masked a star).
    """
    if isinstance(model, PointSourceNet):
        network = model
        if grid is None:
            raise InputError("grid", "the wavelength grid is needed with a network")
        if min_coverage is None:
            min_coverage = min_trained_coverage({})
    else:
        network, meta = _spectral_model(model)
        grid = grid or meta["spectrum_grid"]
        if min_coverage is None:
            min_coverage = min_trained_coverage(meta)
    result = _encode_spectrum(network, grid, min_coverage, wave, flux, valid, ivar)
    if not result["reliable"]:
        import warnings

        warnings.warn(f"the spectrum covers {result['coverage']:.0%} of the model's wavelength grid; the encoder was trained "
                      f"on spectra covering at least {min_coverage:.0%}, so its class is unreliable", UserWarning, stacklevel=2)
    return result


def _spectral_model(model: str | os.PathLike) -> tuple[PointSourceNet, dict[str, Any]]:
    network, meta = load_pointsource_model(model)
    if not isinstance(network, PointSourceNet):
        raise InputError(model, "an image-only baseline model has no spectral encoder")
    return network, meta


def _encode_spectrum(network: PointSourceNet, grid: Mapping[str, Any], min_coverage: float, wave: np.ndarray,
                     flux: np.ndarray, valid: np.ndarray | None, ivar: np.ndarray | None = None,
                     where: str | os.PathLike = "spectrum") -> dict[str, Any]:
    """:func:`encode_real_spectrum` without its warning (``reliable`` says the same)."""
    usable_input = np.isfinite(np.asarray(flux, float))
    if valid is not None:
        usable_input &= np.asarray(valid, bool)
    if ivar is not None:
        usable_input &= np.asarray(ivar, float) > 0
    if not usable_input.any():
        raise InputError(where, "no usable pixel: the inverse variance or error is 0, or the flux not finite, everywhere")
    resampled, usable = resample_spectrum(wave, flux, valid, loglam_start=grid["loglam_start"], loglam_step=grid["loglam_step"],
                                          n_pixels=int(grid["n_pixels"]), ivar=ivar)
    if not usable.any():
        raise InputError(where, "the spectrum does not overlap the model's wavelength grid")
    spectrum, mask = normalise_spectra(resampled, usable)
    network.eval()
    device = _device_of(network)
    with torch.inference_mode():
        out = network.spectral({"spectrum": torch.as_tensor(spectrum).to(device), "spectrum_valid": torch.as_tensor(mask).to(device)})
    p_qso = float(torch.softmax(out["logits"].float(), dim=1)[0, 1])
    coverage = float(usable.mean())
    return {"class": CLASSES[int(p_qso > 0.5)], "p_qso": p_qso, "feature": out["feature"][0].float().cpu().numpy(),
            "coverage": coverage, "reliable": coverage >= min_coverage}


def classify_real_spectra(model: str | os.PathLike, paths: Sequence[str | os.PathLike], *, threshold: float | None = None,
                          progress: bool = False):
    """Classify real 1-D spectra (one FITS file each) with a point-source model's spectral encoder.

    Parameters
    ----------
    model : path-like or shipped name
        A point-source model with a spectral encoder (e.g. ``pointsource-sdss``).
    paths : sequence of path-like
        Spectrum files in any layout :func:`~skysort.data.spectra.read_real_spectrum` reads.
    threshold : float, optional
        A spectrum is called ``qso`` when its p_qso exceeds this (default 0.5).
    progress : bool
        Show a progress bar.

    Returns
    -------
    astropy.table.Table
        One row per file, in the given order: ``file``, ``class``, ``p_star``, ``p_qso``,
        ``coverage`` (fraction of the model's wavelength grid the spectrum covers), ``reliable``
        (coverage at least what the encoder was trained on, :func:`min_trained_coverage`) and
        ``layout`` (as :func:`~skysort.data.spectra.read_real_spectrum` found it). ``meta`` records the model, its grid,
        the trained coverage and the threshold.

    Raises
    ------
    InputError
        A file that is missing or unreadable, or does not overlap the model's grid (naming it).
    """
    from astropy.table import Table

    from .._progress import progress_bar
    from ..inference.predictor import ClassDecision

    ClassDecision(threshold=threshold)  # the images' check of a threshold
    network, meta = _spectral_model(model)
    grid, min_coverage = meta["spectrum_grid"], min_trained_coverage(meta)
    cut = 0.5 if threshold is None else float(threshold)
    rows = []
    with progress_bar(len(paths), "spectra", unit="spec", enabled=progress) as advance:
        for path in paths:
            spectrum = read_real_spectrum(path)
            result = _encode_spectrum(network, grid, min_coverage, spectrum["wave"], spectrum["flux"], spectrum["valid"],
                                      spectrum["ivar"], where=path)
            rows.append((str(path), CLASSES[int(result["p_qso"] > cut)], 1.0 - result["p_qso"], result["p_qso"],
                         result["coverage"], result["reliable"], spectrum["source"]))
            advance(1)
    table = Table(rows=rows, names=("file", "class", "p_star", "p_qso", "coverage", "reliable", "layout"),
                  dtype=(str, str, float, float, float, bool, str))
    table["coverage"].description = "fraction of the model's wavelength grid the spectrum covers"
    table["reliable"].description = f"coverage at least {min_coverage:.0%}, the least the encoder was trained on"
    table.meta.update({"task": "pointsource", "inputs": "real spectra (spectral encoder)", "model": str(resolve_model(model)),
                       "spectrum_grid": dict(grid), "min_trained_coverage": min_coverage, "threshold": cut})
    return table


# ----------------------------------------------------------------------------- evaluation


def _bin_metrics(truth: np.ndarray, predicted: np.ndarray, baseline: np.ndarray | None, values: np.ndarray,
                 edges: Sequence[float], name: str) -> list[dict[str, Any]]:
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (values >= lo) & (values < hi)
        if not inside.any():
            continue
        row = {f"{name}_min": float(lo), f"{name}_max": float(hi), **_binary_metrics(truth[inside], predicted[inside])}
        if baseline is not None:
            base = _binary_metrics(truth[inside], baseline[inside])
            row.update({"accuracy_image_only": base["accuracy"], "f1_image_only": base["f1"],
                        "error_rate_reduction": _error_rate_reduction(row["accuracy"], base["accuracy"])})
        rows.append(row)
    return rows


def _plot_binned(rows: list[dict[str, Any]], name: str, label: str, path: Path, metric: str, title: str) -> Path:
    from ..evaluation.plots import _save, plt

    fig, ax = plt.subplots(figsize=(6, 4))
    centres = [(r[f"{name}_min"] + r[f"{name}_max"]) / 2 for r in rows]
    ax.plot(centres, [r[metric] for r in rows], "o-", label="image + generated spectral feature")
    if rows and f"{metric}_image_only" in rows[0]:
        ax.plot(centres, [r[f"{metric}_image_only"] for r in rows], "s--", label="image only (same CNN)")
    ax.set_xlabel(label)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _plot_features(true: np.ndarray, generated: np.ndarray, labels: np.ndarray, path: Path, max_points: int = 4000) -> Path:
    from sklearn.decomposition import PCA

    from ..evaluation.plots import _save, plt

    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(true), size=min(max_points, len(true)), replace=False))
    pca = PCA(n_components=2).fit(true)
    t, g = pca.transform(true[pick]), pca.transform(generated[pick])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True, sharey=True)
    for ax, points, title in ((axes[0], t, "encoder features of the true spectra"), (axes[1], g, "generated from images")):
        for value, name, colour in ((0, "star", "tab:red"), (1, "qso", "tab:green")):
            chosen = labels[pick] == value
            ax.scatter(points[chosen, 0], points[chosen, 1], s=3, alpha=0.4, c=colour, label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("PC 1")
        ax.legend(markerscale=4, fontsize=8)
    axes[0].set_ylabel("PC 2")
    fig.suptitle(f"128-d spectral features, PCA fitted on the true ones ({pca.explained_variance_ratio_[:2].sum():.1%} of variance)", fontsize=10)
    return _save(fig, path)


def evaluate_pointsource_model(
    model: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    baseline_model: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Evaluate a point-source model on a labelled point-source stamp set.

    The image-only comparison uses ``baseline_model`` when given (a model trained with
    ``--baseline image-only``), else the baseline network stored inside the model (trained on
    the same split); without either, image-only metrics are omitted.

    Writes into ``out_dir``: ``metrics.json`` (``n``, ``accuracy``, ``f1`` (quasar class),
    ``f1_image_only``, ``accuracy_image_only``, ``error_rate_reduction``; with spectra in
    ``data``: ``encoder_f1`` and ``encoder_accuracy`` on the true spectra,
    ``f1_true_spectral_features`` (the fusion head fed the encoder's true-spectrum features,
    an upper bound), ``feature_cosine_similarity`` (mean over objects) and its quartiles;
    ``by_magnitude`` (r-band true magnitude bins: n, accuracy, F1 and the image-only ones,
    error-rate reduction) and ``by_redshift`` (quasars: completeness, image-only completeness,
    error-rate reduction)), ``predictions.parquet`` and PNG plots (F1 and accuracy vs magnitude,
    quasar completeness vs redshift, PCA of true vs generated features), all of them or none
    (:func:`skysort.evaluation.evaluation_folder`). Stamps without a finite
    pixel in the model's bands are left out of all of them and counted as ``n_without_pixels``.
    """
    from ..data.catalog import write_catalog
    from ..evaluation import evaluation_folder
    from ..evaluation.blend_metrics import source_provenance, write_metrics_json

    from astropy.table import Table

    out_dir = Path(out_dir)
    path = resolve_model(model)
    network, meta = load_pointsource_model(path)
    stamps = StampSet.open(data)
    require_pointsource_set(stamps, spectra=False)
    band_index, bands = _band_index(stamps, meta["image_bands"])
    stamps, n_blank = without_blank_stamps(stamps, stampset_without_pixels(stamps, band_index))
    input_size = tuple(int(v) for v in meta["stamp_size"])
    if any(have < want for have, want in zip(stamps.shape[2:], input_size)):
        raise InputError(stamps.path, f"stamps are {stamps.shape[2]}x{stamps.shape[3]} px, smaller than the model's "
                                      f"{input_size[0]}x{input_size[1]} px input")
    stretch = AsinhStretch.from_state_dict(meta["normalisation"])
    baseline_net: nn.Module | None = None
    if baseline_model is not None:
        baseline_net, baseline_meta = load_pointsource_model(baseline_model)
        if baseline_meta["image_bands"] != meta["image_bands"] or baseline_meta["stamp_size"] != meta["stamp_size"]:
            raise InputError(baseline_model, "the baseline model uses other bands or stamp size than the model")
        baseline_stretch = AsinhStretch.from_state_dict(baseline_meta["normalisation"])
        baseline_net = baseline_net.baseline if isinstance(baseline_net, PointSourceNet) else baseline_net
    elif isinstance(network, PointSourceNet) and network.baseline is not None:
        baseline_net, baseline_stretch = network.baseline, stretch
    has_spectra = isinstance(network, PointSourceNet) and "spectrum" in stamps.array_names

    n = len(stamps)
    truth = _labels(stamps, np.arange(n))
    p_qso, p_base, generated, true_features, p_encoder, p_upper = [], [], [], [], [], []
    with torch.inference_mode():
        for start in range(0, n, 4096):
            idx = np.arange(start, min(n, start + 4096))
            # Larger stamps are centre-cropped, as skysort predict does.
            raw = np.ascontiguousarray(centre_crop(stamps.read_images(idx)[:, band_index], input_size))
            images = stretch(raw)
            if isinstance(network, PointSourceNet):
                feature, _ = network.fusion.generator(images)
                p_qso.append(torch.softmax(network.fusion.classify(images, feature), 1)[:, 1].numpy())
                generated.append(feature.numpy())
            else:
                p_qso.append(torch.softmax(network({"image": images})["logits"], 1)[:, 1].numpy())
            if baseline_net is not None:
                p_base.append(torch.softmax(baseline_net({"image": baseline_stretch(raw)})["logits"], 1)[:, 1].numpy())
            if has_spectra:
                spec, valid = read_spectra(stamps, idx)
                out = network.spectral({"spectrum": torch.as_tensor(spec), "spectrum_valid": torch.as_tensor(valid)})
                true_features.append(out["feature"].numpy())
                p_encoder.append(torch.softmax(out["logits"], 1)[:, 1].numpy())
                p_upper.append(torch.softmax(network.fusion.classify(images, out["feature"]), 1)[:, 1].numpy())
            if progress:
                progress(len(idx))
    p_qso = np.concatenate(p_qso) if p_qso else np.zeros(0)
    predicted = (p_qso > 0.5).astype(np.int64)
    metrics: dict[str, Any] = {"model": str(model), "data": str(data), **_binary_metrics(truth, predicted),
                               "n_without_pixels": n_blank, "source_provenance": source_provenance(path, meta, stamps.meta.seed)}
    from sklearn.metrics import f1_score

    metrics["f1_macro"] = float(f1_score(truth, predicted, average="macro", zero_division=0)) if n else float("nan")
    metrics["calibration"] = calibration_metrics(truth, np.stack([1 - p_qso, p_qso], axis=1), CLASSES)
    base_predicted = None
    if baseline_net is not None:
        base_predicted = (np.concatenate(p_base) > 0.5).astype(np.int64)
        base = _binary_metrics(truth, base_predicted)
        metrics.update({"f1_image_only": base["f1"], "accuracy_image_only": base["accuracy"],
                        "error_rate_reduction": _error_rate_reduction(metrics["accuracy"], base["accuracy"]),
                        "image_only_source": str(baseline_model) if baseline_model else "baseline stored in the model (same split)"})
    if has_spectra:
        true_features, generated = np.concatenate(true_features), np.concatenate(generated)
        encoder = _binary_metrics(truth, (np.concatenate(p_encoder) > 0.5).astype(np.int64))
        upper = _binary_metrics(truth, (np.concatenate(p_upper) > 0.5).astype(np.int64))
        cosine = np.sum(true_features * generated, 1) / np.maximum(np.linalg.norm(true_features, axis=1) * np.linalg.norm(generated, axis=1), 1e-12)
        metrics.update({"encoder_f1": encoder["f1"], "encoder_accuracy": encoder["accuracy"],
                        "f1_true_spectral_features": upper["f1"], "accuracy_true_spectral_features": upper["accuracy"],
                        "feature_cosine_similarity": float(np.mean(cosine)),
                        "feature_cosine_similarity_quartiles": np.percentile(cosine, [25, 50, 75]).tolist(),
                        "feature_cosine_similarity_by_class": {c: float(np.mean(cosine[truth == i])) for i, c in enumerate(CLASSES) if (truth == i).any()}})
    # Simulated sets bin by the true r magnitude; real ones by catalogue r or a 6" aperture on the r stamps.
    true_columns = sorted((c for c in stamps.columns if c.startswith("mag_true_")), key=lambda c: c != "mag_true_r")
    mags, mag_source = binning_r_magnitudes(stamps, [*true_columns, "mag_r"])
    if mags is not None:
        metrics["by_magnitude"] = _bin_metrics(truth, predicted, base_predicted, mags, np.arange(14.0, 23.01, 1.0), "mag")
        metrics["magnitude_source"] = mag_source
    if "redshift" in stamps.columns:
        z = np.asarray(stamps.column("redshift"), float)
        quasars = truth == 1
        rows = _bin_metrics(truth[quasars], predicted[quasars], None if base_predicted is None else base_predicted[quasars], z[quasars],
                            [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 5.0], "z")
        for row in rows:
            # Quasars only: F1 would merely restate the completeness (no false positives here).
            row["completeness"] = row.pop("accuracy")
            row.pop("f1", None)
            if "accuracy_image_only" in row:
                row["completeness_image_only"] = row.pop("accuracy_image_only")
                row.pop("f1_image_only", None)
        metrics["by_redshift"] = rows
    table = Table()
    table["id"] = stamps.column("id")
    table["p_star"] = (1 - p_qso).astype(np.float32)
    table["p_qso"] = p_qso.astype(np.float32)
    table["class"] = np.asarray(CLASSES)[predicted] if n else np.zeros(0, str)
    table["true_class"] = np.asarray(CLASSES)[truth] if n else np.zeros(0, str)
    if base_predicted is not None:
        table["p_qso_image_only"] = np.concatenate(p_base).astype(np.float32)
    if has_spectra:
        table["feature_cosine_similarity"] = cosine.astype(np.float32)
    if mags is not None:
        table["r_mag"] = mags.astype(np.float32)
    if "redshift" in stamps.columns:
        table["redshift"] = stamps.column("redshift")
    with evaluation_folder(out_dir) as folder:
        plots = []
        if mags is not None:
            label = f"{mag_source} (AB)"
            plots.append(_plot_binned(metrics["by_magnitude"], "mag", label, folder / "f1_vs_magnitude.png", "f1", "F1 (quasars) vs magnitude"))
            plots.append(_plot_binned(metrics["by_magnitude"], "mag", label, folder / "accuracy_vs_magnitude.png", "accuracy", "accuracy vs magnitude"))
        if "by_redshift" in metrics:
            plots.append(_plot_binned(metrics["by_redshift"], "z", "quasar redshift", folder / "qso_completeness_vs_redshift.png", "completeness",
                                      "quasars classified as quasars, per redshift bin"))
        if has_spectra and n >= 3:
            plots.append(_plot_features(true_features, generated, truth, folder / "features_pca.png"))
        if metrics["calibration"]:
            plots.append(plot_reliability(metrics["calibration"], folder / "reliability.png",
                                          title=f"{Path(str(model)).stem}: ECE {metrics['calibration']['ece']:.4f}"))
        # The paths the plots will have, not those of the temporary folder.
        metrics["plots"] = [str(out_dir / p.name) for p in plots]
        write_catalog(table, folder / "predictions.parquet")
        write_metrics_json(metrics, folder / "metrics.json", command=command)
    return metrics


def _augmentation_line(meta: Mapping[str, Any]) -> str:
    """The card's line on the spectral encoder's training augmentation."""
    recorded = meta.get("encoder_augmentation")
    augmentation = recorded or LEGACY_AUGMENTATION
    snr = augmentation["snr_range"]
    return (f"- spectral encoder augmentation{'' if recorded else ' (not recorded in the file; the code of its time)'}: "
            f"up to {augmentation['coverage_loss']:.0%} of the grid lost at each end, so real spectra covering at least "
            f"{min_trained_coverage(meta):.0%} of it are within its training; "
            + (f"half of the spectra degraded to S/N {snr[0]:g}-{snr[1]:g} per pixel" if snr else "no noise added"))


def write_model_card(model: str | os.PathLike, metrics_path: str | os.PathLike, out: str | os.PathLike, *, test_description: str,
                     real_spectra: Sequence[Mapping[str, Any]] = (), notes: Sequence[str] = ()) -> Path:
    """Write a Markdown model card from a model file's metadata and an evaluation ``metrics.json``.

    Parameters
    ----------
    model : path-like
        The model file.
    metrics_path : path-like
        ``metrics.json`` of :func:`evaluate_pointsource_model` on the held-out test set.
    out : path-like
        The card (``NAME.md`` beside ``NAME.pt`` for a shipped model).
    test_description : str
        How the test set was made.
    real_spectra : sequence of mapping
        Rows ``{"file", "truth", "class", "p_qso"}`` of real spectra classified by the encoder.
    notes : sequence of str
        Known limitations, one bullet each.
    """
    from ..models.card import write_card

    path = resolve_model(model)
    meta, state = load_model_file(path)
    m = json.loads(Path(metrics_path).read_text())
    training = meta.get("training", {})
    simulation = (training.get("data_meta") or {}).get("simulation") or {}
    n_parameters = sum(int(t.numel()) for t in state.values() if hasattr(t, "numel"))

    def fmt(value, digits=4):
        return "-" if value is None else f"{float(value):.{digits}f}"

    lines = [
        f"# {Path(out).stem}: star vs quasar for point sources (images, with spectral knowledge)", "",
        f"- created {meta.get('created')} by {meta.get('creator')}; model format version {meta.get('format_version')}",
        f"- command: `{meta.get('command')}`",
        f"- architecture: {meta.get('architecture')} {meta.get('architecture_config')}, {n_parameters:,} parameters "
        f"({path.stat().st_size / 1e6:.2f} MB)",
        f"- input at inference: {meta.get('image_bands')} image stamps, {meta.get('stamp_size')} px at {meta.get('pixel_scale')}\"/px, "
        f"in nanomaggies; normalisation asinh(flux / softening) per band, softening {meta.get('normalisation', {}).get('softening')}",
        "- output: p(star), p(qso); spectra are needed for training only",
        f"- spectral encoder grid: {meta.get('spectrum_grid')}", "",
        "## Method", "",
        "Wang et al. (2023, PASP, doi 10.1088/1538-3873/acfbb9): (1) a 1-D ResNet encodes spectra into 128-d features and "
        "classifies them; (2) a conditional GAN generates that feature from the image alone (generator loss weights "
        f"{meta.get('gan_weights')}); (3) a fusion classifier uses the image plus the generated feature. The image-only baseline "
        "(the same CNN and head) was trained on the same split and is stored in the file.", "",
        "## Training data", "",
        f"- {training.get('data')}: simulated {simulation.get('survey', '')} {simulation.get('kind', '')}, balanced "
        f"{simulation.get('balanced')}, r <= {simulation.get('mag_max')}, stamps {simulation.get('stamp_size')} px, spectra S/N "
        f"{simulation.get('spectra_snr')} per pixel, seed {simulation.get('seed')}"
        + "".join(f", population {key}={value}" for key, value in simulation.get("population") or []),
        f"- {training.get('n_train'):,} training / {training.get('n_val'):,} validation objects ({training.get('split')}), "
        f"batch {training.get('batch_size')}, lr {training.get('lr')}",
        f"- {training.get('seconds')} s in total; epochs per stage: "
        + ", ".join(f"{k} {v.get('epochs')}" for k, v in (training.get("stages") or {}).items()),
        _augmentation_line(meta), "",
        "## Measured performance (held-out test set)", "",
        f"Test set: {test_description}", "",
        "| quantity | value |", "|---|---|",
        f"| objects | {m.get('n')} |",
        f"| F1 (quasars), image + generated spectral feature | {fmt(m.get('f1'))} |",
        f"| accuracy, image + generated spectral feature | {fmt(m.get('accuracy'))} |",
        f"| F1, image only (same CNN, same split) | {fmt(m.get('f1_image_only'))} |",
        f"| accuracy, image only | {fmt(m.get('accuracy_image_only'))} |",
        f"| error-rate reduction vs image only | {fmt(m.get('error_rate_reduction'), 3)} |",
        f"| spectral encoder F1 on the true spectra | {fmt(m.get('encoder_f1'))} |",
        f"| F1 with the true spectral features (upper bound) | {fmt(m.get('f1_true_spectral_features'))} |",
        f"| mean cosine similarity, generated vs true feature | {fmt(m.get('feature_cosine_similarity'), 3)} |", "",
        "Per r-band magnitude bin:", "", "| r | n | F1 | F1 image only | accuracy | accuracy image only |", "|---|---|---|---|---|---|",
    ]
    for row in m.get("by_magnitude", []):
        lines.append(f"| {row['mag_min']:.0f}-{row['mag_max']:.0f} | {row['n']} | {fmt(row['f1'])} | {fmt(row.get('f1_image_only'))} | "
                     f"{fmt(row['accuracy'])} | {fmt(row.get('accuracy_image_only'))} |")
    lines += ["", "Quasar completeness per redshift bin:", "", "| z | n | completeness | image only |", "|---|---|---|---|"]
    for row in m.get("by_redshift", []):
        lines.append(f"| {row['z_min']:.1f}-{row['z_max']:.1f} | {row['n']} | {fmt(row['completeness'])} | {fmt(row.get('completeness_image_only'))} |")
    if real_spectra:
        lines += ["", "## Real spectra (spectral encoder)", "", "| file | true class | predicted | p(qso) |", "|---|---|---|---|"]
        lines += [f"| {r['file']} | {r['truth']} | {r['class']} | {r['p_qso']:.3f} |" for r in real_spectra]
    return write_card(out, lines + [""], notes)
