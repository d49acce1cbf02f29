"""results/recipes.csv: each baseline under the paper's common recipe beside the same model under its own
published recipe (engine/recipes.py), on Table 1's data set.

Table 1 measures every system with the recipe of the paper's §4.2. A baseline that falls short there may fall
short because of its method or because it trains worse with another method's optimizer and schedule; this table
tells the two apart. A pair is a Table 1 system and a configured system of the same model with
`recipe: published` (e.g. `ml_gcn_published: {model: ml_gcn, recipe: published}`); a profile trains the pairs
when its `compare_recipes` is true. Rows: mean and standard deviation over the profile's seeds of each recipe, the
difference (published - paper recipe), and the paper's claimed Table 1 value for reference.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from drmoe_repro.config import profile_of
from drmoe_repro.layout import RECIPE_TABLE as TABLE, recipe_pairs
from drmoe_repro.paper.claims import table_claims
from drmoe_repro.paper.deviations import deviations, is_measured, measured_status
from drmoe_repro.paper.runs import missing_status, read_runs
from drmoe_repro.paper.tables import summarise, system_status


def _effective_recipe(config: dict, profile: str, system: str) -> str:
    return config["systems"][system].get("recipe", profile_of(config, profile)["train"].get("recipe", "paper"))


def _headlines(profile: str, dataset: str, system: str, seeds: list[int]) -> tuple[list[dict], list[str]]:
    runs = read_runs(profile, dataset, system, seeds)
    return (runs.headlines if runs.complete else []), runs.missing


def _status(config: dict, reference: dict, profile: str, pair: tuple[str, str], missing: list[str]) -> str:
    prof = profile_of(config, profile)
    if not prof.get("compare_recipes", False):
        return f"not run on this profile (profiles.{profile}.compare_recipes is false)"
    if table_claims(TABLE)["dataset"] not in prof["datasets"]:
        return f"not run: the profile has no {table_claims(TABLE)['dataset']} data set"
    for system in pair:
        status = system_status(config, system)
        if status is not None:
            return f"{system}: {status}"
    if _effective_recipe(config, profile, pair[0]) != "paper":
        return f"{pair[0]} trains with the profile's train.recipe, which is not the paper's: nothing to compare"
    if missing:
        return missing_status(missing)
    dataset = table_claims(TABLE)["dataset"]
    return measured_status(profile, deviations(config, reference, profile,
                                               [(dataset, system, seed) for system in pair for seed in prof["seeds"]]))


def build_recipe_table(config: dict, profile: str, reference: dict | None = None) -> pd.DataFrame:
    reference = config if reference is None else reference
    claims = table_claims(TABLE)
    dataset, metrics = claims["dataset"], claims["metrics"]
    by_system = {row["system"]: row for row in claims["rows"]}
    seeds = profile_of(config, profile)["seeds"]
    rows = []
    for system, published in recipe_pairs(config):
        paper_runs, missing_paper = _headlines(profile, dataset, system, seeds)
        published_runs, missing_published = _headlines(profile, dataset, published, seeds)
        status = _status(config, reference, profile, (system, published), missing_paper + missing_published)
        measured = is_measured(status)
        row = {"system": system, "published_system": published, "paper_name": by_system[system]["paper_name"],
               "model": config["systems"][system]["model"], "dataset": dataset, "profile": profile,
               "n_seeds": len(seeds) if measured else 0}
        for metric in metrics:
            paper_mean, paper_std = summarise([h[metric] for h in paper_runs]) if measured else (np.nan, np.nan)
            pub_mean, pub_std = summarise([h[metric] for h in published_runs]) if measured else (np.nan, np.nan)
            row.update({f"{metric}_paper_recipe": paper_mean, f"{metric}_paper_recipe_std": paper_std,
                        f"{metric}_published_recipe": pub_mean, f"{metric}_published_recipe_std": pub_std,
                        f"{metric}_difference": pub_mean - paper_mean,
                        f"paper_claim_{metric}": by_system[system].get(metric, np.nan)})
        row["status"] = status
        rows.append(row)
    return pd.DataFrame(rows)
