"""results/ablations.csv: this suite's own ablations and sensitivity runs, each beside the system it varies.

Not in the paper. Each row pairs a system of the paper's tables with a configured variant that changes one thing:
- DR-MoE without its experts and gates (`drmoe_no_experts`: the query trunk and a per-label head);
- eq. 11's entropy term with the sign §3.9 describes instead of as printed (`*_entropy_text`);
- the random-resized-crop scale 0.5 instead of 0.08 (`*_crop05`), closer to ML-GCN's and ADD-GCN's multi-scale
  crops (scales 1 to 0.5 of the shorter side): sensitivity runs, trained only where the profile's
  `sensitivity_runs` is true (opt-in on the paper profile: the README gives their cost).
Rows: mean over the profile's seeds of each system, the difference (variant - base), and a status as in the tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from drmoe_repro.config import profile_of
from drmoe_repro.io import load_json
from drmoe_repro.layout import run_dir
from drmoe_repro.paper.deviations import deviations, is_measured, measured_status

ABLATION_TABLE_PATH = Path("results/ablations.csv")
METRICS = ("mAP", "OF1", "CF1")

CROP = "random-resized-crop scale [0.5, 1] instead of the profile's (the paper profile's: [0.08, 1])"
# (base system, variant, data set, what the variant changes, sensitivity run: trained only with sensitivity_runs)
ABLATIONS = (
    ("drmoe", "drmoe_no_experts", "coco", "no experts and gates: the query trunk and a per-label head", False),
    ("drmoe", "drmoe_entropy_text", "coco", "eq. 11 with the sign §3.9 describes (-λH)", False),
    ("hsq_static", "hsq_static_entropy_text", "coco", "eq. 11 with the sign §3.9 describes (-λH)", False),
    ("drmoe", "drmoe_entropy_text", "voc", "eq. 11 with the sign §3.9 describes (-λH)", False),
    ("drmoe", "drmoe_crop05", "coco", CROP, True),
    ("hsq_static", "hsq_static_crop05", "coco", CROP, True),
    ("ml_gcn", "ml_gcn_crop05", "coco", CROP, True),
)


def active_ablations(config: dict, profile: str) -> list[tuple]:
    """The ablations whose systems are configured and whose data set the profile has (sensitivity ones only with
    `sensitivity_runs`)."""
    prof = profile_of(config, profile)
    return [a for a in ABLATIONS if a[0] in config["systems"] and a[1] in config["systems"]
            and a[2] in prof["datasets"] and (not a[4] or prof.get("sensitivity_runs", False))]


def ablation_runs(config: dict, profile: str) -> list[tuple[str, str, int]]:
    seeds = profile_of(config, profile)["seeds"]
    return sorted({(dataset, system, seed) for base, variant, dataset, _, _ in active_ablations(config, profile)
                   for system in (base, variant) for seed in seeds})


def sensitivity_cost(config: dict, profile: str) -> int:
    """Trainings the sensitivity runs add on `profile` (the variants only: their bases are trained anyway)."""
    prof = profile_of(config, profile)
    return len(prof["seeds"]) * sum(1 for a in ABLATIONS if a[4] and a[1] in config["systems"]
                                    and a[2] in prof["datasets"])


def _mean_headline(profile: str, dataset: str, system: str, seeds: list[int]) -> tuple[dict | None, list[str]]:
    paths = [run_dir(profile, dataset, system, seed) / "metrics.json" for seed in seeds]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        return None, missing
    heads = [load_json(p)["headline"] for p in paths]
    return {m: float(np.mean([h[m] for h in heads]) * 100.0) for m in METRICS}, []


def build_ablation_table(config: dict, profile: str, reference: dict | None = None) -> pd.DataFrame:
    reference = config if reference is None else reference
    seeds = list(profile_of(config, profile)["seeds"])
    active = set(active_ablations(config, profile))
    rows = []
    for ablation in ABLATIONS:
        base, variant, dataset, change, sensitivity = ablation
        row = {"base": base, "variant": variant, "dataset": dataset, "change": change, "profile": profile,
               "kind": "sensitivity" if sensitivity else "ablation", "n_seeds": 0}
        if ablation not in active:
            why = "opt in with sensitivity_runs: true" if sensitivity else "a system or the data set is not configured"
            row["status"] = f"not run on this profile ({why})"
        else:
            base_m, missing_base = _mean_headline(profile, dataset, base, seeds)
            variant_m, missing_variant = _mean_headline(profile, dataset, variant, seeds)
            if base_m is None or variant_m is None:
                row["status"] = f"not run ({', '.join(missing_base + missing_variant)} missing)"
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
