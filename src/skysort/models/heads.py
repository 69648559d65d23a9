"""Classification heads trained on top of frozen backbone features.

:class:`PaperHead` is BlendHunter's fully connected top model (Farrens et al. 2022,
arXiv:2110.08180, section 3.2; ``blendhunter/network.py::_build_top_model``)::

    Flatten -> Dense(256) -> Dropout(0.1) -> Dense(1024, ReLU) -> Dense(1, sigmoid)

Notes on fidelity
-----------------
* The first Dense layer has **no activation** in the published code (Keras' default is
  linear) and the paper lists none: it is a learnt linear projection to 256 dimensions. We
  keep it linear.
* The second Dense width is **1024** in the code (``dense_output=(256, 1024)``, the default
  used by every training script of the repository). The paper does not give it; a width of
  512 has also been quoted. ``hidden`` makes it a parameter.
* The sigmoid is not part of the network: it returns logits, trained with
  ``BCEWithLogitsLoss`` (binary cross-entropy computed stably from logits, identical in value
  to Keras' sigmoid + ``binary_crossentropy``); probabilities are ``sigmoid(logit)``.
* Initialisation follows Keras' defaults of the original code: Glorot-uniform kernels, zero
  biases. (A late commit of BlendHunter set the first kernel to zero; that only slows the first
  steps and is not replicated.)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

#: BlendHunter's Dense widths and dropout rate.
PAPER_HIDDEN = (256, 1024)
PAPER_DROPOUT = 0.1


class PaperHead(nn.Module):
    """BlendHunter's fully connected head: features -> one blend logit.

    Parameters
    ----------
    in_features : int
        Length of the (flattened) backbone feature vector.
    hidden : pair of int
        Widths of the linear projection and of the ReLU layer.
    dropout : float
        Dropout rate between them.
    input_key : str
        Batch entry holding the features (``"features"``; ``"image"`` when the head sits on a
        backbone, see :class:`BackboneWithHead`).
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = PAPER_HIDDEN, dropout: float = PAPER_DROPOUT,
                 input_key: str = "features"):
        super().__init__()
        first, second = (int(h) for h in hidden)
        self.in_features = int(in_features)
        self.hidden = (first, second)
        self.dropout_rate = float(dropout)
        self.input_key = input_key
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.in_features, first),  # linear: no activation in BlendHunter's code
            nn.Dropout(self.dropout_rate),
            nn.Linear(first, second),
            nn.ReLU(),
            nn.Linear(second, 1),
        )
        for layer in self.layers:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def config(self) -> dict:
        """Constructor keyword arguments (stored in model files)."""
        return {"in_features": self.in_features, "hidden": list(self.hidden), "dropout": self.dropout_rate}

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, ...)`` features -> ``(N,)`` logits."""
        return self.layers(features).squeeze(-1)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logit": self.logits(batch[self.input_key])}


class BackboneWithHead(nn.Module):
    """A backbone (possibly with a trainable top block) followed by a head, on images.

    Used for fine-tuning: ``batch["image"]`` holds prepared ``(N, 3, H, W)`` images.
    """

    def __init__(self, backbone: nn.Module, head: PaperHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logit": self.head.logits(self.backbone(batch["image"]))}


def binary_loss(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Binary cross-entropy from logits, and accuracy at probability 0.5.

    ``batch["label"]`` holds 0/1 targets (1 = blended).
    """
    logit = outputs["logit"]
    target = batch["label"].to(logit.dtype)
    loss = nn.functional.binary_cross_entropy_with_logits(logit, target)
    accuracy = ((logit > 0).to(logit.dtype) == target).to(torch.float32).mean()
    return loss, {"accuracy": accuracy}
