"""Decoding image files into uint8 RGB tensors, on the CPU or on the training device.

Which files are accepted, and how a bad one is reported, is decided from their bytes in `image_files` (torch-free,
for `prepare`); this module decodes what `image_files.read_image_bytes` returned, so both apply one rule. RGB and
grayscale JPEGs and CMYK JPEGs (COCO has a few) are decoded to 3-channel RGB, and PNG data under a `.jpg` name by
its bytes, as PNG.

Decoding (`decode_rgb`): on a CPU, torchvision's `decode_image` (libjpeg-turbo, libpng). On a GPU, JPEGs go to
nvjpeg through `decode_jpeg(device=...)` in one batched call; CMYK JPEGs and PNGs are decoded on the CPU and moved
(nvjpeg's CMYK support is not documented by torchvision; the CPU path converts CMYK since torchvision 0.16).

Bytes cross DataLoader worker processes as plain `bytes`: a tensor from `torchvision.io.read_file` cannot be sent
from a worker (its storage cannot be shared; the main process then waits for ever, "Bad file descriptor").
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

from drmoe_repro.data.image_files import JPEG_SOI, CorruptImageError, read_image_bytes


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
