"""Where runs depart from their profile's recipe, so that no such row is ever shown as a plain reproduction.

The recipe of a profile is the profile as shipped in the reference config (workflow/config.yaml). A run deviates
where its resolved settings (run.json's `config`, the part that changes results: config.run_signature) differ
from the same run resolved from the reference, where it saw fewer images than the reference's full data set
(a subset), and a table deviates where it averages other seeds than the reference's.
"""

from __future__ import annotations

from drmoe_repro.config import ConfigError, differing_keys, expected_counts, profile_of, resolve_run
from drmoe_repro.io import load_json
from drmoe_repro.layout import RUN_INFO, run_file

MEASURED = "measured"


def run_deviations(run_info: dict, reference: dict) -> list[str]:
    """What one evaluated run (its run.json) does differently from its profile in `reference`."""
    cfg = run_info["config"]
    try:
        ref = resolve_run(reference, cfg["profile"], cfg["dataset"], cfg["system"], cfg["seed"])
    except ConfigError as err:
        return [f"not in the reference config ({err})"]
    found = differing_keys(cfg, ref)
    expected = expected_counts(profile_of(reference, cfg["profile"]), cfg["dataset"])
    if expected:
        got = {"train": run_info.get("num_train_images"), "test": run_info.get("num_test_images")}
        if any(got[split] is not None and got[split] != expected[split] for split in got):
            found.append(f"data subset ({got['train']} training / {got['test']} test images; the full data set: "
                         f"{expected['train']} / {expected['test']})")
    return found


def seed_deviation(config: dict, reference: dict, profile: str) -> list[str]:
    seeds, expected = profile_of(config, profile)["seeds"], profile_of(reference, profile)["seeds"]
    return [] if list(seeds) == list(expected) else [f"seeds {list(seeds)} (the profile's: {list(expected)})"]


def deviations(config: dict, reference: dict, profile: str, runs: list[tuple[str, str, int]]) -> list[str]:
    """Every deviation of the given runs that exist (their run.json), and of the seeds, sorted and without repeats."""
    found: set[str] = set(seed_deviation(config, reference, profile))
    for dataset, system, seed in runs:
        path = run_file(profile, dataset, system, seed, RUN_INFO)
        if path.is_file():
            found.update(run_deviations(load_json(path), reference))
    return sorted(found)


def measured_status(profile: str, found: list[str]) -> str:
    """The `status` of a measured row: "measured", or "measured, deviates from the <profile> profile: ..."."""
    if not found:
        return MEASURED
    return f"{MEASURED}, deviates from the {profile} profile: {'; '.join(found)}"


def is_measured(status: str) -> bool:
    return status == MEASURED or status.startswith(f"{MEASURED}, deviates")
