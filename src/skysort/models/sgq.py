"""The multimodal star / galaxy / quasar network (after the KiDS DR5 classifier, arXiv 2406.03797).

Two branches, each optional, so that the ablations use the same code:

- an image branch: a :class:`~skysort.models.cnn.ConvEncoder` on asinh-stretched stamps (one or
  more bands) learns morphology;
- a photometry branch: an MLP on standardised magnitudes and adjacent-band colours, with one
  mask bit per band, learns the spectral energy distribution. A missing magnitude (a
  non-detection, NaN) enters as 0 (the training mean after standardisation) with its mask bit
  set, and every colour involving it is 0 too; no sentinel number ever reaches the network.

Optionally the image branch also reads the seeing (``seeing_band``): the PSF FWHM of each
object's image in that band enters beside the CNN embedding as ``log(FWHM / reference)`` plus a
bit that says the seeing is unknown (then the value is 0). Whether a compact source is a star
depends on its size *relative to the PSF*; a network that is not told the PSF learns the
training set's seeing, and misreads fields of other seeing.

With both branches the two embeddings are concatenated and fed to fully connected layers with a
softmax over {star, galaxy, qso} (the *fused* head). Two auxiliary heads, one on each embedding
alone, are trained jointly (deep supervision): they let the same model classify from photometry
alone (a catalogue without images) or from images alone (stamps without photometry), and they
keep each branch informative on its own.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.cutout import centre_crop
from .cnn import ConvEncoder, mlp

BRANCHES = ("both", "image", "photometry")


#: Seeing inputs beside the CNN embedding: log FWHM ratio and the unknown-seeing bit.
SEEING_FEATURES = 2


def seeing_features(fwhm: torch.Tensor | None, n: int, reference: float, like: torch.Tensor) -> torch.Tensor:
    """``(N, 2)``: ``log(fwhm / reference)`` (0 where unknown) and 1 where the seeing is unknown.

    Parameters
    ----------
    fwhm : tensor (N,) or None
        PSF FWHM [arcsec], NaN where unknown; None: unknown for every object.
    n : int
        Objects.
    reference : float
        FWHM [arcsec] that maps to 0 (the training set's median).
    like : tensor
        Gives the dtype and device.
    """
    if fwhm is None:
        fwhm = torch.full((n,), float("nan"), dtype=like.dtype, device=like.device)
    fwhm = fwhm.to(device=like.device, dtype=like.dtype).reshape(n)
    known = torch.isfinite(fwhm) & (fwhm > 0)
    ratio = torch.where(known, torch.log(torch.where(known, fwhm, torch.ones_like(fwhm)) / reference), torch.zeros_like(fwhm))
    return torch.stack([ratio, (~known).to(like.dtype)], dim=1)


def photometry_feature_count(n_bands: int) -> int:
    """Inputs of the photometry MLP: magnitudes, adjacent colours and one mask bit per band."""
    return n_bands + max(n_bands - 1, 0) + n_bands


def photometry_features(mag: torch.Tensor, mag_mean: torch.Tensor, mag_std: torch.Tensor,
                        colour_mean: torch.Tensor, colour_std: torch.Tensor) -> torch.Tensor:
    """Standardised magnitudes, adjacent colours and missing-value mask bits.

    Parameters
    ----------
    mag : tensor (N, P)
        AB magnitudes, NaN where missing.
    mag_mean, mag_std : tensor (P,)
        Training mean and standard deviation of each magnitude [mag].
    colour_mean, colour_std : tensor (P - 1,)
        The same for the colours ``mag[:, k] - mag[:, k + 1]`` [mag].

    Returns
    -------
    tensor (N, 3P - 1)
        ``[(mag - mean) / std, (colour - mean) / std, missing]`` with missing entries 0.
    """
    present = torch.isfinite(mag)
    filled = torch.where(present, mag, mag_mean.expand_as(mag))
    mags = torch.where(present, (filled - mag_mean) / mag_std, torch.zeros_like(filled))
    parts = [mags]
    if mag.shape[1] > 1:
        colour_present = present[:, :-1] & present[:, 1:]
        colours = filled[:, :-1] - filled[:, 1:]
        parts.append(torch.where(colour_present, (colours - colour_mean) / colour_std, torch.zeros_like(colours)))
    parts.append((~present).to(mag.dtype))
    return torch.cat(parts, dim=1)


class SGQNet(nn.Module):
    """Image CNN + photometry MLP with a fused softmax head and one auxiliary head per branch.

    Parameters
    ----------
    n_image_bands : int
        Image bands (0 with ``branches="photometry"``).
    n_photometry_bands : int
        Photometric bands (0 with ``branches="image"``).
    branches : {"both", "image", "photometry"}
        Which branches exist.
    crop : int
        Side in pixels of the centre crop the image branch sees.
    softening : sequence of float
        Per-band asinh softening of the stamps, in the stamps' flux unit (the sky noise).
    mag_mean, mag_std, colour_mean, colour_std : sequence of float
        Photometry standardisation (training-set statistics, mag).
    widths : sequence of int
        ConvEncoder stage widths.
    convs_per_stage : int
        3x3 convolutions per ConvEncoder stage after the first.
    photometry_hidden : sequence of int
        Hidden widths of the photometry MLP; its last entry is the embedding size.
    head_hidden : int
        Hidden width of the fused head.
    n_classes : int
        Output classes (star, galaxy, qso).
    dropout : float
        Dropout in the MLPs.
    seeing_band : str, optional
        The image branch also reads the PSF FWHM in this band (``batch["psf_fwhm"]``, arcsec;
        see :func:`seeing_features`).
    seeing_reference : float
        FWHM [arcsec] at which the seeing input is 0.
    """

    def __init__(self, n_image_bands: int, n_photometry_bands: int, *, branches: str = "both", crop: int = 24,
                 softening: Sequence[float] = (), mag_mean: Sequence[float] = (), mag_std: Sequence[float] = (),
                 colour_mean: Sequence[float] = (), colour_std: Sequence[float] = (),
                 widths: Sequence[int] = (16, 32, 64), convs_per_stage: int = 1,
                 photometry_hidden: Sequence[int] = (64, 64), head_hidden: int = 64, n_classes: int = 3,
                 dropout: float = 0.1, seeing_band: str | None = None, seeing_reference: float = 1.0):
        super().__init__()
        if branches not in BRANCHES:
            raise ValueError(f"unknown branches {branches!r} (choose from {', '.join(BRANCHES)})")
        self.branches = branches
        #: Branches kept fixed while the rest trains (:meth:`freeze`).
        self.frozen: tuple[str, ...] = ()
        self.use_image = branches in ("both", "image")
        self.use_photometry = branches in ("both", "photometry")
        self.config: dict[str, Any] = {
            "n_image_bands": int(n_image_bands) if self.use_image else 0,
            "n_photometry_bands": int(n_photometry_bands) if self.use_photometry else 0,
            "branches": branches, "crop": int(crop), "widths": [int(w) for w in widths],
            "convs_per_stage": int(convs_per_stage), "photometry_hidden": [int(w) for w in photometry_hidden],
            "head_hidden": int(head_hidden), "n_classes": int(n_classes), "dropout": float(dropout),
        }
        self.seeing_band = seeing_band if self.use_image else None
        self.seeing_reference = float(seeing_reference)
        if self.seeing_band:
            if not self.seeing_reference > 0:
                raise ValueError(f"seeing_reference must be a positive FWHM in arcsec, got {seeing_reference}")
            self.config.update(seeing_band=str(self.seeing_band), seeing_reference=self.seeing_reference)
        embeddings = []
        if self.use_image:
            if n_image_bands < 1 or len(softening) != n_image_bands:
                raise ValueError("the image branch needs one softening scale per image band")
            self.encoder = ConvEncoder(n_image_bands, widths=widths, convs_per_stage=convs_per_stage)
            self.register_buffer("softening", torch.as_tensor(np.asarray(softening, np.float32)))
            image_features = self.encoder.out_features + (SEEING_FEATURES if self.seeing_band else 0)
            self.image_head = mlp(image_features, [head_hidden], n_classes, dropout)
            embeddings.append(image_features)
        if self.use_photometry:
            p = int(n_photometry_bands)
            if p < 1 or len(mag_mean) != p or len(mag_std) != p or len(colour_mean) != p - 1 or len(colour_std) != p - 1:
                raise ValueError("the photometry branch needs mean / std of every magnitude and adjacent colour")
            for name, values in (("mag_mean", mag_mean), ("mag_std", mag_std), ("colour_mean", colour_mean), ("colour_std", colour_std)):
                self.register_buffer(name, torch.as_tensor(np.asarray(values, np.float32)))
            self.photometry = nn.Sequential(mlp(photometry_feature_count(p), list(photometry_hidden[:-1]), photometry_hidden[-1], dropout),
                                            nn.ReLU())
            self.photometry_head = mlp(photometry_hidden[-1], [head_hidden], n_classes, dropout)
            embeddings.append(photometry_hidden[-1])
        if branches == "both":
            self.fused_head = mlp(sum(embeddings), [head_hidden, head_hidden], n_classes, dropout)

    @staticmethod
    def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
        """The central ``size`` x ``size`` pixels of ``(N, B, H, W)`` stamps (the object's centre
        stays at the geometric centre when H - size is even)."""
        h, w = images.shape[-2:]
        if h < size or w < size:
            raise ValueError(f"stamps of {h}x{w} px are smaller than the model's {size} px input")
        return centre_crop(images, size)

    def embed_image(self, images: torch.Tensor, psf_fwhm: torch.Tensor | None = None) -> torch.Tensor:
        """CNN embedding of the stamps, followed by the seeing inputs when the model reads them
        (``psf_fwhm`` (N,) arcsec, NaN or None where unknown)."""
        images = self.centre_crop(images, self.config["crop"]).float()
        stretched = torch.nan_to_num(torch.asinh(images / self.softening.view(1, -1, 1, 1)), nan=0.0, posinf=0.0, neginf=0.0)
        embedding = self.encoder(stretched)
        if self.seeing_band:
            embedding = torch.cat([embedding, seeing_features(psf_fwhm, len(embedding), self.seeing_reference, embedding)], dim=1)
        return embedding

    def embed_photometry(self, mag: torch.Tensor) -> torch.Tensor:
        features = photometry_features(mag.float(), self.mag_mean, self.mag_std, self.colour_mean, self.colour_std)
        return self.photometry(features)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``batch["image"]`` (N, B, H, W) and / or ``batch["mag"]`` (N, P) -> logits; a model
        that reads the seeing also takes ``batch["psf_fwhm"]`` (N,) [arcsec, NaN if unknown].

        Returns ``logits`` (the model's main output: fused with both branches, else the single
        branch's head) and, with both branches, ``logits_image`` and ``logits_photometry``.
        """
        out: dict[str, torch.Tensor] = {}
        parts = []
        if self.use_image:
            image_embedding = self.embed_image(batch["image"], batch.get("psf_fwhm"))
            out["logits_image"] = self.image_head(image_embedding)
            parts.append(image_embedding)
        if self.use_photometry:
            photometry_embedding = self.embed_photometry(batch["mag"])
            out["logits_photometry"] = self.photometry_head(photometry_embedding)
            parts.append(photometry_embedding)
        if self.branches == "both":
            out["logits"] = self.fused_head(torch.cat(parts, dim=1))
        else:
            out["logits"] = out.pop("logits_image" if self.use_image else "logits_photometry")
        return out

    #: The modules of each branch: its trunk and its auxiliary head.
    BRANCH_MODULES = {"image": ("encoder", "image_head"), "photometry": ("photometry", "photometry_head")}

    def freeze(self, branches: Sequence[str]) -> None:
        """Keep the named branches (``"image"``, ``"photometry"``) fixed while the rest trains:
        their weights get no gradient, and their batch-norm statistics and dropout stay in
        evaluation mode even when the network is put in training mode."""
        unknown = sorted(set(branches) - set(self.BRANCH_MODULES))
        if unknown:
            raise ValueError(f"unknown branches {unknown} (choose from {', '.join(self.BRANCH_MODULES)})")
        absent = [b for b in branches if not (self.use_image if b == "image" else self.use_photometry)]
        if absent:
            raise ValueError(f"this model has no {', '.join(absent)} branch")
        if self.branches != "both" and branches:
            # A single-branch model's classifier is its branch's own head: nothing would train.
            raise ValueError(f"a model with the {self.branches} branch alone has nothing left to train with it fixed")
        self.frozen = tuple(sorted(set(self.frozen) | set(branches)))
        for branch in branches:
            for name in self.BRANCH_MODULES[branch]:
                for parameter in getattr(self, name).parameters():
                    parameter.requires_grad = False
        self.train(self.training)

    def train(self, mode: bool = True) -> SGQNet:
        super().train(mode)
        for branch in self.frozen:
            for name in self.BRANCH_MODULES[branch]:
                getattr(self, name).eval()
        return self

    def photometry_logits(self, mag: torch.Tensor) -> torch.Tensor:
        """Logits from photometry alone (the auxiliary head; the main head for a photometry-only model)."""
        if not self.use_photometry:
            raise ValueError("this model has no photometry branch")
        return self.photometry_head(self.embed_photometry(mag))

    def image_logits(self, images: torch.Tensor, psf_fwhm: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from images alone (and the seeing, for a model that reads it)."""
        if not self.use_image:
            raise ValueError("this model has no image branch")
        return self.image_head(self.embed_image(images, psf_fwhm))


def sgq_loss(class_weights: torch.Tensor | None = None, aux_weight: float = 0.5):
    """Loss function for :class:`~skysort.training.module.TaskModule`: weighted cross-entropy of
    the main logits plus ``aux_weight`` x that of each auxiliary head.

    Parameters
    ----------
    class_weights : tensor (C,), optional
        Per-class weights (inverse class frequency, mean 1) against imbalance. A batch entry
        ``weight`` (N,), when present, multiplies each object's weight.
    aux_weight : float
        Weight of each auxiliary head's cross-entropy.
    """

    def loss_fn(outputs, batch):
        label = batch["label"]
        device = outputs["logits"].device
        # Per-object weight: class weight times an optional per-object weight (e.g. magnitude balance).
        weight = class_weights.to(device)[label] if class_weights is not None else torch.ones(len(label), device=device)
        if "weight" in batch:
            weight = weight * batch["weight"].to(device).float()
        total = weight.sum().clamp_min(1e-12)

        def ce(logits):
            return (F.cross_entropy(logits.float(), label, reduction="none") * weight).sum() / total

        main = ce(outputs["logits"])
        loss = main
        logs = {"ce": main.detach()}
        for name in ("logits_image", "logits_photometry"):
            if name in outputs:
                aux = ce(outputs[name])
                loss = loss + aux_weight * aux
                logs[f"ce_{name.split('_', 1)[1]}"] = aux.detach()
        logs["accuracy"] = (outputs["logits"].argmax(dim=1) == label).float().mean()
        return loss, logs

    return loss_fn
