"""Reading images: one reader for every path (prepare's check, CPU decoding, decoding on the training device).

What real COCO 2014 and VOC 2007 contain, and how each is read, the same way everywhere:
* RGB and grayscale JPEGs, and a few CMYK JPEGs (COCO): decoded to 3-channel RGB;
* PNG data under a `.jpg` name (COCO has some): recognised by its bytes, not its name, and decoded as PNG;
* anything else (an empty file, a truncated download, an HTML error page saved as an image) is an error that names
  the file, raised by prepare's check before training starts and by the reader if a file changed since.

`image_problem` is the one acceptance rule. It looks only at a file's first and last bytes (signature, end marker),
so prepare can run it over all 120k COCO images in seconds; the reader runs it on the bytes it has already read.
torchvision 0.29 refuses a truncated JPEG by itself, but older libjpeg builds only warned and padded the image with
grey, so the end-marker check keeps a truncated file an error whatever the decoder does.

Decoding (`decode_rgb`): on a CPU, torchvision's `decode_image` (libjpeg-turbo, libpng). On a GPU, JPEGs go to
nvjpeg through `decode_jpeg(device=...)` in one batched call; CMYK JPEGs and PNGs are decoded on the CPU and moved
(nvjpeg's CMYK support is not documented by torchvision; the CPU path converts CMYK since torchvision 0.16).

Bytes cross DataLoader worker processes as plain `bytes`: a tensor from `torchvision.io.read_file` cannot be sent
from a worker (its storage cannot be shared; the main process then waits for ever, "Bad file descriptor").

Every data-set problem raises `DatasetFormatError`, whose message names the offending file; `CorruptImageError` is
the subclass for unreadable images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

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
    problems = [(root / rel, reason) for rel in relative_paths if (reason := check(root / rel)) is not None]
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


def _jpeg_components(data: bytes) -> int | None:
    """Number of colour components in a JPEG's frame header (1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK), None if not found."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):  # SOFn
            return data[pos + 9] if pos + 9 < len(data) else None
        pos += 2 + length
    return None


def _as_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)  # [num_bytes]; a copy, so it is writable


def _decode_on_cpu(data: bytes, path: str | os.PathLike) -> torch.Tensor:
    try:
        return decode_image(_as_tensor(data), mode=ImageReadMode.RGB)  # [3, H, W] uint8
    except RuntimeError as error:
        # torchvision prefixes the C++ source location; keep only the message after the last comma.
        message = str(error).rsplit(", ", 1)[-1]
        raise CorruptImageError(path, f"cannot decode image ({message})") from None


def decode_rgb(encoded: Sequence[bytes], paths: Sequence[str | os.PathLike],
               device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Decode images read by `read_image_bytes` into uint8 RGB tensors [3, H, W] on `device`, in order.

    On a CUDA device the 3-component and grey JPEGs are decoded by nvjpeg in one batched call; CMYK JPEGs and PNGs on
    the CPU. A failure names the file.
    """
    device = torch.device(device)
    out: list[torch.Tensor | None] = [None] * len(encoded)
    on_device = [i for i, data in enumerate(encoded)
                 if device.type == "cuda" and data.startswith(JPEG_SOI) and _jpeg_components(data) in (1, 3)]
    if on_device:
        tensors = [_as_tensor(encoded[i]) for i in on_device]
        try:
            decoded = decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:
            decoded = []
            for i, tensor in zip(on_device, tensors):  # one by one, to name the file that fails
                try:
                    decoded.append(decode_jpeg(tensor, mode=ImageReadMode.RGB, device=device))
                except RuntimeError as error:
                    raise CorruptImageError(paths[i], f"cannot decode image on {device} ({error})") from None
        for i, image in zip(on_device, decoded):
            out[i] = image
    for i, data in enumerate(encoded):
        if out[i] is None:
            out[i] = _decode_on_cpu(data, paths[i]).to(device)
    return out  # type: ignore[return-value]


def read_rgb(path: str | os.PathLike, device: torch.device | str = "cpu") -> torch.Tensor:
    """Read and decode one image file into a uint8 tensor [3, H, W] (RGB); errors name the file."""
    return decode_rgb([read_image_bytes(path)], [path], device)[0]
