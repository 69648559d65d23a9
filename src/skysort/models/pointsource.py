"""Networks of the point-source task: star vs quasar from images, with spectral knowledge.

The method follows Wang et al. (2023, PASP 135, 104502, doi 10.1088/1538-3873/acfbb9):

1. :class:`SpectralEncoder`, a one-dimensional residual network, maps an optical spectrum on
   the SDSS log-lambda grid to a 128-d feature vector and is trained as a star / quasar
   classifier on spectra.
2. :class:`FeatureGenerator`, a conditional generator, maps an image stamp (plus a noise
   vector) to a 128-d vector that imitates the frozen encoder's feature of the same object;
   it is trained against :class:`FeatureDiscriminator`, which sees ``(feature, image
   embedding)`` pairs, together with an L2 term.
3. :class:`FusionClassifier` classifies from the image (its own CNN) plus the generated
   feature, so inference needs images only.

:class:`ImageClassifier` is the image-only baseline: the same CNN (:class:`~skysort.models.cnn.ConvEncoder`
with the same widths) and head size, without the generated feature.

Spectra enter the encoder as two channels (:func:`normalise_spectra`): ``asinh(flux / s)``
with ``s`` the spectrum's median absolute flux over its valid pixels (so the encoder sees the
shape, never the brightness), and a 0/1 mask of valid pixels (missing wavelength coverage and
bad pixels are 0 in both channels).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .cnn import ConvEncoder, mlp

FEATURE_DIM = 128


def normalise_spectra(flux: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's input from fluxes on the model's wavelength grid.

    Parameters
    ----------
    flux : ndarray, shape (N, L) or (L,)
        f_lambda in any unit (the scale is divided out).
    valid : ndarray of bool, same shape, optional
        Usable pixels (e.g. ``ivar > 0``); default where ``flux`` is finite.

    Returns
    -------
    spectrum : ndarray float16, shape (N, L)
        ``asinh(flux / s)`` (``s`` = median |flux| over valid pixels), 0 where invalid.
    valid : ndarray bool, shape (N, L)
    """
    flux = np.atleast_2d(np.asarray(flux, dtype=np.float32))
    good = np.isfinite(flux) if valid is None else (np.atleast_2d(np.asarray(valid, bool)) & np.isfinite(flux))
    masked = np.where(good, np.abs(flux), np.nan)
    with np.errstate(all="ignore"):
        scale = np.nanmedian(masked, axis=1) if masked.size else np.zeros(len(flux))
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0).astype(np.float32)
    values = np.where(good, np.arcsinh(np.where(good, flux, 0.0) / scale[:, None]), 0.0)
    return values.astype(np.float16), good


class ResidualBlock1d(nn.Module):
    """Two 1-D convolutions with batch norm and a residual shortcut (He et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel: int = 5):
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv1d(in_channels, out_channels, kernel, stride=stride, padding=pad, bias=False),
            nn.BatchNorm1d(out_channels), nn.ReLU(inplace=True),
            nn.Conv1d(out_channels, out_channels, kernel, padding=pad, bias=False),
            nn.BatchNorm1d(out_channels),
        )
        self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else nn.Sequential(
            nn.Conv1d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm1d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class SpectralEncoder(nn.Module):
    """1-D ResNet: spectrum ``(N, L)`` + valid mask -> 128-d feature -> star / quasar logits.

    Parameters
    ----------
    widths : sequence of int
        Channels of the residual stages; every stage after the first halves the length.
    feature_dim : int
        Size of the feature vector (bounded to [-1, 1] by tanh, so that generated and true
        features live on the same scale).
    n_classes : int
        Classes of the classifier head.
    kernel : int
        Convolution kernel length of the residual blocks (pixels).
    """

    def __init__(self, widths: Sequence[int] = (8, 16, 32, 64), feature_dim: int = FEATURE_DIM, n_classes: int = 2, kernel: int = 5):
        super().__init__()
        self.config = {"widths": [int(w) for w in widths], "feature_dim": int(feature_dim), "n_classes": int(n_classes), "kernel": int(kernel)}
        # A stride-8 stem (conv stride 4, pooling 2): broad quasar lines span tens of pixels of
        # the 1e-4 dex grid and stellar features are blends of many lines at this resolution.
        self.stem = nn.Sequential(nn.Conv1d(2, widths[0], 9, stride=4, padding=4, bias=False), nn.BatchNorm1d(widths[0]),
                                  nn.ReLU(inplace=True), nn.MaxPool1d(2))
        blocks = []
        previous = widths[0]
        for i, width in enumerate(widths):
            blocks.append(ResidualBlock1d(previous, width, stride=1 if i == 0 else 2, kernel=kernel))
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.project = nn.Linear(2 * previous, feature_dim)
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(feature_dim, n_classes))

    def encode(self, spectrum: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Features ``(N, feature_dim)`` of normalised spectra (see :func:`normalise_spectra`)."""
        x = torch.stack([spectrum.float(), valid.float()], dim=1)
        maps = self.blocks(self.stem(x))
        pooled = torch.cat([maps.mean(dim=-1), maps.amax(dim=-1)], dim=1)
        return torch.tanh(self.project(pooled))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feature = self.encode(batch["spectrum"], batch["spectrum_valid"])
        return {"feature": feature, "logits": self.classifier(feature)}


def image_encoder(in_channels: int, widths: Sequence[int]) -> ConvEncoder:
    """The image CNN shared by the baseline, the generator and the fusion classifier."""
    return ConvEncoder(in_channels, widths=widths, global_max=True, convs_per_stage=2)


class ImageClassifier(nn.Module):
    """Image-only star / quasar classifier (the baseline): CNN embedding -> MLP -> logits."""

    def __init__(self, in_channels: int, widths: Sequence[int] = (16, 32, 64), hidden: int = 128, n_classes: int = 2):
        super().__init__()
        self.config = {"in_channels": int(in_channels), "widths": [int(w) for w in widths], "hidden": int(hidden), "n_classes": int(n_classes)}
        self.encoder = image_encoder(in_channels, widths)
        self.head = mlp(self.encoder.out_features, [hidden], n_classes, dropout=0.2)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.head(self.encoder(batch["image"]))}


class FeatureGenerator(nn.Module):
    """Conditional generator: image (+ noise) -> imitation of the spectral feature.

    Parameters
    ----------
    in_channels, widths : int, sequence of int
        Image bands and CNN widths (as :class:`ImageClassifier`).
    noise_dim : int
        Size of the Gaussian noise vector; inference uses zero noise (the mode), so that
        predictions are deterministic.
    hidden : int
        Width of the hidden layer mapping the embedding to the feature.
    feature_dim : int
        Size of the generated feature (the encoder's).
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (16, 32, 64), noise_dim: int = 16, hidden: int = 256,
                 feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.config = {"in_channels": int(in_channels), "widths": [int(w) for w in widths], "noise_dim": int(noise_dim),
                       "hidden": int(hidden), "feature_dim": int(feature_dim)}
        self.encoder = image_encoder(in_channels, widths)
        self.noise_dim = noise_dim
        self.body = nn.Sequential(nn.Linear(self.encoder.out_features + noise_dim, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, feature_dim))

    @property
    def embedding_dim(self) -> int:
        return self.encoder.out_features

    def forward(self, images: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(generated feature, image embedding)``; ``noise=None`` means zero noise."""
        embedding = self.encoder(images)
        if noise is None:
            noise = embedding.new_zeros(embedding.shape[0], self.noise_dim)
        feature = torch.tanh(self.body(torch.cat([embedding, noise], dim=1)))
        return feature, embedding


class FeatureDiscriminator(nn.Module):
    """Scores ``(feature, image embedding)`` pairs: true spectral feature or generated.

    Returns the logit and the hidden activations (used by the generator's feature-matching
    term, Salimans et al. 2016).
    """

    def __init__(self, feature_dim: int = FEATURE_DIM, embedding_dim: int = 128, hidden: int = 256):
        super().__init__()
        self.config = {"feature_dim": int(feature_dim), "embedding_dim": int(embedding_dim), "hidden": int(hidden)}
        self.body = nn.Sequential(nn.Linear(feature_dim + embedding_dim, hidden), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Linear(hidden, hidden), nn.LeakyReLU(0.2, inplace=True))
        self.out = nn.Linear(hidden, 1)

    def forward(self, feature: torch.Tensor, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(torch.cat([feature, embedding], dim=1))
        return self.out(hidden).squeeze(1), hidden


class FusionClassifier(nn.Module):
    """Image CNN embedding + generated spectral feature -> star / quasar logits.

    The generator is frozen (no gradients, kept in eval mode); the fusion's own CNN has the
    baseline's architecture.
    """

    def __init__(self, generator: FeatureGenerator, in_channels: int, widths: Sequence[int] = (16, 32, 64), hidden: int = 128,
                 n_classes: int = 2):
        super().__init__()
        self.config = {"in_channels": int(in_channels), "widths": [int(w) for w in widths], "hidden": int(hidden), "n_classes": int(n_classes)}
        self.generator = generator
        for parameter in self.generator.parameters():
            parameter.requires_grad_(False)
        self.encoder = image_encoder(in_channels, widths)
        feature_dim = generator.config["feature_dim"]
        self.head = mlp(self.encoder.out_features + feature_dim, [hidden], n_classes, dropout=0.2)

    def train(self, mode: bool = True) -> "FusionClassifier":
        super().train(mode)
        self.generator.eval()  # frozen: its batch-norm statistics must not move
        return self

    def classify(self, images: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        """Logits from images and a given spectral feature (generated, or true for the upper bound)."""
        return self.head(torch.cat([self.encoder(images), feature], dim=1))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            feature, _ = self.generator(batch["image"])
        return {"logits": self.classify(batch["image"], feature), "feature": feature}


class PointSourceNet(nn.Module):
    """Everything a point-source model file holds: the spectral encoder, the fusion classifier
    (with its generator) and, optionally, the image-only baseline trained on the same split.

    ``forward`` runs the image-only path (fusion), so a predictor needs images alone.
    """

    def __init__(self, in_channels: int, image_widths: Sequence[int] = (16, 32, 64), spectral_widths: Sequence[int] = (8, 16, 32, 64),
                 feature_dim: int = FEATURE_DIM, noise_dim: int = 16, hidden: int = 128, generator_hidden: int = 256,
                 with_baseline: bool = True, spectral_kernel: int = 5):
        super().__init__()
        self.config = {"in_channels": int(in_channels), "image_widths": [int(w) for w in image_widths],
                       "spectral_widths": [int(w) for w in spectral_widths], "feature_dim": int(feature_dim),
                       "noise_dim": int(noise_dim), "hidden": int(hidden), "generator_hidden": int(generator_hidden),
                       "with_baseline": bool(with_baseline), "spectral_kernel": int(spectral_kernel)}
        self.spectral = SpectralEncoder(spectral_widths, feature_dim, kernel=spectral_kernel)
        generator = FeatureGenerator(in_channels, image_widths, noise_dim, generator_hidden, feature_dim)
        self.fusion = FusionClassifier(generator, in_channels, image_widths, hidden)
        self.baseline = ImageClassifier(in_channels, image_widths, hidden) if with_baseline else None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "PointSourceNet":
        return cls(**dict(config))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.fusion(batch)
