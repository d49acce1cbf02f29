"""`train`: train one (data set, system, seed) run and write model.pt and train.json into its run directory."""

from __future__ import annotations

import argparse

from drmoe_repro.commands.common import add_run_arguments, config_and_profile, run_cli_args
from drmoe_repro.engine.devices import run_on_claimed_gpus
from drmoe_repro.config import profile_of, resolve_run
from drmoe_repro.data.locations import asset_locations
from drmoe_repro.engine.train import train_run
from drmoe_repro.layout import index_path, model_assets, run_dir

HELP = ("Train one run (paper §4.2 recipe by default) into results/<profile>/runs/<dataset>/<system>/seed<k>/, "
        "resuming from its last epoch checkpoint if one exists. On a GPU profile it first claims a free GPU (or "
        "`gpus_per_run` of them, then trains as that many torchrun processes).")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config, profile = config_and_profile(args)
    cfg = resolve_run(config, profile, args.dataset, args.system, args.seed)
    prof = profile_of(config, profile)
    # ImageNet weights and GloVe, as the run's model settings ask, from where `fetch` put them (its markers).
    inputs = asset_locations(prof, model_assets(cfg["model"]), profile)
    for role, path in sorted(inputs.items()):
        print(f"{args.system}/{args.dataset}: {role.replace('_', ' ')} from {path}", flush=True)

    def train() -> int:
        train_run(cfg, index_path(profile, args.dataset, "train"),
                  run_dir(profile, args.dataset, args.system, args.seed),
                  progress=not args.no_progress, inputs=inputs, test_index=index_path(profile, args.dataset, "test"))
        return 0

    return run_on_claimed_gpus(prof, max(prof["gpus_per_run"], 1), train, run_cli_args("train", args, profile))
