"""Which image files training can read, decided from their bytes alone: no torch, so `prepare` starts in a second.

What real COCO 2014 and VOC 2007 contain: RGB, grayscale and a few CMYK JPEGs, and PNG data under a `.jpg` name
(COCO has some), recognised by its bytes, not its name. Anything else (an empty file, a truncated download, an HTML
error page saved as an image) is an error that names the file, raised by prepare's check before training starts and
by the reader (`read_image_bytes`) if a file changed since.

`image_problem` is the one acceptance rule. It looks only at a file's first and last bytes (signature, end marker),
so prepare can run it over all 120k COCO images in seconds; the reader runs it on the bytes it has already read.
torchvision 0.29 refuses a truncated JPEG by itself, but older libjpeg builds only warned and padded the image with
grey, so the end-marker check keeps a truncated file an error whatever the decoder does. Decoding is in `images`.

Every data-set problem raises `DatasetFormatError`, whose message names the offending file; `CorruptImageError` is
the subclass for unreadable images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from drmoe_repro.progress import progress_bar

JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: the last 8 bytes of a complete PNG
# Bytes that some writers append after a JPEG's end-of-image marker (zero or 0xFF fill, stray line ends); a file
# that ends with EOI followed only by these is complete.
_PADDING = b"\x00\xff\r\n \t"
_HEAD_BYTES = 8
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
    """An image file is missing, empty, truncated or cannot be decoded."""


def image_problem(head: bytes, tail: bytes, size: int) -> str | None:
    """Why a file whose first bytes are `head` and last bytes `tail` is not a readable image, or None if it is."""
    if size == 0:
        return "empty image file"
    if head.startswith(JPEG_SOI):
        return None if tail.rstrip(_PADDING).endswith(JPEG_EOI) else "truncated JPEG (no end-of-image marker FFD9)"
    if head.startswith(PNG_SIGNATURE):
        return None if tail.endswith(PNG_IEND) else "truncated PNG (no IEND chunk at the end)"
    return f"not a JPEG or PNG image (it starts with bytes {head[:8].hex()})"


def file_problem(path: str | os.PathLike) -> str | None:
    """`image_problem` of a file on disk, reading only its first and last bytes; missing or unreadable files too."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read()
    except FileNotFoundError:
        return "image file is missing"
    except IsADirectoryError:
        return "a folder stands where the image file should be"
    except OSError as error:  # e.g. a permission problem
        return f"cannot read image file ({error.strerror or error})"
    return image_problem(head, tail, size)


def _missing(path: Path) -> str | None:
    return None if path.is_file() else "image file is missing"


def verify_images(root: str | os.PathLike, relative_paths: Iterable[str], *, check_content: bool = True) -> None:
    """Stop with one `DatasetFormatError` if any image is not one training can read (`file_problem`).

    All files are checked before raising, so one run reports every bad file (the first 10 by name, and the count),
    rather than one per attempt. This is exactly the rule the reader applies, so prepare accepts what training reads.
    `check_content=False` only checks that the files exist.
    """
    root = Path(root)
    check = file_problem if check_content else _missing
    # Lines, not a bar: prepare runs under Snakemake; 120,000 COCO files on a network disk can take minutes.
    checked = progress_bar(relative_paths, bars=False, desc=f"check images in {root}", unit="files")
    problems = [(root / rel, reason) for rel in checked if (reason := check(root / rel)) is not None]
    if not problems:
        return
    first_path, first_reason = problems[0]
    if len(problems) == 1:
        raise CorruptImageError(first_path, first_reason)
    listing = "\n".join(f"  {path}: {reason}" for path, reason in problems[:10])
    more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    raise CorruptImageError(first_path, f"{first_reason}; {len(problems)} bad image files in all:\n{listing}{more}")


def read_image_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, once `image_problem` accepts them; raises `CorruptImageError` naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorruptImageError(path, "image file is missing") from None
    except OSError as error:
        raise CorruptImageError(path, f"cannot read image file ({error.strerror or error})") from None
    problem = image_problem(data[:_HEAD_BYTES], data[-_TAIL_BYTES:], len(data))
    if problem:
        raise CorruptImageError(path, problem)
    return data
