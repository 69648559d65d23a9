"""Compact convolutional encoders trained from scratch, shared by every task.

A :class:`ConvEncoder` maps ``(N, C, H, W)`` stamps to an embedding ``(N, D)``: stages of two
3x3 convolutions with batch normalisation and ReLU, each stage but the last followed by 2x2
max pooling, then global average pooling. Small enough to train on a laptop CPU, large enough
for 64-pixel survey stamps.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int, convs: int = 2) -> nn.Sequential:
    """``convs`` 3x3 convolutions (same padding), each with batch norm and ReLU."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """Stamp encoder: conv stages with pooling, then global average (and max) pooling.

    Parameters
    ----------
    in_channels : int
        Image bands.
    widths : sequence of int
        Channels of each stage; the spatial size halves between stages.
    global_max : bool
        Concatenate global max pooling to the average (helps with small, faint features
        such as a faint companion in a blend).
    convs_per_stage : int
        3x3 convolutions per stage (1 halves the cost; 2 sees larger structures per stage).
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (32, 64, 96, 128), global_max: bool = True,
                 convs_per_stage: int = 2):
        super().__init__()
        self.in_channels = in_channels
        self.widths = tuple(int(w) for w in widths)
        self.global_max = global_max
        self.convs_per_stage = convs_per_stage
        layers: list[nn.Module] = []
        previous = in_channels
        for i, width in enumerate(self.widths):
            layers.append(conv_block(previous, width, convs_per_stage if i else 1))
            if i < len(self.widths) - 1:
                layers.append(nn.MaxPool2d(2))
            previous = width
        self.features = nn.Sequential(*layers)
        self.out_features = previous * (2 if global_max else 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.features(images)
        pooled = [maps.mean(dim=(-2, -1))]
        if self.global_max:
            pooled.append(maps.amax(dim=(-2, -1)))
        return torch.cat(pooled, dim=1)


def mlp(in_features: int, hidden: Sequence[int], out_features: int, dropout: float = 0.1) -> nn.Sequential:
    """Fully connected layers with ReLU and dropout between them."""
    layers: list[nn.Module] = []
    previous = in_features
    for width in hidden:
        layers += [nn.Linear(previous, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        previous = width
    layers.append(nn.Linear(previous, out_features))
    return nn.Sequential(*layers)
