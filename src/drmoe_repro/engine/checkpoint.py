"""Atomic checkpoints that resume a run exactly where it stopped.

A checkpoint holds the model, optimiser and scheduler states, the next epoch and every RNG state the training loop
draws from, so a run killed between epochs and resumed gives the same bytes as one that never stopped. It is
written to a temporary name and renamed, so a crash mid-write leaves the previous checkpoint intact, and loaded
with weights_only=True (no arbitrary code from a checkpoint file).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from drmoe_repro.io import save_torch


def rng_states(generator: torch.Generator) -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "loader_generator": generator.get_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "python": repr(random.getstate()),
    }


def restore_rng_states(states: dict, generator: torch.Generator) -> None:
    import ast

    torch.set_rng_state(states["torch"])
    generator.set_state(states["loader_generator"])
    np.random.set_state(("MT19937", states["numpy_keys"].numpy().astype(np.uint32), states["numpy_pos"], 0, 0.0))
    random.setstate(ast.literal_eval(states["python"]))


def save_checkpoint(path: Path, state: dict) -> None:
    save_torch(path, state)


def _load(path: Path, remedy: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # a truncated or overwritten file: torch says "zip archive" without naming it
        raise RuntimeError(f"{path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0]}); {remedy}") \
            from None


def load_checkpoint(path: Path) -> dict:
    """A resume checkpoint; a damaged one is an error naming the file and what to do about it."""
    return _load(path, "delete it to train this run from its start (or from an older copy you kept)")


def load_weights(path: Path) -> dict:
    """A run's final weights (model.pt); a damaged file is an error naming it and what to do about it."""
    return _load(path, "delete it and train the run again (snakemake reruns it; by hand: drmoe-repro train ...)")
