"""results/ablations.csv: this suite's own ablations and sensitivity runs, each beside the system it varies
(layout.ABLATIONS lists them).

Not in the paper. Each row pairs a system of the paper's tables with a configured variant that changes one thing:
- DR-MoE without its experts and gates (`drmoe_no_experts`: the query trunk and a per-label head);
- eq. 11's entropy term with the sign §3.9 describes instead of as printed (`*_entropy_text`);
- the random-resized-crop scale 0.5 instead of 0.08 (`*_crop05`), closer to ML-GCN's and ADD-GCN's multi-scale
  crops (scales 1 to 0.5 of the shorter side): sensitivity runs, trained only where the profile's
  `sensitivity_runs` is true (opt-in on the paper profile: the README gives their cost).
Rows: mean over the profile's seeds of each system, the difference (variant - base), and a status as in the tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from drmoe_repro.config import profile_of
from drmoe_repro.layout import ABLATIONS, active_ablations
from drmoe_repro.paper.deviations import deviations, is_measured, measured_status
from drmoe_repro.paper.runs import missing_status, read_runs

METRICS = ("mAP", "OF1", "CF1")


def sensitivity_cost(config: dict, profile: str) -> int:
    """Trainings the sensitivity runs add on `profile` (the variants only: their bases are trained anyway)."""
    prof = profile_of(config, profile)
    return len(prof["seeds"]) * sum(1 for a in ABLATIONS if a[4] and a[1] in config["systems"]
                                    and a[2] in prof["datasets"])


def _mean_headline(profile: str, dataset: str, system: str, seeds: list[int]) -> tuple[dict | None, list[str]]:
    runs = read_runs(profile, dataset, system, seeds)
    if not runs.complete:
        return None, runs.missing
    return {m: float(np.mean([h[m] for h in runs.headlines]) * 100.0) for m in METRICS}, []


def build_ablation_table(config: dict, profile: str, reference: dict | None = None) -> pd.DataFrame:
    reference = config if reference is None else reference
    seeds = list(profile_of(config, profile)["seeds"])
    active = set(active_ablations(config, profile))
    crop_scale = list(profile_of(config, profile)["input"]["augment"]["crop_scale"])  # CROP names the profile's
    rows = []
    for ablation in ABLATIONS:
        base, variant, dataset, change, sensitivity = ablation
        row = {"base": base, "variant": variant, "dataset": dataset, "profile": profile,
               "change": change.format(crop_scale=crop_scale),
               "kind": "sensitivity" if sensitivity else "ablation", "n_seeds": 0}
        if ablation not in active:
            why = "opt in with sensitivity_runs: true" if sensitivity else "a system or the data set is not configured"
            row["status"] = f"not run on this profile ({why})"
        else:
            base_m, missing_base = _mean_headline(profile, dataset, base, seeds)
            variant_m, missing_variant = _mean_headline(profile, dataset, variant, seeds)
            if base_m is None or variant_m is None:
                row["status"] = missing_status(missing_base + missing_variant)
            else:
                row["n_seeds"] = len(seeds)
                for m in METRICS:
                    row[f"{m}_base"], row[f"{m}_variant"] = base_m[m], variant_m[m]
                    row[f"{m}_difference"] = variant_m[m] - base_m[m]
                runs = [(dataset, system, seed) for system in (base, variant) for seed in seeds]
                row["status"] = measured_status(profile, deviations(config, reference, profile, runs))
        rows.append(row)
    columns = ["base", "variant", "dataset", "change", "kind", "profile", "n_seeds"] + \
        [f"{m}_{part}" for m in METRICS for part in ("base", "variant", "difference")] + ["status"]
    return pd.DataFrame(rows).reindex(columns=columns)


def measured_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"].map(is_measured)]
