"""`drmoe-repro fetch --asset NAME`: download, verify and unpack one asset of the config.

Reads ``profiles.<profile>.assets.<NAME>`` and ``profiles.<profile>.data_dir`` from the validated config. The
archive goes to ``<data_dir>/downloads/<filename>``, its contents to ``<data_dir>/<extract_to>`` (``extract_to``
defaults to the asset name); a ``local:`` archive is extracted there too, a ``local:`` folder is used where it is. On
success the fetch marker ``<data_dir>/<NAME>.fetched.json`` records where the asset lives (``path``, ``kind``), what it
was checked against and its checksums: the output the Snakemake fetch rule declares, and what later steps read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drmoe_repro.commands.common import add_config_arguments, config_and_profile
from drmoe_repro.config import profile_of
from drmoe_repro.data import demo
from drmoe_repro.data.fetch import FetchError, fetch_asset_result
from drmoe_repro.io import save_json
from drmoe_repro.layout import demo_asset, fetch_marker
from drmoe_repro.progress import NO_PROGRESS_HELP

HELP = ("download, verify (MD5/SHA-256) and unpack one data asset of the config (COCO, VOC, GloVe, weights), or "
        "generate the demo data set (demo_<dataset>)")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Download one asset named in the config (profiles.<profile>.assets.<NAME>), resuming a partial download, "
        "trying mirrors in order, verifying its checksum, and unpacking it safely into <data_dir>/<extract_to>. "
        "Set the asset's `local:` to an archive or an extracted folder you already have to skip the download. "
        "The fetch marker <data_dir>/<NAME>.fetched.json records where the asset now lives; every later step reads "
        "it from there. A second run of a finished asset does nothing."
    )
    parser.epilog = ("examples: drmoe-repro fetch --asset voc2007_test --profile paper; "
                     "drmoe-repro fetch --asset demo_voc (the demo profile's generated VOC-format data set)")
    add_config_arguments(parser)
    parser.add_argument("--asset", required=True, metavar="NAME", help="asset key, e.g. coco_train2014, glove_6B")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for a connection or for the next bytes before giving up on a URL (default: 60)",
    )
    parser.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)


def demo_assets(prof: dict) -> dict[str, str]:
    """Asset name -> data set, for the profile's generated demo data sets."""
    return {demo_asset(d): d for d, spec in prof["datasets"].items() if spec["source"] == "demo"}


def run(args: argparse.Namespace) -> int:
    config, profile = config_and_profile(args)  # the whole config is validated before any download
    prof = profile_of(config, profile)
    assets = prof.get("assets", {})
    generated = demo_assets(prof)
    if args.asset in generated:
        path = demo.generate_for_profile(prof, generated[args.asset])
        save_json(fetch_marker(prof, args.asset), {
            "profile": profile, "asset": args.asset, "path": str(path), "kind": "generated demo data set",
            "verified": f"generated from demo_seed {prof['demo_seed']} (byte-identical for the same seed)"})
        print(f"{args.asset}: {path} (generated demo data set)")
        return 0
    if args.asset not in assets:
        names = sorted(assets) + sorted(generated)
        where = f"available: {', '.join(names)}" if names else f"profile {profile!r} has no assets"
        raise ValueError(f"{args.config}: no asset {args.asset!r} in profiles.{profile}.assets ({where})")
    spec = assets[args.asset]
    data_dir = Path(prof["data_dir"])
    try:
        result = fetch_asset_result(
            args.asset,
            spec,
            data_dir / "downloads",
            data_dir / spec.get("extract_to", args.asset),
            timeout=args.timeout,
            progress=not args.no_progress,
            config_key=f"profiles.{profile}.assets.{args.asset}",
            config_path=str(args.config),
        )
    except FetchError as err:
        print(f"drmoe-repro fetch: error: {err}", file=sys.stderr)
        return 1
    save_json(fetch_marker(prof, args.asset), {"profile": profile, **result.record()})
    print(f"{args.asset}: {result.path} ({result.kind}; {result.verified})")
    return 0
