"""BlendHunter, reproduced: a frozen ImageNet backbone plus a small fully connected head.

Farrens et al. (2022, arXiv:2110.08180) classify 65 x 65 single-band stamps as blended or
isolated with transfer learning:

1. the stamps go through the convolutional layers of an ImageNet-trained network (VGG-16 in
   the paper; EfficientNet-Lite0 here by default, whose weights are installed with skysort's
   dependencies and which is ~40 x cheaper on a CPU), once, giving fixed feature vectors
   (cached, :mod:`skysort.training.features`);
2. the head :class:`~skysort.models.heads.PaperHead` trains on them with binary cross-entropy,
   Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8), batches of 250, up to 500 epochs, learning rate
   halved after 5 epochs without validation-loss improvement, early stop after 10, through
   the project's one training loop (:func:`skysort.training.module.fit`);
3. optionally (``fine_tune_top=True``) the backbone's top block is unfrozen and trained with
   the head on images at lr 1e-4, as BlendHunter's ``_fine_tune``.

Split: 45 % train, 45 % validation, 10 % test (36,000 / 36,000 / 8,000 for the paper's 80,000
stamps), drawn at random with ``seed``.

Differences from the paper, by design or necessity
--------------------------------------------------
* Data augmentation (Keras shear/zoom 0.2, horizontal flips) is not applied to the cached
  features: augmenting would need one backbone pass per epoch, which is what caching avoids.
  Fine-tuning uses random flips and 90-degree rotations.
* Keras' ``min_delta=0.001`` and ``cooldown=2`` of BlendHunter's plateau and early-stopping
  callbacks are not available in the shared loop, which reacts to any improvement.
* Pooling of EfficientNet-Lite0 features: global average (1280 features) rather than flattening
  its 1280 x 3 x 3 map (11,520). Measured on the first 8,000 stamps of a parametric sigma=14.5
  set (3,600 / 3,600 / 800 split, paper8bit inputs): test accuracy 0.680 averaged vs 0.693
  flattened (difference within the +-0.016 binomial error of 800 stamps), for 9 x the cache size
  (3.7 GB instead of 0.4 GB for 80,000 stamps) and 1.8 x the head training time.

Measured (``benchmarks/blend_head_training.py``, 2-core CPU shared with other jobs, 1 thread)
-------------------------------------------------------------------------------------------
80,000 parametric CFIS-like stamps, sigma = 14.5 counts, EfficientNet-Lite0, seed 0:

========== ======== ====== ======== ====== ====== ======== ====================
input mode head (s) epochs test acc near   far    isolated realistic sigma 14.5
========== ======== ====== ======== ====== ====== ======== ====================
paper8bit  92       28     0.750    0.518  0.686  0.832    0.741 (8,000 stamps)
float      101      37     0.815    0.638  0.771  0.873    0.816 (8,000 stamps)
========== ======== ====== ======== ====== ====== ======== ====================

Backbone features: 96-195 stamps/s on one thread of the loaded machine (~420 stamps/s on two
idle cores); VGG-16: 28 stamps/s (one thread, loaded; ~67 on two idle cores).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.dataset import random_dihedral
from ..data.stampset import StampSet
from ..errors import InputError
from ..models.backbones import (Backbone, backbone_spec, default_weights, load_backbone, prepare_images,
                                weights_sha256)
from ..models.checkpoint import load_model_file, save_model_file
from ..models.heads import PAPER_DROPOUT, PAPER_HIDDEN, BackboneWithHead, PaperHead, binary_loss
from ..training.features import DEFAULT_BATCH, all_cores, cached_features, compute_features
from ..training.data import InMemoryBatches, batch_loader, model_seeing_range, open_training_set, require_classes
from ..training.data import split_indices as shared_split
from ..training.module import OptimConfig, TaskModule, fit

CLASSES = ["isolated", "blended"]
ARCHITECTURE = "paper-head"

#: BlendHunter's train / validation / test fractions.
SPLIT_FRACTIONS = (0.45, 0.45, 0.10)
#: Head training batch (paper) and evaluation batch (larger only for speed: no effect on results).
PAPER_BATCH = 250
_EVAL_BATCH = 4000
#: Fine-tuning settings of BlendHunter's ``_fine_tune`` (Adam lr 1e-4, batch 16).
FINE_TUNE_LR = 1e-4
FINE_TUNE_BATCH = 16


def paper_optim(lr: float = 1e-3) -> OptimConfig:
    """The paper's Adam settings and plateau schedule (no weight decay)."""
    return OptimConfig(lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, lr_factor=0.5, lr_patience=5)


def split_indices(n: int, seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random train / validation / test indices (sorted) with BlendHunter's fractions
    (80,000 stamps give 36,000 / 36,000 / 8,000)."""
    return tuple(shared_split(n, fractions, seed=seed))  # type: ignore[return-value]


def _label_targets(stamps: StampSet) -> np.ndarray:
    """0/1 targets (1 = blended) from the ``label`` column (``blended`` / ``isolated``)."""
    labels = np.asarray([str(x) for x in stamps.labels()])
    unknown = sorted(set(labels) - set(CLASSES))
    if unknown:
        raise InputError(stamps.path, f"labels {unknown[:5]} are not {CLASSES}: not a blend stamp set")
    return (labels == "blended").astype(np.float32)


def _feature_batches(features: np.ndarray, targets: np.ndarray) -> InMemoryBatches:
    return InMemoryBatches({"features": np.asarray(features, np.float32), "label": np.asarray(targets, np.float32)})


class _ImageBatches(Dataset):
    """Whole batches of prepared images read from a stamp set (for fine-tuning)."""

    def __init__(self, stamps: StampSet, rows: np.ndarray, targets: np.ndarray, input_mode: str,
                 augment: bool, seed: int):
        self.stamps, self.rows, self.targets = stamps, np.asarray(rows), np.asarray(targets, dtype=np.float32)
        self.input_mode, self.augment = input_mode, augment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        indices = np.asarray(indices)
        images = prepare_images(self.stamps.read_images(self.rows[indices]), self.input_mode)
        if self.augment:
            images = torch.stack([random_dihedral(im, self.generator) for im in images])
        return {"image": images.contiguous(), "label": torch.from_numpy(self.targets[indices])}


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    return batch_loader(dataset, batch_size, shuffle=shuffle, seed=seed)


def _predict_logits(network, loader: DataLoader) -> np.ndarray:
    network.eval()
    outputs = []
    with torch.inference_mode():
        for batch in loader:
            outputs.append(network(batch)["logit"].float())
    return torch.cat(outputs).numpy() if outputs else np.empty(0, np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def _accuracies(prob: np.ndarray, target: np.ndarray, stamps: StampSet, rows: np.ndarray) -> dict[str, float]:
    """Overall accuracy, plus BlendHunter's near (< 10 px) / far blend and isolated accuracies."""
    correct = (prob > 0.5) == (target > 0.5)
    metrics = {"test_accuracy": float(correct.mean()) if len(correct) else math.nan, "test_size": int(len(correct))}
    if "near" in stamps.columns:
        near = np.asarray(stamps.column("near"), dtype=bool)[rows]
        blended = target > 0.5
        for name, mask in (("near_blends", blended & near), ("far_blends", blended & ~near), ("isolated", ~blended)):
            metrics[f"test_accuracy_{name}"] = float(correct[mask].mean()) if mask.any() else math.nan
            metrics[f"test_n_{name}"] = int(mask.sum())
    return metrics


def train_paper_model(stampset_path: str | os.PathLike, out_model_path: str | os.PathLike, *,
                      backbone: str = "efficientnet-lite0", backbone_weights: str | os.PathLike | None = None,
                      input_mode: str = "paper8bit", pooling: str | None = None, seed: int = 0,
                      max_epochs: int = 500, patience: int = 10, batch_size: int = PAPER_BATCH,
                      hidden: Sequence[int] = PAPER_HIDDEN, dropout: float = PAPER_DROPOUT, lr: float = 1e-3,
                      fine_tune_top: bool = False, fine_tune_epochs: int = 50,
                      cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                      progress: bool = True, threads: int | None = None,
                      command: str | None = None) -> dict[str, Any]:
    """Train BlendHunter's head on backbone features of a blend stamp set and save the model.

    Parameters
    ----------
    stampset_path : path-like
        Blend stamp set (labels ``blended`` / ``isolated``), e.g. from
        ``skysort simulate --kind blends``.
    out_model_path : path-like
        Model file to write (:func:`skysort.models.checkpoint.save_model_file`).
    backbone : {"efficientnet-lite0", "vgg16"}
        Feature extractor.
    backbone_weights : path-like, optional
        Weights file (torchvision VGG-16 state dict for ``"vgg16"``); default the installed
        ImageNet weights (EfficientNet-Lite0) or random (VGG-16, with a warning).
    input_mode : {"paper8bit", "float"}
        Stamp-to-image transform (:func:`skysort.models.backbones.prepare_images`).
    pooling : {"flatten", "avg"}, optional
        Feature-map reduction (default per backbone, see ``load_backbone``).
    seed : int
        Seed of the split, the initialisation and the batch order.
    max_epochs, patience : int
        Epoch limit (paper: 500) and early-stopping patience (paper: 10).
    batch_size : int
        Head training batch (paper: 250).
    hidden, dropout : 
        Head widths and dropout rate (paper code: (256, 1024), 0.1).
    lr : float
        Initial Adam learning rate (paper: 1e-3).
    fine_tune_top : bool
        After the head, train the backbone's top block with it on images (lr 1e-4, batch 16,
        flips/rotations) for up to ``fine_tune_epochs`` epochs.
    cache_dir, use_cache
        Feature cache folder, or no caching.
    progress : bool
        Progress bars.
    threads : int, optional
        Torch threads (default: all cores, or ``$SKYSORT_THREADS``).
    command : str, optional
        Command line recorded in the model file.

    Returns
    -------
    dict
        ``test_accuracy`` (and near/far/isolated accuracies), ``val_loss``, ``epochs``,
        ``head_training_seconds``, ``feature_seconds``, ``features_per_second``,
        ``feature_cache_hit``, ``split_sizes``, ``fine_tune`` (when run), ``model_path``.
    """
    start_all = time.perf_counter()
    stamps = open_training_set(stampset_path)
    if stamps.shape[1] != 1:
        raise InputError(stampset_path, f"BlendHunter stamps have one band; this set has {stamps.shape[1]}")
    targets = _label_targets(stamps)
    train_rows, val_rows, test_rows = split_indices(len(stamps), seed)
    require_classes(targets[train_rows], CLASSES, stampset_path)
    net_backbone = load_backbone(backbone, weights=backbone_weights, pooling=pooling)
    feats = cached_features(stamps, net_backbone, input_mode=input_mode, weights=backbone_weights,
                            cache_dir=cache_dir, use_cache=use_cache, progress=progress, threads=threads)
    features = np.asarray(feats.features)
    head = PaperHead(features.shape[1], hidden=hidden, dropout=dropout)

    train_set = _feature_batches(features[train_rows], targets[train_rows])
    val_set = _feature_batches(features[val_rows], targets[val_rows])
    test_set = _feature_batches(features[test_rows], targets[test_rows])
    module = TaskModule(head, binary_loss, paper_optim(lr))
    with all_cores(threads):
        result = fit(module, _loader(train_set, batch_size, True, seed), _loader(val_set, _EVAL_BATCH, False, seed),
                     max_epochs=max_epochs, patience=patience, progress=progress, seed=seed, accelerator="cpu")
    network: torch.nn.Module = head
    fine_tune_result = None
    if fine_tune_top:
        net_backbone.unfreeze_top()
        network = BackboneWithHead(net_backbone, head)
        ft_train = _ImageBatches(stamps, train_rows, targets[train_rows], input_mode, augment=True, seed=seed)
        ft_val = _ImageBatches(stamps, val_rows, targets[val_rows], input_mode, augment=False, seed=seed)
        ft_module = TaskModule(network, binary_loss, paper_optim(FINE_TUNE_LR))
        with all_cores(threads):
            fine_tune_result = fit(ft_module, _loader(ft_train, FINE_TUNE_BATCH, True, seed),
                                   _loader(ft_val, DEFAULT_BATCH * 4, False, seed), max_epochs=fine_tune_epochs,
                                   patience=patience, progress=progress, seed=seed, accelerator="cpu")
        test_loader = _loader(_ImageBatches(stamps, test_rows, targets[test_rows], input_mode, False, seed),
                              DEFAULT_BATCH * 4, False, seed)
    else:
        test_loader = _loader(test_set, _EVAL_BATCH, False, seed)
    with all_cores(threads):
        prob = _sigmoid(_predict_logits(network, test_loader))
    metrics = _accuracies(prob, targets[test_rows], stamps, test_rows)

    state = {f"head.{k}": v.detach().clone() for k, v in head.state_dict().items()}
    if net_backbone.weights_id == "random":
        # Random convolutions cannot be rebuilt from an identity: the file must hold them.
        state.update({f"backbone.{k}": v.detach().clone() for k, v in net_backbone.state_dict().items()})
    elif fine_tune_top:
        # Only the unfrozen top block differs from the identified backbone weights.
        trainable = {name for name, p in net_backbone.named_parameters() if p.requires_grad}
        top_modules = {name.rsplit(".", 1)[0] for name in trainable}
        for key, value in net_backbone.state_dict().items():
            if key.rsplit(".", 1)[0] in top_modules:
                state[f"backbone.{key}"] = value.detach().clone()

    package_weights = default_weights(backbone)
    weights_file = Path(backbone_weights) if backbone_weights is not None else package_weights
    spec = backbone_spec(net_backbone, input_mode, backbone_weights)
    total_seconds = time.perf_counter() - start_all
    summary = {
        **metrics,
        "val_loss": result["best_val_loss"],
        "epochs": result["epochs"],
        "head_training_seconds": result["seconds"],
        "feature_seconds": round(feats.seconds, 2),
        "features_per_second": round(feats.rate, 1) if feats.computed else None,
        "feature_cache_hit": not feats.computed,
        "feature_dim": int(features.shape[1]),
        "split_sizes": {"train": int(len(train_rows)), "validation": int(len(val_rows)), "test": int(len(test_rows))},
        "training_seconds": round(total_seconds, 2),
    }
    if fine_tune_result is not None:
        summary["fine_tune"] = {"epochs": fine_tune_result["epochs"], "seconds": fine_tune_result["seconds"],
                                "val_loss": fine_tune_result["best_val_loss"]}
    metadata = {
        "task": "blend",
        "architecture": ARCHITECTURE,
        "architecture_kwargs": head.config(),
        "backbone": {
            "name": spec.name, "weights_id": spec.weights_id, "pooling": spec.pooling, "input_mode": spec.input_mode,
            # Installed-package weights are found again by identity; a user file by its path.
            "weights_source": "package" if backbone_weights is None and package_weights is not None
            else ("file" if weights_file is not None else "random"),
            "weights_path": str(Path(backbone_weights).resolve()) if backbone_weights is not None else None,
            "fine_tuned_top": bool(fine_tune_top),
        },
        "classes": list(CLASSES),
        "image_bands": list(stamps.meta.bands),
        "photometry_bands": [],
        "pixel_scale": float(stamps.meta.pixel_scale),
        "stamp_size": list(stamps.shape[-2:]),
        "stamp_shape": list(stamps.shape[1:]),
        "psf_fwhm_range": model_seeing_range(stamps, list(stamps.meta.bands)),
        "normalisation": {"kind": f"backbone-{input_mode}"},
        "training": {
            "data": [str(Path(stampset_path).resolve())], "seed": int(seed), "split_fractions": list(SPLIT_FRACTIONS),
            "split_sizes": summary["split_sizes"], "batch_size": int(batch_size), "max_epochs": int(max_epochs),
            "patience": int(patience), "optimizer": {"name": "adam", "lr": lr, "betas": [0.9, 0.999], "eps": 1e-8,
                                                      "plateau_factor": 0.5, "plateau_patience": 5},
            "epochs": result["epochs"], "history": result["history"], "seconds": round(total_seconds, 2),
            "head_training_seconds": result["seconds"], "noise_sigma": _noise_sigma(stamps),
        },
        "metrics": {k: v for k, v in summary.items() if k.startswith("test_") or k == "val_loss"},
    }
    save_model_file(out_model_path, state, metadata, command=command)
    summary["model_path"] = str(out_model_path)
    return summary


def _noise_sigma(stamps: StampSet) -> float | None:
    if "noise_sigma" not in stamps.columns:
        return None
    values = np.unique(np.asarray(stamps.column("noise_sigma"), dtype=float))
    return float(values[0]) if len(values) == 1 else None


def load_paper_model(model_path: str | os.PathLike, backbone_weights: str | os.PathLike | None = None) -> tuple[dict[str, Any], Backbone, PaperHead]:
    """Rebuild ``(metadata, backbone, head)`` from a paper-head model file.

    The backbone is rebuilt from its recorded identity: the installed package's weights, the
    recorded weights file, or ``backbone_weights``; its SHA-256 must equal the recorded one.

    Raises
    ------
    InputError
        Not a paper-head model, or the backbone weights found differ from those trained with.
    """
    meta, state = load_model_file(model_path)
    if meta.get("architecture") != ARCHITECTURE:
        raise InputError(model_path, f"not a {ARCHITECTURE} model (architecture {meta.get('architecture')!r})")
    info = meta["backbone"]
    weights = backbone_weights or info.get("weights_path")
    if weights is not None and not Path(weights).exists():
        raise InputError(weights, "backbone weights file recorded in the model is missing; pass backbone_weights=")
    if info["weights_id"] != "random":
        found = weights_sha256(weights) if weights is not None else None
        if found is None:
            package = default_weights(info["name"])
            found = weights_sha256(package) if package is not None else "random"
        if found != info["weights_id"]:
            raise InputError(model_path, f"backbone {info['name']} weights differ from those the model was trained with "
                                         f"({found[:19]}... != {info['weights_id'][:19]}...)")
    elif weights is None:
        # Random VGG-16 convolutions cannot be recreated from their identity; they must be in the file.
        if not any(k.startswith("backbone.") for k in state):
            raise InputError(model_path, "trained on a randomly initialised backbone whose weights were not saved")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-VGG warning is irrelevant when loading
        backbone = load_backbone(info["name"], weights=weights, pooling=info["pooling"])
    backbone_state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    if backbone_state:
        loaded = backbone.load_state_dict(backbone_state, strict=False)
        if loaded.unexpected_keys:
            raise InputError(model_path, f"unexpected backbone tensors {loaded.unexpected_keys[:3]}")
    kwargs = meta["architecture_kwargs"]
    head = PaperHead(kwargs["in_features"], hidden=kwargs["hidden"], dropout=kwargs["dropout"])
    head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
    head.eval()
    backbone.freeze()
    return meta, backbone, head


def predict_paper_model(model_path: str | os.PathLike, stampset: StampSet | str | os.PathLike, *,
                        backbone_weights: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                        use_cache: bool = False, progress: bool = False, threads: int | None = None) -> np.ndarray:
    """Blend probabilities of every stamp of a set under a paper-head model.

    Parameters
    ----------
    model_path : path-like
        Model file written by :func:`train_paper_model`.
    stampset : StampSet or path-like
        Single-band stamps of the training stamp size (65 x 65 for CFIS-like blends).
    backbone_weights : path-like, optional
        Weights file, when the recorded one moved (its hash is checked).
    cache_dir, use_cache
        Reuse / store the backbone features (off by default).
    progress : bool
        Progress bar while computing features.
    threads : int, optional
        Torch threads (default: all cores, or ``$SKYSORT_THREADS``).

    Returns
    -------
    ndarray, shape (N,), float64
        Probability that each stamp is blended, in [0, 1].
    """
    meta, backbone, head = load_paper_model(model_path, backbone_weights)
    stamps = stampset if isinstance(stampset, StampSet) else StampSet.open(stampset)
    if list(stamps.shape[-2:]) != list(meta["stamp_size"]):
        raise InputError(stamps.path, f"stamps are {tuple(stamps.shape[-2:])} px; the model was trained on "
                                      f"{tuple(meta['stamp_size'])} px stamps")
    input_mode = meta["backbone"]["input_mode"]
    if meta["backbone"].get("fine_tuned_top"):
        # The fine-tuned backbone is not what a cache entry of the package weights holds.
        features = compute_features(stamps, backbone, input_mode, progress=progress, threads=threads)
    else:
        features = np.asarray(cached_features(stamps, backbone, input_mode=input_mode, weights=backbone_weights,
                                              cache_dir=cache_dir, use_cache=use_cache, progress=progress,
                                              threads=threads).features)
    with all_cores(threads):
        logits = _predict_logits(head, _loader(_feature_batches(features, np.zeros(len(features))), _EVAL_BATCH, False, 0))
    return _sigmoid(logits)
