"""Reading run artefacts: one reader for the tables, the figures, the analyses, the audit and the report.

`read_runs` loads the named files of one (data set, system) over the seeds, and says in one wording what is not
there, so a missing run reads the same in every table and section ("not run (<paths> missing)").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from drmoe_repro.io import load_json, load_npz
from drmoe_repro.layout import METRICS, run_file

_LOADERS = {".json": load_json, ".npz": load_npz, ".csv": pd.read_csv}


def missing_status(missing: list[str]) -> str:
    return f"not run ({', '.join(missing)} missing)"


@dataclass
class RunSet:
    """The files of one (profile, data set, system) over `seeds`: `found[seed][file name]`, and what is missing."""

    profile: str
    dataset: str
    system: str
    seeds: list[int]
    found: dict[int, dict[str, Any]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every seed has every file (a table row is either every seed or nothing)."""
        return bool(self.seeds) and not self.missing

    @property
    def status(self) -> str | None:
        """None when complete, else the uniform "not run (...)" wording."""
        return None if self.complete else missing_status(self.missing or ["every seed"])

    def of(self, name: str) -> list[Any]:
        """The loaded file `name` of every seed that has it, in seed order."""
        return [self.found[seed][name] for seed in sorted(self.found)]

    @property
    def headlines(self) -> list[dict]:
        return [metrics["headline"] for metrics in self.of(METRICS)]


def read_runs(profile: str, dataset: str, system: str, seeds: list[int], files: tuple[str, ...] = (METRICS,)
              ) -> RunSet:
    """Load `files` (layout's run file names) of every seed; a seed counts as found only with all of them."""
    runs = RunSet(profile, dataset, system, list(seeds))
    for seed in seeds:
        paths = {name: run_file(profile, dataset, system, seed, name) for name in files}
        absent = [str(path) for path in paths.values() if not path.is_file()]
        if absent:
            runs.missing += absent
            continue
        runs.found[seed] = {name: _LOADERS[path.suffix](path) for name, path in paths.items()}
    return runs
