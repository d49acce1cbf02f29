"""Image transforms of the paper (§4.2): random resized crop, horizontal flip, colour jitter; plain resize to test.
Query2Label's, ML-GCN's and ADD-GCN's own training transforms serve their published recipes (engine/recipes.py).

torchvision.transforms.v2 on uint8 tensors [3, H, W]; every random draw uses torch's RNG, which the engine seeds.
"""

from __future__ import annotations

import math

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


# ----------------------------------------------------------------------------------------------------------------
# Query2Label's training transform (SlongLiu/query2labels lib/dataset/get_dataset.py:8-28, HEAD 55eb050)
# ----------------------------------------------------------------------------------------------------------------
#
# Resize((S, S)) -> SLCutoutPIL -> RandAugment() -> ToTensor -> Normalize(ImageNet mean/std). Q2L normalises with
# ImageNet statistics (get_dataset.py:13-14; --orid_norm, off by default, would use mean 0 / std 1), unlike ASL's
# train.py. Here on uint8 tensors [3, H, W] with torch's RNG (Q2L draws from numpy's and Python's), so an image's
# augmentation is fixed by the engine's per-image seed; the geometry and magnitudes are the code's.

RANDAUGMENT_FILL = [128.0, 128.0, 128.0]  # randaugment 1.0.2 SubPolicy fillcolor
RANDAUGMENT_CUTOUT_FILL = (125, 122, 113)  # randaugment 1.0.2 Cutout.__call__


def _randint(high: int) -> int:
    """Uniform integer in [0, high) from torch's CPU generator (the one the engine seeds per image)."""
    return int(torch.randint(high, ()).item())


def _sign() -> float:
    return 1.0 if _randint(2) else -1.0


class Q2LCutout:
    """One rectangle of one random colour (each channel uniform in 0..255), placed as Q2L's cutouts place it.

    Side from `length` (SLCutoutPIL, lib/utils/cutout.py:6-34) or, if `factor` is given, int(factor * side + 0.5)
    (CutoutPIL, cutout.py:36-55, ASL's train.py). Centre uniform over the image; corners centre -/+ side // 2 clipped
    to [0, size]; PIL's ImageDraw.rectangle fills both corners inclusively, and Pillow < 10 swapped reversed
    corners (libImaging/Draw.c: ImagingDrawRectangle, hline), so length -1 -- Q2L's default, which the README
    command keeps -- paints the 3x3 block around the centre (2 px wide at a border). Pillow >= 10 raises there.
    """

    def __init__(self, length: int = -1, factor: float | None = None):
        self.length, self.factor = length, factor

    def box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right), inclusive, of the rectangle to fill, around a centre drawn here."""
        yc, xc = _randint(height), _randint(width)
        return self.box_at(yc, xc, height, width)

    def box_at(self, yc: int, xc: int, height: int, width: int) -> tuple[int, int, int, int]:
        if self.factor is not None:
            side_y, side_x = int(self.factor * height + 0.5), int(self.factor * width + 0.5)
        else:
            side_y = side_x = int(self.length)
        y1, y2 = min(max(yc - side_y // 2, 0), height), min(max(yc + side_y // 2, 0), height)
        x1, x2 = min(max(xc - side_x // 2, 0), width), min(max(xc + side_x // 2, 0), width)
        top, bottom = min(y1, y2), min(max(y1, y2), height - 1)
        left, right = min(x1, x2), min(max(x1, x2), width - 1)
        return top, bottom, left, right

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        top, bottom, left, right = self.box(image.shape[-2], image.shape[-1])
        colour = torch.randint(256, (3,)).to(device=image.device, dtype=image.dtype)  # [3]
        out = image.clone()  # [3, H, W]
        out[..., top:bottom + 1, left:right + 1] = colour[:, None, None]
        return out

    def __repr__(self) -> str:
        return f"Q2LCutout(length={self.length}, factor={self.factor})"


class PackageRandAugment:
    """`RandAugment()` of the `randaugment` package (1.0.2) that Q2L imports (get_dataset.py:4), on tensors.

    Two (operation, magnitude index) pairs drawn uniformly from 15 operations x indices 1..9; each applied with
    probability 0.5; the magnitude is np.linspace(range, 10)[index]. Signs of shear, translation and the colour
    factors are random; rotation is counter-clockwise only. Deviations: shears interpolate bilinearly (the package
    uses PIL's bicubic, which tensor affine lacks); colour ops use torchvision's tensor ports of PIL's ImageEnhance.
    """

    OPS = ("Invert", "Cutout", "Sharpness", "AutoContrast", "Posterize", "ShearX", "TranslateX", "TranslateY",
           "ShearY", "Rotate", "Equalize", "Contrast", "Color", "Solarize", "Brightness")
    RANGES = {"ShearX": (0.0, 0.3), "ShearY": (0.0, 0.3), "TranslateX": (0.0, 150 / 331),
              "TranslateY": (0.0, 150 / 331), "Rotate": (0.0, 30.0), "Color": (0.0, 0.9), "Posterize": (8.0, 4.0),
              "Solarize": (256.0, 0.0), "Contrast": (0.0, 0.9), "Sharpness": (0.0, 0.9), "Brightness": (0.0, 0.9),
              "Cutout": (0.0, 20.0)}
    ROUNDED = ("Posterize", "Cutout")

    @classmethod
    def magnitude(cls, op: str, index: int) -> float:
        low, high = cls.RANGES.get(op, (0.0, 0.0))
        value = low + (high - low) * index / 9
        return float(round(value)) if op in cls.ROUNDED else value

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        choices = [_randint(len(self.OPS) * 9) for _ in range(2)]  # a uniform policy = two uniform (op, index)
        for choice in choices:
            op, index = self.OPS[choice // 9], choice % 9 + 1
            if torch.rand(()).item() < 0.5:
                image = self.apply(image, op, self.magnitude(op, index))
        return image

    @staticmethod
    def apply(image: torch.Tensor, op: str, m: float) -> torch.Tensor:
        """One operation on a uint8 [3, H, W] image, as the package's SubPolicy lambdas do it on a PIL image."""
        F = v2.functional
        height, width = image.shape[-2:]
        nearest, bilinear = v2.InterpolationMode.NEAREST, v2.InterpolationMode.BILINEAR
        if op == "Invert":
            return F.invert(image)
        if op == "AutoContrast":
            return F.autocontrast(image)
        if op == "Equalize":
            return F.equalize(image)
        if op == "Posterize":
            return F.posterize(image, int(m))
        if op == "Solarize":
            return F.solarize(image, m)  # pixels >= threshold inverted, as PIL's ImageOps.solarize
        if op in ("Color", "Contrast", "Sharpness", "Brightness"):
            adjust = {"Color": F.adjust_saturation, "Contrast": F.adjust_contrast, "Sharpness": F.adjust_sharpness,
                      "Brightness": F.adjust_brightness}[op]
            return adjust(image, 1 + m * _sign())
        if op in ("ShearX", "ShearY"):
            # PIL's (1, m, 0, 0, 1, 0) shears about the top-left corner: torchvision's RandAugment mapping
            degrees = math.degrees(math.atan(m * _sign()))
            shear = [degrees, 0.0] if op == "ShearX" else [0.0, degrees]
            return F.affine(image, angle=0.0, translate=[0.0, 0.0], scale=1.0, shear=shear, interpolation=bilinear,
                            fill=RANDAUGMENT_FILL, center=[0.0, 0.0])
        if op in ("TranslateX", "TranslateY"):
            shift = m * (width if op == "TranslateX" else height) * _sign()  # PIL transform: nearest sampling
            translate = [shift, 0.0] if op == "TranslateX" else [0.0, shift]
            return F.affine(image, angle=0.0, translate=translate, scale=1.0, shear=[0.0, 0.0],
                            interpolation=nearest, fill=RANDAUGMENT_FILL)
        if op == "Rotate":
            return F.rotate(image, m, interpolation=nearest, fill=RANDAUGMENT_FILL)  # PIL rotate: nearest, CCW
        if op == "Cutout":
            # A size x size hole, half-open [c - size//2, c + size//2) clipped, of a fixed colour
            half = int(m) // 2
            xc, yc = _randint(width), _randint(height)
            out = image.clone()  # [3, H, W]
            fill = torch.tensor(RANDAUGMENT_CUTOUT_FILL, dtype=image.dtype, device=image.device)  # [3]
            out[..., max(0, yc - half):min(height, yc + half), max(0, xc - half):min(width, xc + half)] = \
                fill[:, None, None]
            return out
        raise ValueError(f"unknown RandAugment operation {op!r}")

    def __repr__(self) -> str:
        return "PackageRandAugment(two of 15 operations, p 0.5, magnitude index 1..9)"


def build_q2l_train_transform(image_size: int, cutout: str = "released", randaugment: str = "package") -> v2.Compose:
    """Q2L's training transform, uint8 [3, H, W] -> float32 [3, S, S] normalised with ImageNet mean/std.

    cutout: "released" -- SLCutoutPIL(n_holes=1, length=-1) as get_dataset.py:25 builds it: the README's
    --cut_fact 0.5 is parsed (main_mlc.py:121) but never passed, so the hole is 3x3 pixels; "factor" -- the
    half-size square the flag intends (CutoutPIL(cutout_factor=0.5), ASL's train.py); "none".
    randaugment: "package" -- the `randaugment` package's policy Q2L runs (PackageRandAugment); "torchvision" --
    v2.RandAugment() (2 ops, magnitude 9 of 31, always applied), a different policy; "none".
    """
    steps: list = [v2.Resize((image_size, image_size), antialias=True)]
    if cutout == "released":
        steps.append(Q2LCutout(length=-1))
    elif cutout == "factor":
        steps.append(Q2LCutout(factor=0.5))
    elif cutout != "none":
        raise ValueError(f"cutout {cutout!r} is not known; expected 'released', 'factor' or 'none'")
    if randaugment == "package":
        steps.append(PackageRandAugment())
    elif randaugment == "torchvision":
        steps.append(v2.RandAugment())
    elif randaugment != "none":
        raise ValueError(f"randaugment {randaugment!r} is not known; expected 'package', 'torchvision' or 'none'")
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(steps)


def build_q2l_eval_transform(image_size: int) -> v2.Compose:
    """Q2L's test transform (get_dataset.py:30-33): what build_eval_transform already does for image_size S."""
    return v2.Compose([v2.Resize((image_size, image_size), antialias=True), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


# ----------------------------------------------------------------------------------------------------------------
# ML-GCN's and ADD-GCN's training transform (Megvii-Nanjing/ML-GCN util.py:21-89 and engine.py:128-133 at 5517d6f;
# Yejin0111/ADD-GCN data/__init__.py:101-109 at b7653fe, which first resizes to S + 64)
# ----------------------------------------------------------------------------------------------------------------

GCN_CROP_SCALES = (1.0, 0.875, 0.75, 0.66, 0.5)  # engine.py:129 (the class default [1, 875, .75, .66] is never used)
GCN_MAX_DISTORT = 2
ADDGCN_RESIZE_MARGIN = 64  # ADD-GCN: Resize((S + 64, S + 64)) before the crop


class MultiScaleCrop:
    """ML-GCN's MultiScaleCrop(S, scales=GCN_CROP_SCALES, max_distort=2) with its fixed 13-position grid, on tensors.

    Crop sides are int(shorter side * scale), a side within 3 px of S becoming S; width and height are drawn as one
    pair among those at most `max_distort` scale steps apart (so the aspect ratio changes); the crop's corner is one
    of 13 grid positions (corners, centre, edge centres, quarter points, steps of (free space) // 4). The crop is
    resized to S x S bilinearly (antialiased, as PIL's resize). Draws use torch's RNG (ML-GCN's use Python's
    `random`); a crop reaching outside the image is filled with zeros, as PIL's crop fills it.
    """

    def __init__(self, size: int, scales: tuple[float, ...] = GCN_CROP_SCALES, max_distort: int = GCN_MAX_DISTORT):
        self.size, self.scales, self.max_distort = int(size), tuple(scales), int(max_distort)

    def crop_pairs(self, height: int, width: int) -> list[tuple[int, int]]:
        """Every (crop width, crop height) the image may get, in ML-GCN's order."""
        sides = [int(min(height, width) * s) for s in self.scales]
        sides = [self.size if abs(side - self.size) < 3 else side for side in sides]
        return [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= self.max_distort]

    @staticmethod
    def grid_offsets(height: int, width: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
        """The 13 (left, top) corners of fill_fix_offset(more_fix_crop=True), in ML-GCN's order."""
        w, h = (width - crop_w) // 4, (height - crop_h) // 4
        quarters = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3),
                    (3, 3)]
        return [(i * w, j * h) for i, j in quarters]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        pairs = self.crop_pairs(height, width)
        crop_w, crop_h = pairs[_randint(len(pairs))]
        offsets = self.grid_offsets(height, width, crop_w, crop_h)
        left, top = offsets[_randint(len(offsets))]
        crop = image.new_zeros((*image.shape[:-2], crop_h, crop_w))  # [3, h, w]; zeros where the image ends
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + crop_h, height), min(left + crop_w, width)
        crop[..., y0 - top:y1 - top, x0 - left:x1 - left] = image[..., y0:y1, x0:x1]
        return v2.functional.resize(crop, [self.size, self.size], antialias=True)  # [3, S, S]

    def __repr__(self) -> str:
        return f"MultiScaleCrop(size={self.size}, scales={self.scales}, max_distort={self.max_distort})"


def build_gcn_train_transform(image_size: int, resize_first: int | None = None) -> v2.Compose:
    """[Resize((R, R)) ->] MultiScaleCrop(S) -> horizontal flip -> ImageNet normalisation; no colour jitter.

    resize_first None: ML-GCN's (the crop works on the image as loaded); S + 64: ADD-GCN's.
    """
    steps: list = [] if resize_first is None else [v2.Resize((resize_first, resize_first), antialias=True)]
    steps += [MultiScaleCrop(image_size), v2.RandomHorizontalFlip(),
              v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(steps)


def build_recipe_train_transform(augment: str, input_cfg: dict) -> v2.Compose:
    """The training transform a recipe asks for (engine/recipes.py `Recipe.augment`).

    "paper": the profile's input.augment (build_train_transform); "q2l": Query2Label's; "mlgcn": ML-GCN's;
    "addgcn": ADD-GCN's.
    """
    size = input_cfg["image_size"]
    if augment == "paper":
        return build_train_transform(input_cfg)
    if augment == "q2l":
        return build_q2l_train_transform(size)
    if augment == "mlgcn":
        return build_gcn_train_transform(size)
    if augment == "addgcn":
        return build_gcn_train_transform(size, resize_first=size + ADDGCN_RESIZE_MARGIN)
    raise ValueError(f"augmentation {augment!r} is not known; expected 'paper', 'q2l', 'mlgcn' or 'addgcn'")
