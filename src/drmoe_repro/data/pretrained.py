"""Pretrained inputs of the paper profile: ImageNet backbone weights and GloVe label embeddings.

Backbone weights come from torchvision's weights API. The 2019-2021 multi-label papers (ML-GCN, ADD-GCN, ASL,
Query2Label) started from the original ImageNet ResNet-101 (``IMAGENET1K_V1``, 77.4 % top-1); ``IMAGENET1K_V2``
(81.9 %, a newer training recipe) is an option, not the default, since a stronger start would flatter every system.

The weights file is downloaded by `drmoe_repro.data.fetch` rather than by ``torch.hub``: the same resume, time-out,
offline message and checksum record as the data sets. It is cached under the file name torch.hub uses
(``resnet101-63fe2227.pth``) in the folder the caller names, so a file copied from a ``~/.cache/torch/hub/checkpoints``
works as it is; the 8 hex digits in that name are the start of the file's SHA-256 and are verified.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torchvision

from drmoe_repro.data.fetch import FetchError, fetch_asset

log = logging.getLogger(__name__)

DEFAULT_IMAGENET_VERSION = "IMAGENET1K_V1"


# --------------------------------------------------------------------------------------------------------------------
# ImageNet backbone weights
# --------------------------------------------------------------------------------------------------------------------


def imagenet_weights_asset(arch: str = "resnet101", version: str = DEFAULT_IMAGENET_VERSION) -> dict[str, Any]:
    """The fetch asset spec (urls, filename, sha256 prefix) of torchvision's `arch` weights `version`."""
    try:
        weights_enum = torchvision.models.get_model_weights(arch)
    except ValueError:
        raise FetchError(f"torchvision has no pretrained weights for the architecture {arch!r}") from None
    try:
        weights = weights_enum[version]
    except KeyError:
        available = ", ".join(w.name for w in weights_enum)
        raise FetchError(f"{arch} has no weights {version!r}; torchvision offers: {available}") from None
    filename = PurePosixPath(weights.url).name
    # torch.hub's naming convention: <name>-<first 8+ hex digits of the SHA-256>.<ext>
    match = re.search(r"-([0-9a-f]{8,64})\.", filename)
    return {
        "urls": [weights.url],
        "md5": None,
        "sha256": match.group(1) if match else None,
        "filename": filename,
        "extract": False,
    }


def imagenet_backbone_weights(
    arch: str,
    cache_dir: str | os.PathLike,
    local: str | os.PathLike | None = None,
    *,
    version: str = DEFAULT_IMAGENET_VERSION,
    urls: Sequence[str] | None = None,
    timeout: float = 60,
    progress: bool = True,
    config_key: str | None = None,
) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of torchvision's `arch` (e.g. "resnet101"), loaded on the CPU with weights_only=True.

    `local`: a .pth file the user already has (a plain state dict, or a checkpoint holding one under "state_dict" or
    "model"; a DataParallel "module." prefix is stripped). Otherwise the file is downloaded once into `cache_dir`.
    `urls` replaces torchvision's URL (mirrors; tests). The state dict is checked against the architecture's keys
    and shapes, so a ResNet-50 file given for a ResNet-101 fails here with a clear message, not deep in training.
    """
    if local is not None:
        path = Path(local).expanduser()
        if not path.is_file():
            raise FetchError(f"ImageNet weights for {arch}: local file {path} does not exist")
    else:
        spec = imagenet_weights_asset(arch, version)
        if urls is not None:
            spec["urls"] = list(urls)
        name = f"{arch}_imagenet"
        path = fetch_asset(
            name,
            spec,
            cache_dir,
            cache_dir,
            timeout=timeout,
            progress=progress,
            config_key=config_key or f"profiles.paper.assets.{name}",
        )
    return load_imagenet_state_dict(arch, path)


def load_imagenet_state_dict(arch: str, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a weights file (weights_only=True) and check it is a torchvision `arch` state dict; errors name the file."""
    source = str(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated file, a pickle with code in it, not a torch file at all
        raise FetchError(f"ImageNet weights for {arch}: cannot load {source} with weights_only=True ({err}); "
                         "delete it (and its fetch marker) and fetch it again") from None
    state = _unwrap_state_dict(loaded, source)
    _check_state_dict(state, arch, source)
    return state


def load_imagenet_resnet101(
    cache_dir: str | os.PathLike,
    local: str | os.PathLike | None = None,
    version: str = DEFAULT_IMAGENET_VERSION,
    **kwargs: Any,
) -> dict[str, torch.Tensor]:
    """`imagenet_backbone_weights` for ResNet-101, the paper's backbone."""
    return imagenet_backbone_weights("resnet101", cache_dir, local, version=version, **kwargs)


def _unwrap_state_dict(loaded: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise FetchError(f"{source} does not hold a state dict (a mapping of parameter names to tensors)")
    state = dict(loaded)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _check_state_dict(state: Mapping[str, torch.Tensor], arch: str, source: str) -> None:
    """Compare keys and shapes with torchvision's `arch`, built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        expected = torchvision.models.get_model(arch, weights=None).state_dict()
    # BatchNorm's num_batches_tracked counters came after the 2017 ImageNet files; load_state_dict fills them in.
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith(".num_batches_tracked"))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise FetchError(f"{source} is not a torchvision {arch} state dict: " + "; ".join(parts))


# --------------------------------------------------------------------------------------------------------------------
# GloVe label embeddings
# --------------------------------------------------------------------------------------------------------------------


class MissingWordError(LookupError):
    """A label (or a part of it) is not in the GloVe vocabulary; the message names the word and the file."""


# VOC 2007 writes some class names as one token that GloVe does not know as such. ML-GCN's released VOC vectors
# (Megvii-Nanjing/ML-GCN data/voc/voc_glove_word2vec.pkl at 5517d6f) give "tvmonitor" exactly the vector of COCO's
# "tv" (data/coco/coco_glove_word2vec.pkl, largest difference 0), so it is "tv" here. Their "pottedplant" and
# "diningtable" vectors match no COCO row and cannot be traced without GloVe itself (cosine 0.84 and 0.87 with COCO's
# "potted plant" and "dining table"): those two are the mean of both words, as COCO's two-word names are
# (paper/ambiguities.yaml: glove-label-words).
GLOVE_ALIASES: dict[str, str] = {
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv",
}

_SEPARATORS = re.compile(r"[\s_\-]+")


def _label_tokens(label: str, aliases: Mapping[str, str]) -> tuple[str, list[str]]:
    """(whole form, parts) of a label: lower-cased (GloVe 6B is lower case), aliases applied, split on ' ', '_', '-'."""
    whole = label.strip().lower()
    whole = aliases.get(whole, whole)
    return whole, [p for p in _SEPARATORS.split(whole) if p]


def load_glove(
    path: str | os.PathLike,
    words: Sequence[str],
    dim: int = 300,
    *,
    missing: str = "error",
    aliases: Mapping[str, str] | None = None,
) -> np.ndarray:
    """GloVe vectors of `words` (label names) as float32 [len(words), dim], in the order given.

    The rule for a label:
      1. lower-case it and apply `aliases` (default `GLOVE_ALIASES`: "pottedplant" -> "potted plant", ...);
      2. if the whole label is a GloVe token (e.g. "person", "t-shirt"), use its vector;
      3. otherwise split it on spaces, underscores and hyphens ("traffic light" -> "traffic", "light") and use the
         mean of the parts' vectors.
    A part missing from the file raises `MissingWordError` naming the part, the label and the file; with
    ``missing="zeros"`` the mean is over the parts that were found (a zero vector if none), with a logged warning.

    `path` is the GloVe text file (a word, then `dim` floats, space-separated, one word a line), or a folder holding
    ``glove.6B.<dim>d.txt`` (the extracted glove_6B asset). Only the lines of the needed words are parsed.
    """
    if missing not in ("error", "zeros"):
        raise ValueError(f"missing must be 'error' or 'zeros', got {missing!r}")
    path = Path(path)
    if path.is_dir():
        path = path / f"glove.6B.{dim}d.txt"
    if not path.is_file():
        raise FileNotFoundError(f"GloVe file {path} does not exist (fetch the glove_6B asset first)")
    aliases = GLOVE_ALIASES if aliases is None else aliases

    tokens = [_label_tokens(word, aliases) for word in words]
    empty = [word for word, (_, parts) in zip(words, tokens) if not parts]
    if empty:
        raise ValueError(f"empty label name(s) {empty!r}: nothing to look up in {path}")
    needed = {whole for whole, _ in tokens} | {part for _, parts in tokens for part in parts}
    vectors: dict[str, np.ndarray] = {}
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            word, _, rest = line.partition(" ")
            if word not in needed or word in vectors:
                continue
            values = rest.split()
            if len(values) != dim:
                raise ValueError(f"{path}, line {line_number}: {word!r} has {len(values)} values, expected {dim}")
            vectors[word] = np.asarray(values, dtype=np.float32)
            if len(vectors) == len(needed):
                break  # everything found: no need to read the rest of a 1 GB file

    out = np.zeros((len(words), dim), dtype=np.float32)  # [n_words, dim]
    for row, (word, (whole, parts)) in enumerate(zip(words, tokens)):
        if whole in vectors:
            out[row] = vectors[whole]
            continue
        found = [vectors[p] for p in parts if p in vectors]
        absent = [p for p in parts if p not in vectors]
        if absent and missing == "error":
            raise MissingWordError(f"GloVe file {path} has no vector for {absent[0]!r} (in the label {word!r})")
        if absent:
            log.warning("GloVe file %s lacks %s of the label %r; averaging the parts found", path, absent, word)
        if found:
            out[row] = np.mean(found, axis=0)  # [dim]
    return out
