"""Lightning module of the point-source task's second stage: a conditional GAN that learns to
produce a frozen spectral encoder's features from images (the generator of
:class:`~skysort.models.pointsource.FeatureGenerator` against a
:class:`~skysort.models.pointsource.FeatureDiscriminator`)."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..models.pointsource import FeatureDiscriminator, FeatureGenerator
from .module import OptimConfig, TaskModule


def feature_loss(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]):
    """Mean squared error of the generated to the true spectral feature, with the mean cosine
    similarity as a logged extra."""
    fake, target = outputs["feature"].float(), batch["target_feature"].float()
    return F.mse_loss(fake, target), {"cosine": F.cosine_similarity(fake, target, dim=1).mean()}


class _GeneratorAtZeroNoise(nn.Module):
    def __init__(self, generator: FeatureGenerator):
        super().__init__()
        self.generator = generator

    def forward(self, batch):
        return {"feature": self.generator(batch["image"])[0]}


class FeatureGanModule(TaskModule):
    """Stage 2: conditional GAN with manual optimisation (one discriminator and one generator
    step per batch). The generator's loss is ``weights``-weighted: L2 to the true feature,
    non-saturating adversarial loss, feature matching on the discriminator's hidden layer and
    the frozen spectral classifier's cross-entropy on generated features. Validation (early
    stopping) uses the feature MSE at zero noise (:func:`feature_loss`).
    """

    def __init__(self, generator: FeatureGenerator, discriminator: FeatureDiscriminator, spectral_head: nn.Linear,
                 optim: OptimConfig, weights: Mapping[str, float]):
        super().__init__(_GeneratorAtZeroNoise(generator), feature_loss, optim)
        self.discriminator = discriminator
        self.spectral_head = spectral_head
        for parameter in self.spectral_head.parameters():
            parameter.requires_grad_(False)
        self.weights = dict(weights)
        self.automatic_optimization = False

    @property
    def generator(self) -> FeatureGenerator:
        return self.network.generator

    def training_step(self, batch, batch_idx):
        opt_g, opt_d = self.optimizers()
        images, target = batch["image"], batch["target_feature"].float()
        n = images.shape[0]
        noise = torch.randn(n, self.generator.noise_dim, device=images.device)
        fake, embedding = self.generator(images, noise)
        condition = embedding.detach()

        real_logit, _ = self.discriminator(target, condition)
        fake_logit, _ = self.discriminator(fake.detach(), condition)
        # One-sided label smoothing keeps the discriminator from saturating early.
        d_loss = (F.binary_cross_entropy_with_logits(real_logit.float(), torch.full_like(real_logit.float(), 0.9))
                  + F.binary_cross_entropy_with_logits(fake_logit.float(), torch.zeros_like(fake_logit.float())))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()

        fake_logit, fake_hidden = self.discriminator(fake, condition)
        with torch.no_grad():
            _, real_hidden = self.discriminator(target, condition)
        fake = fake.float()
        terms = {
            "l2": F.mse_loss(fake, target),
            "adversarial": F.binary_cross_entropy_with_logits(fake_logit.float(), torch.ones_like(fake_logit.float())),
            "feature_matching": F.mse_loss(fake_hidden.float().mean(0), real_hidden.float().mean(0)),
            "class": F.cross_entropy(self.spectral_head(fake), batch["label"]),
        }
        g_loss = sum(self.weights[k] * v for k, v in terms.items())
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log("train_loss", g_loss, prog_bar=True, batch_size=n, on_epoch=True, on_step=False)
        self.log("train_d_loss", d_loss, batch_size=n, on_epoch=True, on_step=False)
        for name, value in terms.items():
            self.log(f"train_{name}", value, batch_size=n, on_epoch=True, on_step=False)

    def on_train_epoch_start(self):
        self.spectral_head.eval()

    def configure_optimizers(self):
        # Adam with beta1 = 0.5, the usual choice for GANs (Radford et al. 2016).
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.optim.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.optim.lr, betas=(0.5, 0.999))
        return [opt_g, opt_d]
