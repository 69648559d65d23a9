"""A trained network in its fastest equivalent form for prediction."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: The batch normalisation that can follow each kind of convolution.
_FOLDABLE = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d}


def fold_batch_norms(network: nn.Module) -> nn.Module:
    """Fold each batch normalisation that directly follows a convolution in a
    :class:`~torch.nn.Sequential` into that convolution, in place; returns ``network`` in
    evaluation mode.

    In evaluation mode a batch normalisation is a fixed per-channel scale and offset, so the
    folded convolution computes the same function (to float rounding) with one pass over the
    activations fewer. The network must not be trained afterwards: the statistics it would
    update are gone.
    """
    network.eval()
    for module in network.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (first, conv), (second, norm) in zip(children, children[1:]):
            if type(conv) in _FOLDABLE and type(norm) is _FOLDABLE[type(conv)] and norm.running_mean is not None:
                setattr(module, first, fuse_conv_bn_eval(conv, norm))
                setattr(module, second, nn.Identity())
    return network


def memory_format_for(device: str | torch.device) -> torch.memory_format:
    """How image convolutions store their weights on ``device``: channels-last on the CPU,
    where oneDNN runs convolutions of small stamps about twice as fast in that layout
    (``benchmarks/blend_predict_throughput.py``), and PyTorch's default elsewhere."""
    return torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format


__all__ = ["fold_batch_norms", "memory_format_for"]
