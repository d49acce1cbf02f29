"""The embedded demo data set: synthetic multi-label images written in the real VOC 2007 and COCO 2014 formats.

The `demo` profile has to run the whole pipeline on a 2-core CPU with no network in minutes, so it cannot use the
real data sets. Instead this module draws a small synthetic data set from a seed and writes it in exactly the
on-disk layouts of PASCAL VOC 2007 and MS-COCO 2014, so the demo exercises the same loaders (`voc.load_voc`,
`coco.load_coco`) that read the real data. Same seed (and same numpy / Pillow builds) => byte-identical files.

What an image contains
----------------------
* A smooth, low-saturation background (a 3x3 grid of random greys and tints, bilinearly upsampled), 2-5
  neutral-grey clutter strokes, objects, and mild pixel noise (sd 4). Image sides are drawn independently from
  `image_size` (default 80-112 px), saved as JPEG quality 90 with 4:4:4 chroma (no subsampling, so small coloured
  glyphs keep their colour).
* Each object is a glyph: a (shape, colour) pair from 11 shapes (disc, square, triangle, ring, plus, diamond,
  hbar, vbar, star, xcross, frame) and 8 colours (red, green, blue, yellow, magenta, cyan, orange, brown). No two
  classes share a glyph, but glyphs share shapes and colours, so a class is a shape-colour conjunction, not a
  colour. Objects are squares of side 15-35% of the shorter image side, placed at random with at most 25% overlap
  (of the smaller box), drawn with anti-aliased edges and a small colour jitter (sd 12 per channel).
* Label heterogeneity: 7 of the 20 classes of each set have 2 or 3 visual modes, drawn per instance (`GLYPHS`):
  person (red disc / blue vbar / orange star), car (blue square / yellow hbar), bird (cyan triangle / magenta
  star), cat (orange diamond / green xcross), dog (brown triangle / orange ring), bottle (green vbar / cyan plus),
  chair (red frame / blue plus / yellow xcross).
* Long tail: class k in frequency rank order (`FREQUENCY_ORDER`, person first) is drawn independently with base
  prevalence 0.30 * (k+1)^-0.83, i.e. from 0.30 down to 0.025 for the 20th class. After the joins below, the
  realised prevalence runs from about 0.38 (person) and 0.27 (chair) down to about 0.03, a ratio of about 13;
  the mean class prevalence (the mAP of a label-prior baseline) is about 0.09.
* Planted co-occurrence (`PAIRS`): when the first class of a pair is present, the second joins with probability
  0.6: bicycle->person, motorbike->person, bottle->diningtable, diningtable->chair, dog->sofa, cow->sheep, and
  (COCO only) traffic light->car. Pairs are applied in that order, so bottle can pull in a table and the table a
  chair.
* An image with no class drawn gets one class drawn in proportion to the base prevalences, so every image has at
  least one object (except COCO's planted unannotated images). A present class has a second instance with
  probability 0.2 (up to 5 objects per image); the two instances may use different modes. Typical images hold
  1-4 objects of 1-3 classes; about 1.8 positive classes per image on average.
* VOC only: 10% of objects are "difficult": drawn at 60% size and 45% opacity and marked `<difficult>1`; a class
  whose instances in an image are all difficult gets 0 ("ignored") in `<class>_<set>.txt`, as in the devkit.
* COCO only: 3% of the images of each split (at least one) contain no object and have no annotation, so that
  `load_coco(keep_unannotated=...)` has something to decide. The 20 COCO classes use their real category ids and
  names (non-contiguous ids 1..72); each COCO class is drawn with the glyph of the matching VOC concept (truck
  and traffic light, which VOC lacks, have glyphs of their own; VOC's aeroplane and pottedplant are not in COCO).

`describe_demo()` returns this as a markdown summary with the measured label statistics, for the README.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from drmoe_repro.data.voc_classes import VOC_CLASSES
from drmoe_repro.io import dumps_json, load_json, save_json, write_text

# Bump when the generator's output changes, so existing demo folders are regenerated.
DEMO_FORMAT_VERSION = 1
COMPLETE_MARKER = ".demo_complete.json"  # written last: its presence means the tree is complete
_IN_PROGRESS_MARKER = ".demo_generating"  # written first: lets a crashed run be cleaned up and redone

JPEG_QUALITY = 90

# ---------------------------------------------------------------------------------------------------------------
# Class appearance, shared by the VOC and COCO demo sets. Concepts are named by their VOC class name.
# ---------------------------------------------------------------------------------------------------------------

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "green": (35, 170, 55),
    "blue": (40, 75, 225),
    "yellow": (240, 215, 35),
    "magenta": (205, 45, 200),
    "cyan": (35, 205, 215),
    "orange": (250, 145, 20),
    "brown": (125, 70, 25),
}

SHAPES = ("disc", "square", "triangle", "ring", "plus", "diamond", "hbar", "vbar", "star", "xcross", "frame")


@dataclass(frozen=True)
class Glyph:
    shape: str
    colour: str


def _glyphs(*pairs: str) -> tuple[Glyph, ...]:
    """'red disc' -> Glyph('disc', 'red')."""
    out = []
    for text in pairs:
        colour, shape = text.split()
        out.append(Glyph(shape, colour))
    return tuple(out)


# concept -> its visual modes (one is picked per instance). Multi-mode classes model label heterogeneity.
GLYPHS: dict[str, tuple[Glyph, ...]] = {
    "person": _glyphs("red disc", "blue vbar", "orange star"),
    "chair": _glyphs("red frame", "blue plus", "yellow xcross"),
    "car": _glyphs("blue square", "yellow hbar"),
    "diningtable": _glyphs("brown hbar"),
    "dog": _glyphs("brown triangle", "orange ring"),
    "bottle": _glyphs("green vbar", "cyan plus"),
    "cat": _glyphs("orange diamond", "green xcross"),
    "bird": _glyphs("cyan triangle", "magenta star"),
    "bicycle": _glyphs("green ring"),
    "horse": _glyphs("brown diamond"),
    "sofa": _glyphs("magenta hbar"),
    "boat": _glyphs("blue triangle"),
    "truck": _glyphs("brown square"),
    "motorbike": _glyphs("magenta triangle"),
    "tvmonitor": _glyphs("cyan frame"),
    "pottedplant": _glyphs("green star"),
    "sheep": _glyphs("yellow disc"),
    "cow": _glyphs("magenta square"),
    "train": _glyphs("cyan hbar"),
    "bus": _glyphs("yellow square"),
    "traffic light": _glyphs("red vbar"),
    "aeroplane": _glyphs("blue xcross"),
}

# Frequency rank of the concepts, most frequent first (roughly COCO's/VOC's own order). Each data set takes the
# concepts it has in this order and gives rank k the base prevalence TOP_PREVALENCE * (k+1)**-ZIPF_EXPONENT.
FREQUENCY_ORDER = tuple(GLYPHS)
TOP_PREVALENCE = 0.30
ZIPF_EXPONENT = 0.83  # 20th class: 0.30 * 20**-0.83 = 0.025

# (lead, follower): when lead is present, follower joins with JOIN_PROBABILITY. The lead is the rarer class, so a
# join does not flatten the long tail. Applied in this order (chains allowed).
PAIRS: tuple[tuple[str, str], ...] = (
    ("bicycle", "person"),
    ("motorbike", "person"),
    ("bottle", "diningtable"),
    ("diningtable", "chair"),
    ("dog", "sofa"),
    ("cow", "sheep"),
    ("traffic light", "car"),
)
JOIN_PROBABILITY = 0.6
SECOND_INSTANCE_PROBABILITY = 0.2
MAX_OBJECTS = 5
OBJECT_SIZE = (0.15, 0.35)  # glyph side as a fraction of the shorter image side
MAX_OVERLAP = 0.25  # of the smaller box's area
DIFFICULT_SCALE, DIFFICULT_OPACITY = 0.6, 0.45

# The 20 COCO demo categories: real COCO ids, names and supercategories, and the glyph concept each uses.
COCO_DEMO_CATEGORIES: tuple[tuple[int, str, str, str], ...] = (
    (1, "person", "person", "person"),
    (2, "bicycle", "vehicle", "bicycle"),
    (3, "car", "vehicle", "car"),
    (4, "motorcycle", "vehicle", "motorbike"),
    (6, "bus", "vehicle", "bus"),
    (7, "train", "vehicle", "train"),
    (8, "truck", "vehicle", "truck"),
    (9, "boat", "vehicle", "boat"),
    (10, "traffic light", "outdoor", "traffic light"),
    (16, "bird", "animal", "bird"),
    (17, "cat", "animal", "cat"),
    (18, "dog", "animal", "dog"),
    (19, "horse", "animal", "horse"),
    (20, "sheep", "animal", "sheep"),
    (21, "cow", "animal", "cow"),
    (44, "bottle", "kitchen", "bottle"),
    (62, "chair", "furniture", "chair"),
    (63, "couch", "furniture", "sofa"),
    (67, "dining table", "furniture", "diningtable"),
    (72, "tv", "electronic", "tvmonitor"),
)


@dataclass(frozen=True)
class _LabelModel:
    """The label distribution of one demo data set: its classes (as glyph concepts) and how they are drawn."""

    concepts: tuple[str, ...]  # [L] glyph concept of each class, in the data set's class order
    base: np.ndarray  # [L] base prevalence of each class
    pairs: tuple[tuple[int, int], ...]  # (lead column, follower column)

    @classmethod
    def for_concepts(cls, concepts: tuple[str, ...]) -> "_LabelModel":
        ranked = [c for c in FREQUENCY_ORDER if c in concepts]
        rank = {concept: k for k, concept in enumerate(ranked)}
        base = np.array([TOP_PREVALENCE * (rank[c] + 1) ** -ZIPF_EXPONENT for c in concepts])
        column = {concept: j for j, concept in enumerate(concepts)}
        pairs = tuple((column[a], column[b]) for a, b in PAIRS if a in column and b in column)
        return cls(concepts, base, pairs)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Draw the set of present classes of one image: bool [L], at least one True."""
        present = rng.random(len(self.concepts)) < self.base  # [L]
        joins = rng.random(len(self.pairs)) < JOIN_PROBABILITY  # drawn up front: a fixed number of draws
        for (lead, follower), join in zip(self.pairs, joins):
            if present[lead] and join:
                present[follower] = True
        if not present.any():
            present[rng.choice(len(self.concepts), p=self.base / self.base.sum())] = True
        return present


VOC_LABEL_MODEL = _LabelModel.for_concepts(VOC_CLASSES)
COCO_LABEL_MODEL = _LabelModel.for_concepts(tuple(concept for *_, concept in COCO_DEMO_CATEGORIES))

# ---------------------------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Object:
    column: int  # class column in the data set's label order
    x0: int  # tight box, 0-based pixel indices, inclusive
    y0: int
    x1: int
    y1: int
    difficult: bool


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a shape in glyph coordinates u, v in [-1, 1] (v points down)."""
    au, av = np.abs(u), np.abs(v)
    r = np.hypot(u, v)
    if shape == "disc":
        return r <= 0.95
    if shape == "square":
        return np.maximum(au, av) <= 0.8
    if shape == "triangle":  # apex up
        return (v <= 0.85) & (au <= 0.95 * (v + 0.95) / 1.8)
    if shape == "ring":
        return (r <= 0.95) & (r >= 0.5)
    if shape == "plus":
        return ((au <= 0.3) | (av <= 0.3)) & (np.maximum(au, av) <= 0.95)
    if shape == "diamond":
        return au + av <= 1.0
    if shape == "hbar":
        return (au <= 0.95) & (av <= 0.33)
    if shape == "vbar":
        return (au <= 0.33) & (av <= 0.95)
    if shape == "star":  # five points, one up
        theta = np.arctan2(v, u) + np.pi / 2
        return r <= 0.38 + 0.6 * ((1 + np.cos(5 * theta)) / 2) ** 2
    if shape == "xcross":
        return ((np.abs(u - v) <= 0.42) | (np.abs(u + v) <= 0.42)) & (np.maximum(au, av) <= 0.9)
    if shape == "frame":
        return (np.maximum(au, av) <= 0.9) & (np.maximum(au, av) >= 0.52)
    raise ValueError(f"unknown shape {shape!r}")


def _coverage(shape: str, side: int) -> np.ndarray:
    """Anti-aliased coverage [side, side] in [0, 1] of a shape filling a side x side square (2x2 supersampling)."""
    grid = (np.arange(2 * side) + 0.5) / side - 1.0  # sub-pixel centres in [-1, 1]
    inside = _shape_mask(shape, grid[None, :], grid[:, None]).astype(np.float32)  # [2*side, 2*side]
    return inside.reshape(side, 2, side, 2).mean(axis=(1, 3))


def _linear_upsample_weights(n_out: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] weights of 1-D linear interpolation from n_in grid points spanning the output."""
    position = np.linspace(0.0, n_in - 1, n_out)
    weights = np.maximum(0.0, 1.0 - np.abs(position[:, None] - np.arange(n_in)[None, :]))
    return weights


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth, low-saturation background with grey clutter strokes: float32 [H, W, 3] in 0..255."""
    grey = rng.uniform(95.0, 165.0)
    grid = grey + rng.normal(0.0, 14.0, size=(3, 3, 1)) + rng.normal(0.0, 9.0, size=(3, 3, 3))  # [3, 3, 3]
    grid = grid.astype(np.float32)
    wy = _linear_upsample_weights(height, 3).astype(np.float32)  # [H, 3]
    wx = _linear_upsample_weights(width, 3).astype(np.float32)  # [W, 3]
    # Bilinear upsampling written as explicit 3-term sums rather than a matmul, so the result does not depend on
    # the machine's BLAS kernels (byte-identical files across machines with the same numpy).
    rows = wy[:, 0, None, None] * grid[0] + wy[:, 1, None, None] * grid[1] + wy[:, 2, None, None] * grid[2]
    # rows: [H, 3, 3] (grid column, channel)
    image = (
        rows[:, None, 0, :] * wx[None, :, 0, None]
        + rows[:, None, 1, :] * wx[None, :, 1, None]
        + rows[:, None, 2, :] * wx[None, :, 2, None]
    )  # [H, W, 3]

    side = min(height, width)
    for _ in range(int(rng.integers(2, 6))):
        start = rng.uniform([0, 0], [width, height])
        angle = rng.uniform(0.0, np.pi)
        length = rng.uniform(0.2, 0.6) * side
        end = start + length * np.array([np.cos(angle), np.sin(angle)])
        thickness = rng.uniform(1.0, 2.5)
        level = np.float32(rng.uniform(50.0, 210.0))
        # Work in the stroke's bounding window only (the clipped box around the segment, widened by its width).
        pad = thickness / 2 + 1.0
        xa = max(0, int(np.floor(min(start[0], end[0]) - pad)))
        xb = min(width, int(np.ceil(max(start[0], end[0]) + pad)) + 1)
        ya = max(0, int(np.floor(min(start[1], end[1]) - pad)))
        yb = min(height, int(np.ceil(max(start[1], end[1]) + pad)) + 1)
        if xa >= xb or ya >= yb:
            continue
        xs = np.arange(xa, xb, dtype=np.float64)[None, :] + 0.5
        ys = np.arange(ya, yb, dtype=np.float64)[:, None] + 0.5
        # Distance of each pixel centre to the segment start-end.
        d = end - start
        t = np.clip(((xs - start[0]) * d[0] + (ys - start[1]) * d[1]) / (d[0] * d[0] + d[1] * d[1]), 0.0, 1.0)
        distance = np.hypot(xs - (start[0] + t * d[0]), ys - (start[1] + t * d[1]))  # [h, w]
        alpha = np.clip(thickness / 2 + 0.5 - distance, 0.0, 1.0).astype(np.float32)[:, :, None]
        window = image[ya:yb, xa:xb]
        image[ya:yb, xa:xb] = window * (1 - alpha) + level * alpha
    return image


def _place(rng: np.random.Generator, side: int, height: int, width: int, boxes: list[tuple[int, int, int]]):
    """Top-left corner for a side x side box overlapping each earlier box by at most MAX_OVERLAP of the smaller."""
    for _ in range(30):
        x = int(rng.integers(0, width - side + 1))
        y = int(rng.integers(0, height - side + 1))
        ok = True
        for bx, by, bside in boxes:
            overlap_x = max(0, min(x + side, bx + bside) - max(x, bx))
            overlap_y = max(0, min(y + side, by + bside) - max(y, by))
            if overlap_x * overlap_y > MAX_OVERLAP * min(side, bside) ** 2:
                ok = False
                break
        if ok:
            return x, y
    return x, y  # crowded image: accept the last try


def _draw_image(
    rng: np.random.Generator,
    model: _LabelModel,
    image_size: tuple[int, int],
    difficult_fraction: float,
    empty: bool,
) -> tuple[np.ndarray, list[_Object]]:
    """Draw one image: uint8 [H, W, 3] and its objects. `empty` draws background only (no objects)."""
    height, width = (int(n) for n in rng.integers(image_size[0], image_size[1] + 1, size=2))
    image = _background(rng, height, width)  # [H, W, 3] float
    present = model.sample(rng)

    # Instances: one per present class, a second with some probability, at most MAX_OBJECTS in all.
    instances = [int(c) for c in np.flatnonzero(present)]
    for c in list(instances):
        if rng.random() < SECOND_INSTANCE_PROBABILITY and len(instances) < MAX_OBJECTS:
            instances.append(c)
    instances = instances[:MAX_OBJECTS] if not empty else []
    order = rng.permutation(len(instances))  # drawing order: which object lies on top is random

    objects: list[_Object] = []
    boxes: list[tuple[int, int, int]] = []
    short_side = min(height, width)
    for k in order:
        column = instances[k]
        modes = GLYPHS[model.concepts[column]]
        glyph = modes[int(rng.integers(len(modes)))]
        difficult = bool(rng.random() < difficult_fraction)
        side = rng.uniform(*OBJECT_SIZE) * short_side * (DIFFICULT_SCALE if difficult else 1.0)
        side = max(7, int(round(side)))
        x, y = _place(rng, side, height, width, boxes)
        boxes.append((x, y, side))

        colour = np.clip(np.array(PALETTE[glyph.colour]) + rng.normal(0.0, 12.0, 3), 0, 255).astype(np.float32)
        opacity = np.float32(DIFFICULT_OPACITY if difficult else 1.0)
        alpha = _coverage(glyph.shape, side)[:, :, None] * opacity  # [s, s, 1]
        window = image[y : y + side, x : x + side]
        image[y : y + side, x : x + side] = window * (1 - alpha) + colour * alpha

        # Tight box of the pixels at least half covered.
        ys, xs = np.nonzero(alpha[:, :, 0] >= 0.5 * alpha.max())
        box = (x + int(xs.min()), y + int(ys.min()), x + int(xs.max()), y + int(ys.max()))
        objects.append(_Object(column, *box, difficult))

    image += np.float32(4.0) * rng.standard_normal(size=image.shape, dtype=np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), objects


def _save_jpeg(path: Path, pixels: np.ndarray) -> None:
    # Fixed quality, 4:4:4 chroma, no optimisation or progressive scan: the bytes depend on the pixels only.
    Image.fromarray(pixels).save(path, format="JPEG", quality=JPEG_QUALITY, subsampling=0)  # [H, W, 3] uint8: RGB


def _image_rng(seed: int, dataset_code: int, split_code: int, index: int) -> np.random.Generator:
    """One independent stream per image, so image i does not change when other split sizes do."""
    return np.random.default_rng(np.random.SeedSequence([seed, dataset_code, split_code, index]))


_VOC_CODE, _COCO_CODE = 1, 2

# ---------------------------------------------------------------------------------------------------------------
# Skip-if-complete and safe regeneration
# ---------------------------------------------------------------------------------------------------------------


def _prepare_root(root: Path, params: dict, subdirs: tuple[str, ...]) -> bool:
    """Return False if `root` already holds a complete demo set with these parameters; else clear it for writing.

    Only our own output is ever deleted: a non-empty folder without a demo marker (a real data set, say) is
    refused rather than overwritten.
    """
    marker = root / COMPLETE_MARKER
    if marker.is_file():
        try:
            if load_json(marker) == json.loads(dumps_json(params)):
                return False
        except (OSError, ValueError):
            pass  # unreadable marker: regenerate
    elif root.is_dir() and any(root.iterdir()) and not (root / _IN_PROGRESS_MARKER).exists():
        raise FileExistsError(
            f"{root} is not empty and holds no demo-data marker ({COMPLETE_MARKER}); refusing to overwrite it"
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / _IN_PROGRESS_MARKER).write_bytes(b"")
    if marker.exists():
        marker.unlink()
    for name in subdirs:
        if (root / name).exists():
            shutil.rmtree(root / name)
    return True


def _finish_root(root: Path, params: dict) -> None:
    save_json(root / COMPLETE_MARKER, params)
    (root / _IN_PROGRESS_MARKER).unlink()


# ---------------------------------------------------------------------------------------------------------------
# VOC 2007 layout
# ---------------------------------------------------------------------------------------------------------------


def _voc_xml(image_id: str, width: int, height: int, objects: list[_Object]) -> str:
    lines = [
        "<annotation>",
        "\t<folder>VOC2007</folder>",
        f"\t<filename>{image_id}.jpg</filename>",
        "\t<source>",
        "\t\t<database>drmoe-repro synthetic demo</database>",
        f"\t\t<annotation>drmoe-repro demo generator v{DEMO_FORMAT_VERSION}</annotation>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{width}</width>",
        f"\t\t<height>{height}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for obj in objects:
        lines += [
            "\t<object>",
            f"\t\t<name>{VOC_CLASSES[obj.column]}</name>",
            "\t\t<pose>Unspecified</pose>",
            "\t\t<truncated>0</truncated>",
            f"\t\t<difficult>{int(obj.difficult)}</difficult>",
            "\t\t<bndbox>",  # VOC boxes are 1-based and inclusive
            f"\t\t\t<xmin>{obj.x0 + 1}</xmin>",
            f"\t\t\t<ymin>{obj.y0 + 1}</ymin>",
            f"\t\t\t<xmax>{obj.x1 + 1}</xmax>",
            f"\t\t\t<ymax>{obj.y1 + 1}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def write_demo_voc(
    voc_root: str | Path,
    *,
    seed: int,
    n_trainval: int,
    n_test: int,
    image_size: tuple[int, int] = (80, 112),
    difficult_fraction: float = 0.10,
) -> None:
    """Write a synthetic VOC 2007 tree (`JPEGImages/`, `Annotations/`, `ImageSets/Main/`) under `voc_root`.

    Skips the work if `voc_root` already holds a complete demo set made with the same parameters.
    """
    voc_root = Path(voc_root)
    params = {
        "generator": "drmoe_repro.data.demo.write_demo_voc",
        "format_version": DEMO_FORMAT_VERSION,
        "seed": int(seed),
        "n_trainval": int(n_trainval),
        "n_test": int(n_test),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "difficult_fraction": float(difficult_fraction),
    }
    if not _prepare_root(voc_root, params, ("JPEGImages", "Annotations", "ImageSets")):
        return
    for name in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc_root / name).mkdir(parents=True, exist_ok=True)

    # VOC numbers all images together and the test ids interleave with the trainval ids; do the same.
    n_total = n_trainval + n_test
    is_test = np.zeros(n_total, dtype=bool)
    is_test[np.random.default_rng([seed, _VOC_CODE, 99]).permutation(n_total)[:n_test]] = True
    splits = {
        "trainval": [f"{i + 1:06d}" for i in np.flatnonzero(~is_test)],
        "test": [f"{i + 1:06d}" for i in np.flatnonzero(is_test)],
    }

    for split_code, (image_set, ids) in enumerate(splits.items()):
        labels = np.full((len(ids), len(VOC_CLASSES)), -1, dtype=np.int8)  # devkit coding: 1, 0, -1
        for index, image_id in enumerate(ids):
            rng = _image_rng(seed, _VOC_CODE, split_code, index)
            pixels, objects = _draw_image(rng, VOC_LABEL_MODEL, image_size, difficult_fraction, empty=False)
            _save_jpeg(voc_root / "JPEGImages" / f"{image_id}.jpg", pixels)
            xml = _voc_xml(image_id, pixels.shape[1], pixels.shape[0], objects)
            (voc_root / "Annotations" / f"{image_id}.xml").write_bytes(xml.encode("utf-8"))
            for obj in objects:  # 1 if any non-difficult instance, else 0 if only difficult ones
                labels[index, obj.column] = max(labels[index, obj.column], 0 if obj.difficult else 1)
        main = voc_root / "ImageSets" / "Main"
        (main / f"{image_set}.txt").write_bytes("".join(f"{i}\n" for i in ids).encode("ascii"))
        for column, name in enumerate(VOC_CLASSES):
            text = "".join(f"{image_id} {labels[row, column]:2d}\n" for row, image_id in enumerate(ids))
            (main / f"{name}_{image_set}.txt").write_bytes(text.encode("ascii"))
    _finish_root(voc_root, params)


# ---------------------------------------------------------------------------------------------------------------
# COCO 2014 layout
# ---------------------------------------------------------------------------------------------------------------


def write_demo_coco(
    coco_root: str | Path,
    *,
    seed: int,
    n_train: int,
    n_val: int,
    image_size: tuple[int, int] = (80, 112),
    unannotated_fraction: float = 0.03,
) -> None:
    """Write a synthetic COCO 2014 tree (`train2014/`, `val2014/`, `annotations/instances_*.json`).

    Skips the work if `coco_root` already holds a complete demo set made with the same parameters.
    """
    coco_root = Path(coco_root)
    params = {
        "generator": "drmoe_repro.data.demo.write_demo_coco",
        "format_version": DEMO_FORMAT_VERSION,
        "seed": int(seed),
        "n_train": int(n_train),
        "n_val": int(n_val),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "unannotated_fraction": float(unannotated_fraction),
    }
    if not _prepare_root(coco_root, params, ("train2014", "val2014", "annotations")):
        return
    (coco_root / "annotations").mkdir(parents=True, exist_ok=True)

    # Real COCO ids are sparse (1..581929) and train/val are disjoint; the JSON lists images in no id order.
    all_ids = np.random.default_rng([seed, _COCO_CODE, 99]).choice(581929, size=n_train + n_val, replace=False) + 1
    categories = [
        {"id": category_id, "name": name, "supercategory": supercategory}
        for category_id, name, supercategory, _ in COCO_DEMO_CATEGORIES
    ]
    category_id_of_column = [category_id for category_id, *_ in COCO_DEMO_CATEGORIES]

    annotation_id = 0
    for split_code, (split, ids) in enumerate((("train2014", all_ids[:n_train]), ("val2014", all_ids[n_train:]))):
        (coco_root / split).mkdir(parents=True, exist_ok=True)
        n_empty = max(1, int(round(unannotated_fraction * len(ids)))) if unannotated_fraction > 0 and len(ids) else 0
        empty = np.zeros(len(ids), dtype=bool)
        empty[np.random.default_rng([seed, _COCO_CODE, split_code, 98]).permutation(len(ids))[:n_empty]] = True

        images, annotations = [], []
        for index, image_id in enumerate(int(i) for i in ids):
            rng = _image_rng(seed, _COCO_CODE, split_code, index)
            pixels, objects = _draw_image(rng, COCO_LABEL_MODEL, image_size, 0.0, empty=bool(empty[index]))
            file_name = f"COCO_{split}_{image_id:012d}.jpg"
            _save_jpeg(coco_root / split / file_name, pixels)
            height, width = pixels.shape[:2]
            images.append(
                {
                    "id": image_id,
                    "file_name": file_name,
                    "width": width,
                    "height": height,
                    "license": 1,
                    "coco_url": "",
                    "flickr_url": "",
                    "date_captured": "2014-01-01 00:00:00",  # fixed: the files must not depend on the clock
                }
            )
            for obj in objects:
                annotation_id += 1
                x, y = float(obj.x0), float(obj.y0)
                w, h = float(obj.x1 - obj.x0 + 1), float(obj.y1 - obj.y0 + 1)
                annotations.append(
                    {
                        "id": annotation_id,
                        "image_id": image_id,
                        "category_id": category_id_of_column[obj.column],
                        "bbox": [x, y, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                    }
                )
        dataset = {
            "info": {
                "description": "drmoe-repro synthetic demo data in the COCO 2014 format",
                "version": str(DEMO_FORMAT_VERSION),
                "year": 2014,
                "contributor": "drmoe-repro",
                "url": "",
                "date_created": "2014-01-01 00:00:00",
            },
            "licenses": [{"id": 1, "name": "synthetic, no rights reserved", "url": ""}],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        text = json.dumps(dataset, sort_keys=True, separators=(",", ":")) + "\n"
        write_text(coco_root / "annotations" / f"instances_{split}.json", text)
    _finish_root(coco_root, params)


# ---------------------------------------------------------------------------------------------------------------
# Summary for the README
# ---------------------------------------------------------------------------------------------------------------


def _label_statistics(model: _LabelModel, n: int = 20000, seed: int = 0) -> tuple[np.ndarray, float]:
    """Monte-Carlo prevalence [L] of the label model and the mean number of positive classes per image."""
    rng = np.random.default_rng(seed)
    draws = np.stack([model.sample(rng) for _ in range(n)])  # [n, L]
    return draws.mean(axis=0), float(draws.sum(axis=1).mean())


def describe_demo() -> str:
    """Markdown summary of the demo data sets: classes, glyphs, prevalences, co-occurrence pairs, image sizes."""
    parts = [
        "### Demo data set (synthetic, embedded)",
        "",
        "Generated from a seed by `drmoe_repro.data.demo` and written in the real PASCAL VOC 2007 and MS-COCO 2014 "
        "layouts, so the demo runs the same loaders as the real data. Each class is drawn as a coloured glyph "
        "(shape x colour; no two classes share one) on a smooth grey background with grey clutter strokes. Images "
        "are 80-112 px per side (JPEG q90, 4:4:4); objects are 15-35% of the shorter side.",
        "",
        f"* Long tail: base prevalence {TOP_PREVALENCE} x rank^-{ZIPF_EXPONENT} ({TOP_PREVALENCE} for the most "
        "frequent class, 0.025 for the 20th); the realised prevalences below include the planted joins.",
        f"* Planted co-occurrence: when the first class is present, the second joins with p = {JOIN_PROBABILITY}: "
        + ", ".join(f"{a} -> {b}" for a, b in PAIRS)
        + " (a pair applies where the data set has both classes; traffic light -> car is COCO only).",
        "* Label heterogeneity: 7 of 20 classes have 2-3 visual modes, one chosen per instance.",
        "* At least one object per image; a present class has a second instance with p = 0.2; at most 5 objects.",
        "* VOC: 10% of objects are `difficult` (60% size, 45% opacity); a class with only difficult instances is "
        "labelled 0 (ignored).",
        "* COCO: real category ids and names (non-contiguous), 3% of images have no annotation "
        "(left out by default, kept with `keep_unannotated=True`).",
        "",
    ]
    for title, note, names, model in (
        ("VOC 2007 demo", ", counting difficult-only classes", VOC_CLASSES, VOC_LABEL_MODEL),
        ("COCO 2014 demo", ", annotated images", tuple(n for _, n, _, _ in COCO_DEMO_CATEGORIES), COCO_LABEL_MODEL),
    ):
        prevalence, per_image = _label_statistics(model)
        parts += [
            f"**{title}** (expected {per_image:.2f} classes per image{note})",
            "",
            "| class | glyph modes | base prevalence | prevalence |",
            "|---|---|---|---|",
        ]
        for column, name in enumerate(names):
            modes = " / ".join(f"{g.colour} {g.shape}" for g in GLYPHS[model.concepts[column]])
            parts.append(f"| {name} | {modes} | {model.base[column]:.3f} | {prevalence[column]:.3f} |")
        parts.append("")
    return "\n".join(parts)


def generate_for_profile(prof: dict, dataset: str) -> Path:
    """Write the demo data set `dataset` of a profile (sizes `demo_images`, seed `demo_seed`) into
    <data_dir>/<root>; return <data_dir>, the folder its fetch marker records (the data set's root is inside)."""
    spec = prof["datasets"][dataset]
    data_dir = Path(prof["data_dir"])
    root, seed, counts = data_dir / spec["root"], prof["demo_seed"], spec["demo_images"]
    if spec["format"] == "voc":
        write_demo_voc(root, seed=seed, n_trainval=counts["train"], n_test=counts["test"])
    else:
        write_demo_coco(root, seed=seed, n_train=counts["train"], n_val=counts["test"])
    return data_dir
