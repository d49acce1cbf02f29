"""What run.json records about where a result came from: code version, libraries, device."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata

LIBRARIES = ("torch", "torchvision", "numpy", "pandas", "pycocotools", "scikit-learn", "pillow")


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_description(device: str) -> str:
    if device == "cuda":
        import torch  # here, not above: evaluating a pass that training made imports no torch

        if torch.cuda.is_available():
            return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.machine()}"
