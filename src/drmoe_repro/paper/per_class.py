"""results/table6.csv: the paper's Table 6 (per-class AP on the VOC 2007 test set), measured beside its numbers.

One row per VOC class, in the paper's column order. For each system of the paper's table (HSQ-static and DR-MoE)
the AP in percent, mean and standard deviation over the seeds of the selected profile, computed from each run's
predictions.npz with `metrics.average_precision` (the default convention: non-interpolated, VOC "difficult"
ignored). The paper's values stand beside them; the differences to the paper are filled in only on the paper
profile. A system whose runs are missing carries no number and says so in `status`: nothing is invented.

The per-class helpers here (`per_class_ap`, `per_class_summary`) also serve Fig. 4 and the analyses on COCO.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from drmoe_repro import metrics
from drmoe_repro.config import profile_of
from drmoe_repro.layout import BASELINE, PER_CLASS_TABLE, PREDICTIONS, PROPOSED
from drmoe_repro.paper.claims import table_claims
from drmoe_repro.paper.deviations import MEASURED, deviations, measured_status
from drmoe_repro.paper.runs import missing_status, read_runs
from drmoe_repro.paper.tables import system_status

TABLE = PER_CLASS_TABLE


def table6_systems() -> list[str]:
    """The systems of the paper's Table 6, in its row order (claims.yaml)."""
    return [row["system"] for row in table_claims(TABLE)["rows"]]


def class_map() -> dict[str, str]:
    """The paper's short column name -> VOC class name, in the paper's column order."""
    return dict(table_claims(TABLE)["classes"])


def paper_per_class(system: str) -> dict[str, float]:
    """The paper's Table 6 values of `system` (percent), keyed by VOC class name."""
    claims = table_claims(TABLE)
    for row in claims["rows"]:
        if row["system"] == system:
            return {voc: float(v) for voc, v in zip(claims["classes"].values(), row["per_class"])}
    raise KeyError(f"Table 6 has no row for system {system!r}")


def per_class_ap(profile: str, dataset: str, system: str, seeds: list[int]) -> tuple[pd.DataFrame, list[str]]:
    """AP of every class (fractions) of each seed's run, and the predictions files that are missing.

    Returns (frame indexed by seed with one column per label, in the run's label order; NaN where a class has no
    positive test image), missing paths. Only the seeds whose predictions.npz exists are rows.
    """
    runs = read_runs(profile, dataset, system, seeds, (PREDICTIONS,))
    rows, labels = {}, None
    for seed, files in sorted(runs.found.items()):
        data = files[PREDICTIONS]
        names = [str(n) for n in data["label_names"].tolist()]
        if labels is not None and names != labels:
            raise ValueError(f"{dataset}/{system} seed {seed}: label_names differ from the other seeds' runs")
        labels = names
        rows[seed] = metrics.average_precision(data["scores"], data["targets"])  # [L]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=labels or [])
    frame.index.name = "seed"
    return frame, runs.missing


def per_class_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds, in percent: columns mean, std, n_seeds; one row per label."""
    values = frame.to_numpy(dtype=np.float64) * 100.0  # [seeds, L]
    n = values.shape[0]
    mean = values.mean(axis=0) if n else np.full(values.shape[1], np.nan)
    std = values.std(axis=0, ddof=1) if n > 1 else np.full(values.shape[1], np.nan)
    return pd.DataFrame({"mean": mean, "std": std, "n_seeds": n}, index=list(frame.columns))


def _system_status(config: dict, reference: dict, profile: str, dataset: str, system: str, missing: list[str],
                   n_found: int) -> str:
    status = system_status(config, system)
    if status is not None:
        return status
    if missing:
        return missing_status(missing)
    seeds = profile_of(config, profile)["seeds"]
    return measured_status(profile, deviations(config, reference, profile, [(dataset, system, s) for s in seeds])) \
        if n_found else "not run"


def build_per_class_table(config: dict, profile: str, reference: dict | None = None) -> pd.DataFrame:
    """The rows of results/table6.csv (see the module docstring); deviations from `reference` as in tables.py."""
    reference = config if reference is None else reference
    claims = table_claims(TABLE)
    prof = profile_of(config, profile)
    dataset = claims["dataset"]
    seeds = list(prof["seeds"])
    source = prof["datasets"].get(dataset, {}).get("source", "none")
    comparable = profile == "paper"

    summaries, statuses = {}, {}
    for system in table6_systems():
        status = system_status(config, system)
        if status is None and dataset in prof["datasets"]:
            frame, missing = per_class_ap(profile, dataset, system, seeds)
            if missing:
                frame = frame.iloc[0:0]  # a table row is either every seed or nothing
            statuses[system] = _system_status(config, reference, profile, dataset, system, missing, len(frame))
        else:
            frame = pd.DataFrame()
            statuses[system] = status or f"data set {dataset!r} is not in profiles.{profile}.datasets"
        summaries[system] = per_class_summary(frame) if len(frame) else None

    rows = []
    for short, voc in class_map().items():
        row = {"table": TABLE, "class": voc, "paper_class": short, "dataset": dataset, "profile": profile,
               "data_source": source}
        notes = []
        for system in table6_systems():
            summary = summaries[system]
            if summary is not None and voc in summary.index:
                row[f"{system}_AP"] = summary.at[voc, "mean"]
                row[f"{system}_AP_std"] = summary.at[voc, "std"]
                row[f"{system}_n_seeds"] = int(summary.at[voc, "n_seeds"])
                if not np.isfinite(summary.at[voc, "mean"]):
                    notes.append(f"{system}: no positive test image")
            else:
                row[f"{system}_AP"] = np.nan
                row[f"{system}_AP_std"] = np.nan
                row[f"{system}_n_seeds"] = 0
                if summary is not None:
                    notes.append(f"{system}: class not in the data set")
                else:
                    notes.append(f"{system}: {statuses[system]}")
            if summary is not None and statuses[system] != MEASURED:
                notes.append(f"{system}: {statuses[system]}")
        row["gain"] = row[f"{PROPOSED}_AP"] - row[f"{BASELINE}_AP"]
        for system in table6_systems():
            row[f"paper_{system}"] = paper_per_class(system)[voc]
        row["paper_gain"] = round(row[f"paper_{PROPOSED}"] - row[f"paper_{BASELINE}"], 6)
        for system in table6_systems():
            row[f"diff_{system}"] = row[f"{system}_AP"] - row[f"paper_{system}"] if comparable else np.nan
        row["status"] = "; ".join(notes) if notes else MEASURED
        rows.append(row)
    return pd.DataFrame(rows)
