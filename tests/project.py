"""A copy of the project in a temporary folder, as a fresh clone has it, for tests that run the workflow or make.

Only what a clone holds and the workflow reads is copied (no .venv, results, reports or caches), so a test never
writes into the working tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("Snakefile", "Makefile", "README.md", "dvc.yaml", ".dvcignore", "pyproject.toml")
TREES = ("workflow", "envs", "src", ".dvc", "bench")
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info", "tmp", "cache", "results")


def copy_project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy(ROOT / name, folder / name)
    for tree in TREES:
        shutil.copytree(ROOT / tree, folder / tree, ignore=IGNORED)
    return folder


def tool_env() -> dict[str, str]:
    """The environment jobs run in: this Python's venv first on PATH (as `make` sets it), dvc never phones home."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                DVC_NO_ANALYTICS="1")


def snakemake(folder: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=folder, env=tool_env(),
                          capture_output=True, text=True, timeout=timeout)


# Files that record how long a step took (the only bytes allowed to differ between two builds of the same config).
TIMING_FILES = {"run.json", "train.json"}


def without_timing(path: Path) -> bytes:
    """A result file's bytes, with the `timing` entry of run.json and train.json left out."""
    if path.name in TIMING_FILES:
        data = json.loads(path.read_text())
        data.pop("timing")
        return json.dumps(data, sort_keys=True).encode()
    return path.read_bytes()
