"""`prepare`: build the label index of a data set's train and test splits (and generate the demo data first)."""

from __future__ import annotations

import argparse

from drmoe_repro.commands.common import add_config_arguments, config_and_profile
from drmoe_repro.config import profile_of
from drmoe_repro.layout import index_path
from drmoe_repro.data.prepare import prepare_dataset

HELP = ("Build results/<profile>/index/<dataset>/{train,test}.npz from the data set's annotation files "
        "(VOC ImageSets or COCO JSON) where `fetch` put them, checking every image as training will read it.")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--dataset", required=True, help="data set key of the profile, e.g. coco or voc")


def run(args: argparse.Namespace) -> int:
    config, profile = config_and_profile(args)
    prof = profile_of(config, profile)
    if args.dataset not in prof["datasets"]:
        raise ValueError(f"data set {args.dataset!r} is not in profiles.{profile}.datasets; "
                         f"defined: {', '.join(prof['datasets'])}")
    counts = prepare_dataset(prof, args.dataset, profile,
                             train_out=index_path(profile, args.dataset, "train"),
                             test_out=index_path(profile, args.dataset, "test"))
    print(f"{args.dataset}: {counts['train']} training and {counts['test']} test images, {counts['labels']} labels")
    return 0
