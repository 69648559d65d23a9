"""Blend identification: train, predict and evaluate the single-model blend classifier.

The model (:class:`~skysort.models.blend.BlendNet`) is trained once for all noise levels:
training stamps are drawn at low noise and, batch by batch, receive extra Gaussian noise up to
a random level in ``noise_range`` (noise augmentation), plus random flips and 90-degree
rotations; each stamp is normalised by its own noise. It also predicts the number of sources
and the companion's offset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from astropy.table import Table

from ..data.dataset import random_dihedral_batch
from ..data.stampset import StampSet, stamps_without_pixels
from ..errors import InputError
from ..evaluation.blend_metrics import blended_truth
from ..inference.predictor import ClassDecision, InputSpec, TorchPredictor, stampset_without_pixels, without_blank_stamps
from ..models.blend import OFFSET_SCALE_PX, BlendNet, blend_loss
from ..models.checkpoint import load_model_file, save_model_file
from ..models.registry import resolve_model
from ..training.data import (InMemoryStamps, batch_loader, model_seeing_range, open_training_set, require_classes,
                             require_finite_images, require_same_imaging, split_indices, training_data_meta)

CLASSES = ["isolated", "blended"]
PADDING_PX = 7


def require_blend_set(stamps: StampSet) -> None:
    """Refuse a set that is not one band with the blend truth columns (``skysort simulate --kind blends``)."""
    missing = [c for c in ("blended", "companion_dx", "companion_dy") if c not in stamps.columns]
    if missing or stamps.shape[1] != 1:
        raise InputError(stamps.path, f"not a blend stamp set (needs one band and columns blended, companion_dx, companion_dy; missing {missing})")
    blended_truth(stamps.column("blended"), stamps.path)


def blend_targets(stamps: StampSet) -> dict[str, np.ndarray]:
    """Training targets: ``blended`` (0/1), ``offset`` (companion dx, dy in 10-px units, 0 if
    isolated) and ``noise_sigma`` (counts, the set's noise)."""
    require_blend_set(stamps)
    blended = blended_truth(stamps.column("blended"), stamps.path).astype(np.int64)
    dx = np.nan_to_num(np.asarray(stamps.column("companion_dx"), float))
    dy = np.nan_to_num(np.asarray(stamps.column("companion_dy"), float))
    offset = np.stack([dx, dy], axis=1).astype(np.float32) / OFFSET_SCALE_PX
    if "noise_sigma" in stamps.columns:
        sigma = np.asarray(stamps.column("noise_sigma"), np.float32)
    else:
        sigma = np.full(len(stamps), float(stamps.meta.extra.get("sky_sigma", {}).get(stamps.meta.bands[0], 0.0)), np.float32)
    return {"blended": blended, "offset": offset, "noise_sigma": sigma}


def dihedral_offsets(offset: torch.Tensor, k: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Offsets ``(dx, dy)`` (x = column, y = row) after ``torch.rot90(image, k, dims=(-2, -1))``
    and then, where ``flip``, a flip of the columns."""
    dx, dy = offset[:, 0].clone(), offset[:, 1].clone()
    for step in range(3):
        # One rot90 maps pixel (row, col) -> (W-1-col, row): dx' = dy, dy' = -dx.
        turn = k > step
        dx, dy = torch.where(turn, dy, dx), torch.where(turn, -dx, dy)
    dx = torch.where(flip, -dx, dx)
    return torch.stack([dx, dy], dim=1)


class BlendAugmentation:
    """Random dihedral transforms and extra noise up to a random level per stamp.

    Parameters
    ----------
    noise_range : (float, float)
        Target noise sigma range (counts); stamps noisier than the drawn target keep their noise.
    padding : int
        Zero padding width, kept at zero.
    seed : int
        Seed of the augmentation random numbers.
    """

    def __init__(self, noise_range: tuple[float, float] | None = (5.0, 35.0), padding: int = PADDING_PX, seed: int = 0):
        self.noise_range = noise_range
        self.padding = padding
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images = batch["image"].clone()
        n = images.shape[0]
        g = self.generator
        if self.noise_range is not None:
            low, high = self.noise_range
            # Drawn on the CPU generator and moved: one seed, the same noise on every device.
            target = (low + (high - low) * torch.rand(n, generator=g)).to(images.device)
            extra = torch.sqrt(torch.clamp(target**2 - batch["noise_sigma"].float() ** 2, min=0.0)).view(-1, 1, 1, 1)
            p = self.padding
            region = images[..., p : images.shape[-2] - p, p : images.shape[-1] - p]
            region += extra * torch.randn(region.shape, generator=g).to(images.device)
        images, k, flip = random_dihedral_batch(images, g)
        out = dict(batch)
        out["image"] = images
        out["offset"] = dihedral_offsets(batch["offset"], k, flip)
        return out


def train_blend_model(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    val_data: str | os.PathLike | None = None,
    epochs: int = 30,
    patience: int = 6,
    batch_size: int = 256,
    noise_range: tuple[float, float] | None = (4.0, 36.0),
    widths: Sequence[int] = (16, 32, 64, 96),
    lr: float = 2e-3,
    seed: int = 0,
    max_objects: int | None = None,
    init: str | os.PathLike | None = None,
    false_positive_rate: float | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train a :class:`BlendNet` on a blend stamp set and save it as a skysort model file.

    Parameters
    ----------
    data : path-like
        Training stamp set (``skysort simulate --kind blends``); 10% is held out for
        validation unless ``val_data`` is given.
    out : path-like
        Model file to write.
    noise_range : (float, float) or None
        Noise augmentation target range in counts (None: no extra noise). Targets below a
        stamp's own noise leave it as it is, so a lower bound under the training set's noise
        keeps some stamps at their native noise.
    max_objects : int, optional
        Use at most this many training stamps.
    init : str or path-like, optional
        A BlendNet model (file or shipped name) whose architecture and weights start the
        training (fine-tuning, e.g. on realistic galaxies); ``widths`` is then ignored.
    false_positive_rate : float, optional
        Needs ``val_data``: after training, the blend logit's bias is moved so that
        ``p_blended > 0.5`` calls this fraction of the validation set's isolated stamps
        blended (the decision threshold set on galaxies unseen in training, e.g. a
        ``--real-galaxies train-check`` set; a monotone change: the ranking of stamps is
        kept). Recorded as ``training.decision_calibration``.

    Returns
    -------
    dict
        Training record: history, validation metrics, sizes and times.
    """
    from ..training.module import OptimConfig, TaskModule, fit, seed_everything  # Lightning: training only (slow to import)

    stamps = open_training_set(data)
    targets = blend_targets(stamps)
    n = len(stamps) if max_objects is None else min(len(stamps), max_objects)
    if val_data is None:
        train_idx, val_idx = split_indices(n, [0.9, 0.1], seed=seed)
        val_stamps, val_targets = stamps, targets
    else:
        train_idx = np.arange(n)
        val_stamps = open_training_set(val_data)
        require_same_imaging(stamps, val_stamps, stamps.meta.bands, val_data)
        val_targets = blend_targets(val_stamps)
        val_idx = np.arange(len(val_stamps))
    require_classes(np.asarray(targets["blended"])[train_idx], CLASSES, data)
    train_set = InMemoryStamps.from_stampset(stamps, targets, train_idx, transform=BlendAugmentation(noise_range, seed=seed))
    # Validation sees the same noise distribution as training, drawn once and fixed.
    val_set = InMemoryStamps.from_stampset(val_stamps, val_targets, val_idx)
    require_finite_images(train_set.images.numpy(), data)
    require_finite_images(val_set.images.numpy(), val_data or data, "validation")
    if noise_range is not None:
        frozen = BlendAugmentation(noise_range, seed=seed + 1)(val_set.__getitems__(np.arange(len(val_set))))
        val_set = InMemoryStamps(frozen["image"].numpy(), {k: frozen[k].numpy() for k in val_targets})
    seed_everything(seed)  # the network's initial weights follow the seed
    if init is not None:
        network, init_meta = load_blend_model(init)
        network.train()
    else:
        network, init_meta = BlendNet(widths=widths, padding=PADDING_PX), None
    module = TaskModule(network, blend_loss, OptimConfig(lr=lr, lr_patience=2))
    record = fit(module, batch_loader(train_set, batch_size, shuffle=True, seed=seed, drop_last=len(train_set) > batch_size),
                 batch_loader(val_set, 1024, shuffle=False), max_epochs=epochs, patience=patience, progress=progress, seed=seed)
    network.eval()
    probability = predict_probabilities(network, val_set.images.numpy())
    truth = val_set.columns["blended"].numpy().astype(bool)
    calibration = None
    if false_positive_rate is not None:
        probability, calibration = _calibrate_decision(network, probability, truth, false_positive_rate, val_data)
    predicted = probability > 0.5
    val_metrics = {"val_accuracy": float(np.mean(predicted == truth)), "val_false_positive_rate": float(np.mean(predicted[~truth])) if (~truth).any() else float("nan")}
    metadata = {
        "task": "blend",
        "architecture": "BlendNet",
        "architecture_config": network.config,
        "classes": CLASSES,
        "image_bands": list(stamps.meta.bands),
        "pixel_scale": stamps.meta.pixel_scale,
        "stamp_size": list(stamps.shape[2:]),
        "psf_fwhm_range": model_seeing_range(stamps, list(stamps.meta.bands), init_meta),
        "normalisation": {"kind": "per-stamp-noise-asinh", "padding": PADDING_PX, "softening_sigma": 1.0},
        "training": {
            "data": str(data), "val_data": str(val_data) if val_data else None, "n_train": int(len(train_idx)),
            "n_val": int(len(val_idx)), "seed": seed, "noise_range": list(noise_range) if noise_range else None,
            # p_blended refers to this balance (unweighted loss); --prior needs it.
            "class_counts": dict(zip(CLASSES, np.bincount(np.asarray(targets["blended"])[train_idx].astype(int), minlength=2).tolist())),
            "data_meta": training_data_meta(stamps),
            "batch_size": batch_size, "lr": lr, "decision_calibration": calibration,
            **{k: v for k, v in record.items() if k != "history"},
            "init": None if init_meta is None else {"model": str(init), "created": init_meta.get("created"),
                                                    "training_data": (init_meta.get("training") or {}).get("data")},
            "history": record["history"],
        },
        "metrics": val_metrics,
    }
    save_model_file(out, network.state_dict(), metadata, command=command)
    return {**record, **val_metrics, "n_train": int(len(train_idx)), "n_val": int(len(val_idx))}


def _calibrate_decision(network: BlendNet, probability: np.ndarray, blended: np.ndarray, false_positive_rate: float,
                        val_data: str | os.PathLike | None) -> tuple[np.ndarray, dict[str, Any]]:
    """Move the blend logit's bias so that ``p_blended > 0.5`` calls ``false_positive_rate`` of
    the isolated validation stamps blended; the probabilities after the move, and its record."""
    if val_data is None:
        raise InputError("--false-positive-rate", "sets the decision on galaxies unseen in training: give them with --val")
    if not 0.0 < false_positive_rate < 1.0:
        raise InputError("--false-positive-rate", f"is a fraction between 0 and 1, not {false_positive_rate}")
    isolated = probability[~blended]
    if isolated.size < 100:
        raise InputError(val_data, f"holds {isolated.size} isolated stamps: too few to set a false-positive rate")
    threshold = float(np.clip(np.quantile(isolated, 1.0 - false_positive_rate), 1e-6, 1 - 1e-6))
    shift = float(np.log(threshold / (1.0 - threshold)))
    with torch.no_grad():
        network.blend.bias -= shift
    # The logit is moved by the same amount for every stamp, so the new probabilities follow.
    logit = np.log(np.clip(probability, 1e-12, 1.0)) - np.log(np.clip(1.0 - probability, 1e-12, 1.0)) - shift
    record = {"false_positive_rate": float(false_positive_rate), "threshold_before": threshold, "logit_shift": shift,
              "val_data": str(val_data), "n_isolated": int(isolated.size)}
    return 1.0 / (1.0 + np.exp(-logit)), record


def load_blend_model(model: str | os.PathLike) -> tuple[BlendNet, dict[str, Any]]:
    """Load a BlendNet model file (path or shipped name) for inference."""
    path = resolve_model(model)
    meta, state = load_model_file(path)
    return _blend_network(path, meta, state), meta


def _blend_network(path: Path, meta: dict[str, Any], state: dict[str, torch.Tensor]) -> BlendNet:
    """The BlendNet of a loaded model file, in evaluation mode."""
    if meta.get("task") != "blend" or meta.get("architecture") != "BlendNet":
        raise InputError(path, f"not a BlendNet blend model (task {meta.get('task')!r}, architecture {meta.get('architecture')!r})")
    config = meta["architecture_config"]
    network = BlendNet(widths=config["widths"], convs_per_stage=config["convs_per_stage"], hidden=config["hidden"], padding=config["padding"])
    network.load_state_dict(state)
    network.eval()
    return network


@torch.inference_mode()
def _predict_outputs(network: BlendNet, images: np.ndarray, batch_size: int = 1024, device: str = "cpu") -> dict[str, np.ndarray]:
    """``p_blended``, ``p_two_sources`` and ``offset`` (px) of stamps ``(N, 1, H, W)``; NaN for a
    stamp without a finite pixel (:func:`~skysort.data.stampset.stamps_without_pixels`)."""
    outputs: dict[str, list[np.ndarray]] = {"p_blended": [], "p_two_sources": [], "offset": []}
    for start in range(0, len(images), batch_size):
        chunk = np.asarray(images[start : start + batch_size], np.float32)
        result = network({"image": torch.as_tensor(chunk, device=device)})
        blank = stamps_without_pixels(chunk)
        outputs["p_blended"].append(np.where(blank, np.nan, torch.sigmoid(result["blend_logit"].float()).cpu().numpy()))
        outputs["p_two_sources"].append(np.where(blank, np.nan, torch.softmax(result["n_sources_logits"].float(), dim=1)[:, 1].cpu().numpy()))
        outputs["offset"].append(np.where(blank[:, None], np.nan, result["offset"].float().cpu().numpy() * OFFSET_SCALE_PX))
    return {k: np.concatenate(v) if v else np.zeros((0,) if k != "offset" else (0, 2)) for k, v in outputs.items()}


def _n_sources(p_two_sources: np.ndarray) -> np.ndarray:
    """Sources in each stamp (1 or 2) from the probability of two; 0 where it is NaN (no pixels)."""
    return np.where(np.isnan(p_two_sources), 0, np.where(p_two_sources > 0.5, 2, 1)).astype(np.int16)


def predict_probabilities(network: BlendNet, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Blend probability of each stamp ``(N, 1, H, W)``."""
    return _predict_outputs(network, images, batch_size)["p_blended"]


def predict_blends(model: str | os.PathLike, stamps: StampSet | str | os.PathLike, *, batch_size: int = 1024,
                   threshold: float = 0.5, progress: Callable[[int], None] | None = None) -> Table:
    """Per-stamp predictions of a :class:`BlendNet` model.

    Parameters
    ----------
    model : str or path-like
        Model file or shipped name (``blend-cfis``).
    stamps : StampSet or path-like
        Stamps of the model's size holding its band (other bands are ignored).
    batch_size : int
        Stamps per forward pass.
    threshold : float
        ``blended`` is ``p_blended > threshold`` (0-1).
    progress : callable, optional
        Called with the number of stamps done after each block.

    Returns
    -------
    astropy.table.Table
        ``id``, ``p_blended``, ``blended``, ``n_sources`` (1 or 2), ``companion_dx`` /
        ``companion_dy`` [pix] (the companion's offset from the stamp centre; NaN unless
        ``p_blended`` > 0.5, whatever the threshold: an offset is given where the network finds a
        companion more likely than not). A stamp without a finite pixel gets ``p_blended`` NaN,
        ``blended`` False and ``n_sources`` 0. The same as ``skysort predict`` writes, through
        :class:`BlendPredictor`.
    """
    ClassDecision(threshold=threshold)  # a threshold outside 0-1 is refused
    if isinstance(stamps, (str, os.PathLike)):
        with StampSet.open(stamps) as opened:
            return predict_blends(model, opened, batch_size=batch_size, threshold=threshold, progress=progress)
    from ..inference.predictor import predict_stampset

    path = resolve_model(model)
    meta, state = load_model_file(path)
    predictor = BlendPredictor(_blend_network(path, meta, state), meta, path)
    predicted = predict_stampset(predictor, stamps, batch_size=batch_size, decision=ClassDecision(threshold=threshold),
                                 progress=progress)
    table = Table()
    table["id"] = predicted["id"]
    table["p_blended"] = predicted["p_blended"]
    table["blended"] = np.asarray(predicted["class"]) == "blended"
    for name in ("n_sources", "companion_dx", "companion_dy"):
        table[name] = predicted[name]
    table.meta["model"] = meta.get("name", str(model))
    return table


#: The columns of a paper-faithful blend model's predictions (:func:`predict_any_blend_model`).
PAPER_MODEL_COLUMNS = ("id", "p_blended", "blended", "n_sources", "companion_dx", "companion_dy")


def predict_any_blend_model(model: str | os.PathLike, stamps: StampSet, *, threshold: float = 0.5,
                            progress: Callable[[int], None] | None = None) -> Table:
    """Predictions of any blend model: the single :class:`BlendNet` or a paper-faithful
    backbone + head (which predicts the blend probability only)."""
    path = resolve_model(model)
    meta, _ = load_model_file(path)
    if meta.get("task") != "blend":
        raise InputError(path, f"not a blend model (task {meta.get('task')!r})")
    if meta.get("architecture") == "BlendNet":
        return predict_blends(path, stamps, threshold=threshold, progress=progress)
    from .blend_paper import predict_paper_model

    probability = np.asarray(predict_paper_model(path, stamps, progress=progress is not None), dtype=np.float32)
    probability[stampset_without_pixels(stamps)] = np.nan  # as BlendNet predictions: no pixel, no probability
    if progress:
        progress(len(stamps))
    table = Table()
    table["id"] = stamps.column("id")
    table["p_blended"] = probability
    table["blended"] = probability > threshold
    table["n_sources"] = np.where(np.isnan(probability), 0, np.where(table["blended"], 2, 1)).astype(np.int16)
    table["companion_dx"] = np.full(len(stamps), np.nan, np.float32)
    table["companion_dy"] = np.full(len(stamps), np.nan, np.float32)
    return table


def evaluate_blend_model(model: str | os.PathLike, data: str | os.PathLike, out_dir: str | os.PathLike, *,
                         with_sep: bool = True, threshold: float = 0.5, command: str | None = None,
                         progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Evaluate a blend model (and, beside it, the SEP baseline) on a blend stamp set.

    Writes into ``out_dir``: ``metrics.json`` (accuracy, near / far accuracy, false-positive
    rate, per-separation and per-noise accuracy, ROC, purity-completeness, and the same for SEP
    under ``"sep"``), ``predictions.parquet`` and the plots (accuracy vs separation with SEP
    beside the model, confusion matrix, ROC, purity-completeness), with the SEP baseline's
    outputs in ``sep/``: all of them or none (:func:`skysort.evaluation.evaluation_folder`).
    Stamps without a finite pixel are left out of all of them, model and SEP alike, and counted
    as ``n_without_pixels``.
    """
    from ..baselines.sep_blend import run_sep_baseline
    from ..data.catalog import write_catalog
    from ..evaluation import evaluation_folder
    from ..evaluation.blend_metrics import blend_metrics, psf_fwhm_px, source_provenance, write_blend_report

    stamps = StampSet.open(data)
    require_blend_set(stamps)
    predictions = predict_any_blend_model(model, stamps, threshold=threshold, progress=progress)
    # Blend models give a stamp without a finite pixel no probability; such stamps are not scored.
    blank = ~np.isfinite(np.asarray(predictions["p_blended"], float))
    stamps, n_blank = without_blank_stamps(stamps, blank)
    predictions = predictions[~blank]
    truth = stamps.table
    metrics = blend_metrics(truth, probability=np.asarray(predictions["p_blended"], float), threshold=threshold,
                            psf_fwhm_px=psf_fwhm_px(stamps.meta))
    metrics["model"] = str(model)
    metrics["data"] = str(data)
    model_file = resolve_model(model)
    metrics["source_provenance"] = source_provenance(model_file, load_model_file(model_file)[0], stamps.meta.seed)
    metrics["n_without_pixels"] = n_blank
    blended = np.asarray(truth["blended"]).astype(bool)
    offset_error = np.hypot(np.asarray(predictions["companion_dx"]) - np.ma.filled(truth["companion_dx"], np.nan),
                            np.asarray(predictions["companion_dy"]) - np.ma.filled(truth["companion_dy"], np.nan))
    found = blended & np.isfinite(offset_error)
    metrics["companion_offset_median_error_px"] = float(np.median(offset_error[found])) if found.any() else float("nan")
    metrics["n_sources_accuracy"] = float(np.mean(np.asarray(predictions["n_sources"]) == np.where(blended, 2, 1)))
    for column in ("separation_px", "noise_sigma", "blended", "near"):
        if column in truth.colnames:
            predictions[f"true_{column}"] = truth[column]
    compare = None
    with evaluation_folder(out_dir) as folder:
        if with_sep:
            sep_metrics = run_sep_baseline(stamps, folder / "sep", command=command)
            metrics["sep"] = {k: sep_metrics[k] for k in ("accuracy", "accuracy_near", "accuracy_far", "false_positive_rate", "n") if k in sep_metrics}
            # A set without near blends (isolated stamps alone, to measure false positives) has no
            # near accuracy for either method, hence no difference.
            near, sep_near = metrics["accuracy_near"], sep_metrics["accuracy_near"]
            metrics["accuracy_near_minus_sep"] = None if near is None or sep_near is None else near - sep_near
            compare = {"SEP": sep_metrics}
        write_catalog(predictions, folder / "predictions.parquet")
        write_blend_report(metrics, folder, name=Path(str(model)).stem, compare=compare, command=command)
    return metrics


def write_model_card(model: str | os.PathLike, evaluations: dict[str, str | os.PathLike], out: str | os.PathLike,
                     notes: Sequence[str] = ()) -> Path:
    """Write a Markdown model card from a model file's metadata and evaluation ``metrics.json`` files.

    Parameters
    ----------
    model : path-like
        The model file.
    evaluations : mapping of str to path-like
        Test-set description -> ``metrics.json`` written by :func:`evaluate_blend_model`.
    out : path-like
        The card (``NAME.md`` beside ``NAME.pt`` for a shipped model).
    notes : sequence of str
        Known limitations and remarks, one bullet each.
    """
    import json

    from ..models.card import percent, write_card

    meta, state = load_model_file(resolve_model(model))
    training = meta.get("training", {})
    simulation = (training.get("data_meta") or {}).get("simulation") or {}
    n_parameters = sum(int(t.numel()) for t in state.values() if hasattr(t, "numel"))
    lines = [
        f"# {Path(str(model)).stem}: blend identification (isolated / blended galaxies)", "",
        f"- created {meta.get('created')} by {meta.get('creator')}; format version {meta.get('format_version')}",
        f"- command: `{meta.get('command')}`",
        f"- architecture: {meta.get('architecture')} {meta.get('architecture_config')}, {n_parameters:,} parameters",
        f"- input: {meta.get('image_bands')} band, {meta.get('stamp_size')} px stamps at {meta.get('pixel_scale')}\"/px, "
        f"normalisation {meta.get('normalisation')}",
        "- outputs: p(blended), number of sources (1 or 2), companion offset (dx, dy) in pixels", "",
        "## Training data", "",
        f"- {training.get('data')}: simulated {simulation.get('survey', '')} {simulation.get('kind', '')}, mode "
        f"{simulation.get('mode', '')}, noise sigma {simulation.get('noise_sigma')}, seed {simulation.get('seed')}",
        f"- {training.get('n_train'):,} training / {training.get('n_val'):,} validation stamps; noise augmentation to sigma "
        f"{training.get('noise_range')} counts; flips and 90-degree rotations",
        f"- {training.get('epochs')} epochs, {training.get('seconds')} s on {training.get('accelerator')} ({training.get('precision')})", "",
        "## Measured performance", "",
        "| test set | n | accuracy | near blends | far blends | isolated false positives | SEP accuracy | SEP near |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, path in evaluations.items():
        m = json.loads(Path(path).read_text())
        sep = m.get("sep") or {}
        lines.append(f"| {name} | {m.get('n')} | {percent(m.get('accuracy'))} | {percent(m.get('accuracy_near'))} | "
                     f"{percent(m.get('accuracy_far'))} | {percent(m.get('false_positive_rate'))} | {percent(sep.get('accuracy'))} | "
                     f"{percent(sep.get('accuracy_near'))} |")
    lines += ["", "Near / far accuracies are over blended stamps with separation below / above 10 px. Realistic test galaxies "
              "(real COSMOS HST images) are never seen in training; parametric tests draw from the same COSMOS parametric fits "
              "as training, with new rotations, sizes, positions and noise.", ""]
    return write_card(out, lines, notes)


class BlendPredictor(TorchPredictor):
    """:class:`~skysort.inference.predictor.Predictor` of a :class:`BlendNet` model: classes
    ``isolated`` / ``blended``, extra outputs ``n_sources``, ``companion_dx``, ``companion_dy`` (px;
    NaN unless the blend probability exceeds 0.5, whatever threshold decides the class)."""

    task = "blend"

    def __init__(self, network: BlendNet, meta: dict[str, Any], model_file: Path, device: str = "cpu"):
        spec = InputSpec(image_bands=list(meta["image_bands"]), stamp_size=tuple(meta["stamp_size"]), pixel_scale=meta.get("pixel_scale"))
        super().__init__(network, meta, model_file, spec, device, CLASSES)

    def predict(self, inputs, *, images_available: bool = True) -> dict[str, np.ndarray]:
        if not images_available or "image" not in inputs:
            raise InputError(self.name, "blend models need image stamps")
        # BlendNet maps non-finite pixels to the sky level itself.
        images = np.asarray(inputs["image"], np.float32)
        result = _predict_outputs(self.network, images, batch_size=max(len(images), 1), device=self.device)
        p, offset = result["p_blended"], result["offset"]
        blended = p > 0.5
        return {"probabilities": np.stack([1 - p, p], axis=1).astype(np.float32),
                "n_sources": _n_sources(result["p_two_sources"]),
                "companion_dx": np.where(blended, offset[:, 0], np.nan).astype(np.float32),
                "companion_dy": np.where(blended, offset[:, 1], np.nan).astype(np.float32)}


def predictor_from_file(path: Path, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str = "cpu") -> BlendPredictor:
    """The blend task's entry for :func:`skysort.inference.predictor.load_predictor`."""
    if meta.get("architecture") != "BlendNet":
        raise InputError(path, f"streaming prediction supports BlendNet blend models (this one is {meta.get('architecture')!r}; use skysort predict --data)")
    return BlendPredictor(_blend_network(path, meta, state), meta, path, device)
