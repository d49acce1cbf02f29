"""Reading images, and finding broken ones before a multi-hour run trips over them.

Two things live here:

* `read_rgb`, the one function that decodes an image for training and evaluation (torchvision's libjpeg-turbo
  decoder; grayscale and CMYK files come back as 3-channel RGB);
* `check_jpeg_complete`, a cheap test that a JPEG was not cut short (an interrupted download or copy). It reads
  only the file's last bytes, so the loaders can run it over all 120k COCO images in seconds instead of decoding
  them.

torchvision 0.29 raises "Image is incomplete or truncated" on a truncated JPEG (checked by hand and in
tests/test_loaders.py), but older libjpeg builds only printed a warning and padded the image with grey. `read_rgb`
therefore runs the same end-of-image check on the bytes it has already read, so a truncated file is an error
whatever the decoder does.

Every data-set problem (a broken image, a missing file, a malformed annotation) raises `DatasetFormatError`,
whose message names the offending file; `CorruptImageError` is the subclass for undecodable images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import torch
from torchvision.io import ImageReadMode, decode_image, read_file

# JPEG start-of-image and end-of-image markers.
_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
# Bytes that some writers append after the end-of-image marker (zero or 0xFF fill, stray line ends); a file that
# ends with EOI followed only by these is complete.
_PADDING = b"\x00\xff\r\n \t"
# How much of the file's end to look at. Padding longer than this is treated as truncation.
_TAIL_BYTES = 4096


class DatasetFormatError(ValueError):
    """A data set on disk is not in the format the loader expects; the message names the file."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        # args = (path, reason) so the exception survives pickling (DataLoader workers, multiprocessing).
        super().__init__(str(path), reason)
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class CorruptImageError(DatasetFormatError):
    """An image file is truncated or cannot be decoded."""


def _tail_is_complete_jpeg(tail: bytes) -> bool:
    """True if `tail` (the last bytes of a JPEG) ends with the end-of-image marker, ignoring trailing padding."""
    return tail.rstrip(_PADDING).endswith(_EOI)


def check_jpeg_complete(path: str | os.PathLike) -> bool:
    """Cheap completeness test: the file starts with a JPEG SOI marker and ends with EOI (padding allowed).

    It reads the first 2 and last few kilobytes only. It does not prove the file decodes; it catches the usual
    failure, a download or copy that stopped early. Returns False for a non-JPEG file. Raises FileNotFoundError
    if the file does not exist.
    """
    with open(path, "rb") as handle:
        if handle.read(2) != _SOI:
            return False
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - _TAIL_BYTES))
        tail = handle.read()
    return _tail_is_complete_jpeg(tail)


def verify_images(root: str | os.PathLike, relative_paths: Iterable[str], *, check_complete: bool = True) -> None:
    """Stop with one `DatasetFormatError` if any image is missing or (with `check_complete`) a truncated JPEG.

    All files are checked before raising, so one run reports every bad file (the first 10 by name, and the count),
    rather than one per attempt.
    """
    root = Path(root)
    problems: list[tuple[Path, str]] = []
    for relative in relative_paths:
        path = root / relative
        try:
            if check_complete and not check_jpeg_complete(path):
                problems.append((path, "truncated or not a JPEG (no end-of-image marker FFD9)"))
        except FileNotFoundError:
            problems.append((path, "image file is missing"))
        except OSError as error:  # e.g. a permission problem or a directory where a file should be
            problems.append((path, f"cannot read image file ({error})"))
        else:
            if not check_complete and not path.is_file():
                problems.append((path, "image file is missing"))
    if not problems:
        return
    first_path, first_reason = problems[0]
    if len(problems) == 1:
        raise DatasetFormatError(first_path, first_reason)
    listing = "\n".join(f"  {path}: {reason}" for path, reason in problems[:10])
    more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    raise DatasetFormatError(first_path, f"{first_reason}; {len(problems)} bad image files in all:\n{listing}{more}")


def read_rgb(path: str | os.PathLike) -> torch.Tensor:
    """Decode an image file into a uint8 tensor [3, H, W] (RGB); raise `CorruptImageError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CorruptImageError(path, "image file is missing")
    try:
        data = read_file(str(path))  # [num_bytes] uint8
    except RuntimeError as error:
        raise CorruptImageError(path, f"cannot read file ({error})") from error
    raw = data.numpy()
    # Check truncation on the bytes already in memory (free), whatever the installed decoder does about it.
    if raw[:2].tobytes() == _SOI and not _tail_is_complete_jpeg(raw[-_TAIL_BYTES:].tobytes()):
        raise CorruptImageError(path, "truncated JPEG (no end-of-image marker FFD9)")
    try:
        image = decode_image(data, mode=ImageReadMode.RGB)  # [3, H, W] uint8
    except RuntimeError as error:
        # torchvision prefixes the C++ source location; keep only the message after the last comma.
        message = str(error).rsplit(", ", 1)[-1]
        raise CorruptImageError(path, f"cannot decode image ({message})") from error
    return image
