"""Networks put in their fastest equivalent form for prediction: batch normalisations folded
into the convolutions before them, channels-last weights on the CPU, the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from skysort.inference.predictor import load_predictor
from skysort.models.inference import fold_batch_norms, memory_format_for


def with_running_statistics(network: nn.Module, seed: int = 0) -> nn.Module:
    """``network`` with batch-norm statistics and affine parameters far from their defaults,
    as after training (a fold that ignored any of them would show)."""
    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator))
            module.running_var.copy_(torch.rand(n, generator=generator) * 3 + 0.2)
            module.weight.data.copy_(torch.randn(n, generator=generator))
            module.bias.data.copy_(torch.randn(n, generator=generator))
    return network.eval()


@pytest.mark.parametrize("dims", [1, 2])
def test_folded_network_computes_the_same_function(dims):
    conv, norm = (nn.Conv1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d)
    network = with_running_statistics(nn.Sequential(
        conv(3, 8, 3, padding=1, bias=False), norm(8), nn.ReLU(),
        nn.Sequential(conv(8, 8, 3, padding=1), norm(8), nn.ReLU()),
        norm(8),  # not after a convolution: kept
    ))
    x = torch.randn(4, 3, *([17] * dims))
    with torch.no_grad():
        before = network(x)
        folded = fold_batch_norms(network)
        after = folded(x)
    kinds = [type(m).__name__ for m in folded.modules()]
    assert kinds.count(norm.__name__) == 1 and kinds.count("Identity") == 2
    assert torch.allclose(before, after, atol=1e-5, rtol=1e-5)


def test_a_shipped_predictor_gives_the_unfolded_networks_probabilities():
    from skysort.simulate.blends import make_blend_stamps
    from skysort.tasks.blend import load_blend_model, predict_probabilities

    images, _ = make_blend_stamps(64, seed=3, mode="parametric", noise_sigma=14.5)
    images = images.astype(np.float32)
    network, _ = load_blend_model("blend-cfis")
    with torch.inference_mode():
        expected = predict_probabilities(network.eval(), images)
    predictor = load_predictor("blend-cfis", device="cpu")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in predictor.network.modules())
    convs = [m for m in predictor.network.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs if m.in_channels > 1)
    got = predictor.predict({"image": images})["probabilities"][:, 1]
    assert np.allclose(got, expected, atol=1e-5)


def test_memory_format_by_device():
    assert memory_format_for("cpu") == torch.channels_last
    assert memory_format_for("cuda") == torch.contiguous_format
