"""Image transforms of the paper (§4.2): random resized crop, horizontal flip, colour jitter; plain resize to test.

torchvision.transforms.v2 on uint8 tensors [3, H, W]; every random draw uses torch's RNG, which the engine seeds.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

# ImageNet statistics: the pretrained backbones expect them; the demo keeps them so both profiles share one path.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_train_transform(input_cfg: dict) -> v2.Transform:
    size = input_cfg["image_size"]
    aug = input_cfg["augment"]
    steps: list[v2.Transform] = [v2.RandomResizedCrop((size, size), scale=tuple(aug["crop_scale"]), antialias=True)]
    if aug["hflip"]:
        steps.append(v2.RandomHorizontalFlip())
    if aug["color_jitter"] > 0:
        j = aug["color_jitter"]
        steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(steps)


def build_eval_transform(input_cfg: dict) -> v2.Transform:
    size = input_cfg["image_size"]
    return v2.Compose(
        [
            v2.Resize((size, size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
