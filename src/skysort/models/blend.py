"""Blend identification network: one CNN for every noise level, trained on float fluxes.

:class:`BlendNet` reads a single-band stamp normalised to signal-to-noise units (see
:func:`noise_normalise`) and predicts, from one shared :class:`~skysort.models.cnn.ConvEncoder`
embedding,

* ``blend_logit``: log-odds that the stamp holds a blend (two galaxies);
* ``n_sources_logits``: scores for 1 or 2 sources;
* ``offset``: the companion's offset from the central galaxy ``(dx, dy)`` in units of 10 px
  (x along columns), meaningful only for blends.

Normalising each stamp by its own noise makes the input distribution the same at every noise
level, which is what lets a single network serve noise sigma 5 to 35.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .cnn import ConvEncoder, mlp

#: Offsets are regressed in units of this many pixels (keeps targets of order one).
OFFSET_SCALE_PX = 10.0


def noise_normalise(images: torch.Tensor, padding: int = 7, softening: float = 1.0) -> torch.Tensor:
    """``asinh(flux / (softening * sigma))`` per stamp, sigma the stamp's own noise.

    Parameters
    ----------
    images : Tensor, shape (N, 1, H, W)
        Fluxes (counts); NaN allowed (treated as 0).
    padding : int
        Width of the zero padding around the data region, excluded from the noise estimate.
    softening : float
        In units of the noise sigma.

    Notes
    -----
    sigma is 1.4826 x the median absolute deviation of the data region: robust to the
    galaxies, which cover a small fraction of the pixels.
    """
    images = torch.nan_to_num(images.float(), nan=0.0, posinf=0.0, neginf=0.0)
    region = images[..., padding : images.shape[-2] - padding, padding : images.shape[-1] - padding] if padding else images
    flat = region.flatten(1)
    median = flat.median(dim=1, keepdim=True).values
    sigma = 1.4826 * (flat - median).abs().median(dim=1).values
    sigma = torch.clamp(sigma, min=1e-6).view(-1, 1, 1, 1)
    return torch.asinh(images / (softening * sigma))


class BlendNet(nn.Module):
    """CNN blend classifier with source-count and companion-offset heads.

    Parameters
    ----------
    widths : sequence of int
        Encoder stage widths.
    convs_per_stage : int
        Convolutions per encoder stage.
    hidden : int
        Width of the shared fully connected layer.
    padding : int
        Zero padding of the stamps (excluded from the noise estimate).
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 96), convs_per_stage: int = 2, hidden: int = 128, padding: int = 7):
        super().__init__()
        self.config = {"widths": list(widths), "convs_per_stage": convs_per_stage, "hidden": hidden, "padding": padding}
        self.padding = padding
        self.encoder = ConvEncoder(1, widths, convs_per_stage=convs_per_stage)
        self.trunk = mlp(self.encoder.out_features, [], hidden)
        self.blend = nn.Linear(hidden, 1)
        self.n_sources = nn.Linear(hidden, 2)
        self.offset = nn.Linear(hidden, 2)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = noise_normalise(batch["image"], padding=self.padding)
        h = F.relu(self.trunk(self.encoder(x)))
        return {"blend_logit": self.blend(h).squeeze(1), "n_sources_logits": self.n_sources(h), "offset": self.offset(h)}


def blend_loss(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
               offset_weight: float = 0.3, count_weight: float = 0.3) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Binary cross-entropy on blend, cross-entropy on source count, Huber loss on the offset
    of true blends only."""
    target = batch["blended"].float()
    bce = F.binary_cross_entropy_with_logits(outputs["blend_logit"].float(), target)
    count = F.cross_entropy(outputs["n_sources_logits"].float(), batch["blended"].long())
    mask = target > 0.5
    if mask.any():
        offset = F.smooth_l1_loss(outputs["offset"].float()[mask], batch["offset"].float()[mask])
    else:
        offset = outputs["offset"].sum() * 0.0
    accuracy = ((outputs["blend_logit"] > 0).float() == target).float().mean()
    loss = bce + count_weight * count + offset_weight * offset
    return loss, {"bce": bce.detach(), "offset_loss": offset.detach(), "accuracy": accuracy.detach()}
