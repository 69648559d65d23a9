"""Backbones: VGG-16 in torchvision's layout, EfficientNet-Lite0 ImageNet weights, input transforms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from skysort.errors import InputError
from skysort.models.backbones import (VGG16_CONV_INDICES, VGG16Features, load_backbone, prepare_images,
                                      torchvision_vgg16_key_names, weights_sha256)

#: Shapes of torchvision's vgg16().features convolutions (cfg D), by layer index.
TORCHVISION_VGG16_CONV_SHAPES = {
    0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256), 14: (256, 256),
    17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512),
}


def test_vgg16_layer_indexing_matches_torchvision():
    model = VGG16Features()
    layers = list(model.features)
    assert len(layers) == 31
    assert tuple(i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.Conv2d)) == VGG16_CONV_INDICES
    assert [i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.MaxPool2d)] == [4, 9, 16, 23, 30]
    keys = list(model.state_dict())
    assert keys == torchvision_vgg16_key_names()
    for index, (out_ch, in_ch) in TORCHVISION_VGG16_CONV_SHAPES.items():
        assert model.state_dict()[f"features.{index}.weight"].shape == (out_ch, in_ch, 3, 3)
        assert model.state_dict()[f"features.{index}.bias"].shape == (out_ch,)


def test_vgg16_loads_torchvision_format_file(tmp_path):
    # A torchvision-format file: features.* from a VGG built independently, plus classifier.*.
    source = VGG16Features()
    state = {name: torch.full_like(tensor, 0.01 * i) for i, (name, tensor) in enumerate(source.state_dict().items())}
    state["classifier.0.weight"] = torch.zeros(4096, 512 * 7 * 7)[:8]  # ignored entries
    state["classifier.0.bias"] = torch.zeros(8)
    path = tmp_path / "vgg16-imagenet.pth"
    torch.save(state, path)

    backbone = load_backbone("vgg16", weights=path)
    assert backbone.weights_id == weights_sha256(path)
    assert torch.equal(backbone.body.features[28].weight, state["features.28.weight"])
    assert all(not p.requires_grad for p in backbone.parameters())
    assert backbone.output_dim(65) == 512 * 2 * 2  # BlendHunter flattens the 2x2 block-5 map of 65 px stamps

    broken = dict(state)
    broken.pop("features.10.weight")
    torch.save(broken, path)
    with pytest.raises(InputError, match="not a torchvision VGG-16 state dict"):
        load_backbone("vgg16", weights=path)
    path.write_text("not a torch file")
    with pytest.raises(InputError, match="not a readable"):
        load_backbone("vgg16", weights=path)
    with pytest.raises(InputError, match="no such weights file"):
        load_backbone("vgg16", weights=tmp_path / "missing.pth")


def test_vgg16_without_weights_warns():
    with pytest.warns(UserWarning, match="random"):
        backbone = load_backbone("vgg16")
    assert backbone.weights_id == "random"


def test_efficientnet_lite0_imagenet_features_offline():
    backbone = load_backbone("efficientnet-lite0")
    assert backbone.weights_id.startswith("sha256:")
    assert backbone.pooling == "avg"
    stamps = np.random.default_rng(1).normal(0, 14.5, size=(3, 1, 65, 65)).astype(np.float32)
    stamps[:, 0, 30:35, 30:35] += 500.0
    with torch.inference_mode():
        pooled = backbone(prepare_images(stamps, "paper8bit"))
        fmap = backbone.feature_map(prepare_images(stamps, "float"))
    assert pooled.shape == (3, 1280) and torch.isfinite(pooled).all()
    assert fmap.shape == (3, 1280, 3, 3) and torch.isfinite(fmap).all()
    # ImageNet weights, not a random initialisation: a trained stem has a known fingerprint.
    assert backbone.body._conv_stem.weight.abs().sum() > 0
    assert float(pooled.std()) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = load_backbone("efficientnet-lite0", pooling="flatten")
    assert flat.output_dim(65) == 1280 * 9


def test_prepare_images_modes():
    rng = np.random.default_rng(2)
    stamps = np.zeros((2, 1, 65, 65), np.float32)
    stamps[:, :, 7:58, 7:58] = rng.normal(0, 10, size=(2, 1, 51, 51))
    stamps[0, 0, 32, 32] = 1e4
    paper = prepare_images(stamps, "paper8bit")
    assert paper.shape == (2, 3, 65, 65)
    assert torch.allclose(paper[:, 0] * 0.229 + 0.485, paper[:, 1] * 0.224 + 0.456, atol=1e-5)  # grey replicated
    unit = paper[:, 0] * 0.229 + 0.485
    levels = torch.unique(torch.round(unit * 255))
    assert torch.allclose(unit * 255, torch.round(unit * 255), atol=1e-3)  # 8-bit quantised
    assert levels.min() >= 0 and levels.max() <= 255
    floaty = prepare_images(stamps, "float")[:, 0] * 0.229 + 0.485
    assert torch.isclose(floaty[0].max(), torch.tensor(1.0))
    # The asinh stretch keeps the noise of a bright-peaked stamp visible, unlike the linear 8-bit scale.
    assert float(floaty[0, 10:28, 10:28].std()) > 10 * float(unit[0, 10:28, 10:28].std())
    with pytest.raises(ValueError):
        prepare_images(stamps, "png")
