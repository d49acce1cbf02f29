"""CNN backbones that turn an image into a feature map F [batch, C, H', W'] (paper §3.1)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision


class TinyCNN(nn.Module):
    """A small from-scratch CNN for the CPU demo: stride 8, so a 64 px image gives an 8x8 map of 128 channels."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for width in widths:
            layers += [
                nn.Conv2d(in_ch, width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            in_ch = width
        self.body = nn.Sequential(*layers)
        self.num_channels = in_ch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)  # [batch, C, H/8, W/8]


class ResNetTrunk(nn.Module):
    """torchvision ResNet up to layer4 (stride 32): 448 px -> 14x14 maps of 2048 channels for ResNet-101."""

    def __init__(self, arch: str, state_dict: dict | None = None):
        super().__init__()
        if state_dict is None:
            net = getattr(torchvision.models, arch)(weights=None)
        else:
            net = _resnet_from_state_dict(arch, state_dict)
        self.body = nn.Sequential(
            net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
        )
        self.num_channels = net.fc.in_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)  # [batch, C, H/32, W/32]


def _resnet_from_state_dict(arch: str, state_dict: dict) -> nn.Module:
    """torchvision's `arch` holding `state_dict`, without first drawing the random weights it would overwrite.

    Built on the meta device, then given uninitialised memory, then every parameter and buffer is copied from
    `state_dict` (strict). The one exception is a BatchNorm counter missing from the file (some released files lack
    them; load_state_dict keeps the module's own value then), so the counters are zeroed first, as a freshly built
    network has them. Skipping the random draws saves about 0.4 s of a CPU core per ResNet-101, and leaves the
    global RNG as it was for the layers built after the backbone.
    """
    with torch.device("meta"):
        net = getattr(torchvision.models, arch)(weights=None)
    net.to_empty(device="cpu")
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d) and module.num_batches_tracked is not None:
            module.num_batches_tracked.zero_()
    net.load_state_dict(state_dict)
    return net


def build_backbone(cfg: dict, weights: dict | None = None) -> nn.Module:
    """`cfg` is the model block: `backbone` names the network, `pretrained` asks for ImageNet weights.

    `weights` is the ImageNet state dict the engine loaded from the fetched asset (models never read files); it is
    required when `pretrained` is true and refused otherwise, so a run is never silently from scratch or pretrained.
    """
    name = cfg["backbone"]
    if cfg.get("pretrained") and weights is None:
        raise ValueError(f"model.pretrained is true but no ImageNet weights for {name!r} were given to the model")
    if not cfg.get("pretrained") and weights is not None:
        raise ValueError("ImageNet weights were given but model.pretrained is false")
    if name == "tiny_cnn":
        if cfg.get("pretrained"):
            raise ValueError("model.backbone 'tiny_cnn' has no pretrained weights; set model.pretrained: false")
        return TinyCNN()
    return ResNetTrunk(name, weights)


def global_max_pool(features: torch.Tensor) -> torch.Tensor:
    """[batch, C, H, W] -> [batch, C]; amax has a deterministic backward on CUDA, unlike adaptive pooling."""
    return features.amax(dim=(2, 3))


def global_avg_pool(features: torch.Tensor) -> torch.Tensor:
    """[batch, C, H, W] -> [batch, C]; a plain mean instead of AdaptiveAvgPool2d for deterministic CUDA backward."""
    return features.mean(dim=(2, 3))
