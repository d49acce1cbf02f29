"""Byte-deterministic, atomic writers for every artefact the pipeline produces.

`numpy.savez` stamps each zip member with the current time and `json.dump` keeps dict order, so two identical runs
would not give identical bytes. Everything under `results/` and `reports/` is written through these helpers instead.
A crash never leaves a half-written file behind: each writer writes a temporary sibling and renames it. A writer
killed outright (SIGKILL, a node lost) cannot remove its temporary file, so the next write of the same file removes
the temporaries of writers on this host that are no longer alive.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import math
import os
import re
import socket
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

# The earliest time a zip header can hold; a fixed value keeps archives byte-identical across runs.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove_dead_temporaries(path: Path, host: str) -> None:
    """Delete `.NAME.HOST-PID.*.tmp` siblings left by writers of `path` on this host that have died."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.{re.escape(host)}-(\d+)\..*\.tmp$")
    for sibling in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        match = pattern.match(sibling.name)
        if match and not _alive(int(match.group(1))):
            sibling.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
    _remove_dead_temporaries(path, host)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{host}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file readable by its owner only; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write an `.npz` that `numpy.load` reads, with fixed member order and timestamps (byte-deterministic)."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an `.npz` into memory (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _clean_for_json(value: Any) -> Any:
    """Turn numpy scalars/arrays into plain Python, data frames into records (a named index kept as a column) and
    NaN/inf into null, so the JSON is strict and portable. The suite's one JSON canonicaliser."""
    if hasattr(value, "to_dict") and hasattr(value, "reset_index"):  # a pandas DataFrame (io needs no pandas)
        frame = value.reset_index() if value.index.name is not None else value
        return _clean_for_json(frame.to_dict(orient="records"))
    if isinstance(value, dict):
        return {str(k): _clean_for_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_for_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean_for_json(value.tolist())
    if isinstance(value, np.generic):
        return _clean_for_json(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps_json(data: Any) -> str:
    return json.dumps(_clean_for_json(data), indent=2, sort_keys=True, allow_nan=False) + "\n"


def save_json(path: str | os.PathLike, data: Any) -> None:
    """Write strict JSON with sorted keys and a trailing newline, atomically."""
    write_text(path, dumps_json(data))


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """`torch.save`, atomically and byte-deterministically.

    Given a file name, torch.save names the records inside its zip after it; given an open file, it names them
    "archive". Writing through a handle keeps the random temporary name out of the bytes without holding a copy of
    the file in memory (a Query2Label R101 model.pt is 0.7 GB).
    """
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def load_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
