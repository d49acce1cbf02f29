"""results/tableN.csv: the paper's Tables 1-5, measured, beside the numbers the paper claims.

Each row is one system of the paper's table, then the rows this suite adds (EXTRA_ROWS: marked "not in the paper",
with no claimed numbers). Metrics are in percent, mean and standard deviation over the seeds of the selected
profile. A system whose runs are missing says so in `status` and carries no number: nothing is ever invented.
Differences to the paper are filled in only on the paper profile; demo numbers come from a synthetic data set and
are not comparable. `f1_from` says where a row's OF1/CF1 come from (CNN-RNN: its decoded label sets); rows of
mixture-of-experts models carry how sharp their gates are (metrics.gate_statistics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from drmoe_repro.config import profile_of
from drmoe_repro.io import write_text
from drmoe_repro.layout import METRICS, table_rows
from drmoe_repro.paper.claims import table_claims
from drmoe_repro.paper.deviations import deviations, measured_status
from drmoe_repro.paper.runs import read_runs

# A reference row that is not in the paper: every image scored with the training-set label frequencies.
LABEL_PRIOR = "label_prior"


def system_status(config: dict, system: str) -> str | None:
    """Why `system` cannot have runs (not configured), or None if it can."""
    if system not in config["systems"]:
        return f"not configured (add '{system}' to systems in workflow/config.yaml)"
    return None


def summarise(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64) * 100.0
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return float(arr.mean()), std


def build_metric_table(config: dict, profile: str, number: int, reference: dict | None = None) -> pd.DataFrame:
    """Table `number`; a measured row whose runs depart from the profile in `reference` (default: `config`) says how."""
    reference = config if reference is None else reference
    claims = table_claims(number)
    prof = profile_of(config, profile)
    dataset = claims["dataset"]
    seeds = prof["seeds"]
    rows = []
    for claim in table_rows(number):
        system = claim["system"]
        if claim.get("extra") and system not in config["systems"]:
            continue  # a row of this suite's own, for a system the user removed
        row = {"table": number, "system": system, "paper_name": claim["paper_name"], "dataset": dataset,
               "profile": profile, "data_source": prof["datasets"].get(dataset, {}).get("source", "none")}
        status = system_status(config, system)
        runs = read_runs(profile, dataset, system, seeds) if status is None else None
        status = status or runs.status
        measured = runs.of(METRICS) if status is None else []
        headlines = [m["headline"] for m in measured]
        row["n_seeds"] = len(headlines)
        for metric in claims["metrics"]:
            mean, std = summarise([h[metric] for h in headlines]) if headlines else (np.nan, np.nan)
            row[metric] = mean
            row[f"{metric}_std"] = std
        for metric in claims["metrics"]:
            row[f"paper_{metric}"] = claim.get(metric, np.nan)
        for metric in claims["metrics"]:
            comparable = profile == "paper" and headlines and metric in claim
            row[f"diff_{metric}"] = row[metric] - claim[metric] if comparable else np.nan
        row["f1_from"] = "; ".join(sorted({m.get("headline_f1_from", "scores >= 0.5") for m in measured}))
        gate_stats = [m["gates"] for m in measured if "gates" in m]
        for key, column in (("mean_entropy", "gate_entropy"), ("near_one_hot_fraction", "gates_near_one_hot")):
            row[column] = float(np.mean([g[key] for g in gate_stats])) if gate_stats else np.nan
        row["status"] = status or measured_status(
            profile, deviations(config, reference, profile, [(dataset, system, s) for s in seeds]))
        rows.append(row)
    if number in (1, 2):
        rows.append(_label_prior_row(config, profile, number, claims, prof))
    return pd.DataFrame(rows)


def _label_prior_row(config: dict, profile: str, number: int, claims: dict, prof: dict) -> dict:
    """mAP of the label-frequency prior, read from the DR-MoE runs (each run scores it on its own test set)."""
    dataset = claims["dataset"]
    values = [m["reference"]["label_prior_mAP"] for m in read_runs(profile, dataset, "drmoe", prof["seeds"]).of(METRICS)]
    row = {"table": number, "system": LABEL_PRIOR, "paper_name": "(not in the paper) label-frequency prior",
           "dataset": dataset, "profile": profile, "data_source": prof["datasets"].get(dataset, {}).get("source", "none"),
           "n_seeds": len(values)}
    for metric in claims["metrics"]:
        mean, std = summarise(values) if (metric == "mAP" and values) else (np.nan, np.nan)
        row[metric], row[f"{metric}_std"] = mean, std
    for metric in claims["metrics"]:
        row[f"paper_{metric}"] = np.nan
    for metric in claims["metrics"]:
        row[f"diff_{metric}"] = np.nan
    row["status"] = "reference (mAP only; OF1/CF1 undefined at threshold 0.5)" if values else "not run"
    return row


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Floats at full precision (shortest round-trip text): the report renders from these files, and rounding them
    here would round its numbers twice."""
    write_text(path, df.to_csv(index=False, na_rep=""))
