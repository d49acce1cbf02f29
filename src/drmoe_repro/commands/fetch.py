"""`drmoe-repro fetch --asset NAME`: download, verify and unpack one asset of the config.

Reads ``profiles.<profile>.assets.<NAME>`` and ``profiles.<profile>.data_dir`` from the config. The archive goes to
``<data_dir>/downloads/<filename>``, its contents to ``<data_dir>/<extract_to>`` (``extract_to`` defaults to the
asset name), and on success a done marker ``<data_dir>/<NAME>.fetched.json`` (what, from where, checksums) is
written: the output the Snakemake fetch rule declares.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from drmoe_repro.data.fetch import FetchError, fetch_asset_result
from drmoe_repro.io import save_json

HELP = "download, verify (MD5/SHA-256) and unpack one data asset of the config (COCO, VOC, GloVe, weights)"

DEFAULT_CONFIG = "workflow/config.yaml"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Download one asset named in the config (profiles.<profile>.assets.<NAME>), resuming a partial download, "
        "trying mirrors in order, verifying its checksum, and unpacking it safely into <data_dir>/<extract_to>. "
        "Set the asset's `local:` to an archive or an extracted folder you already have to skip the download. "
        "A second run of a finished asset does nothing."
    )
    parser.epilog = "example: drmoe-repro fetch --asset voc2007_test --profile paper"
    parser.add_argument("--asset", required=True, metavar="NAME", help="asset key, e.g. coco_train2014, glove_6B")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"config file (default: {DEFAULT_CONFIG})")
    parser.add_argument(
        "--profile",
        default=None,
        help="profile whose assets to use (default: the config's `profile:` key); the paper profile has the assets",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for a connection or for the next bytes before giving up on a URL (default: 60)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in cluster logs)")


def asset_settings(config_path: str | Path, profile: str | None, name: str) -> tuple[str, dict[str, Any], Path]:
    """(profile, asset spec, data_dir) from the config file; the one place that knows where they live in it.

    A raw YAML read for now; the validated config loader can replace the first lines without touching callers.
    """
    config_path = Path(config_path)
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise FetchError(f"cannot read the config {config_path}: {err.strerror}") from None
    profiles = config.get("profiles") or {}
    profile = profile or config.get("profile")
    if profile not in profiles:
        raise FetchError(f"{config_path}: no profile {profile!r}; profiles: {', '.join(sorted(profiles))}")
    settings = profiles[profile] or {}
    assets = settings.get("assets") or {}
    if name not in assets:
        with_assets = sorted(p for p, s in profiles.items() if (s or {}).get("assets"))
        if assets:
            where = f"available: {', '.join(sorted(assets))}"
        else:
            where = f"profile {profile!r} has no assets; profiles with assets: {', '.join(with_assets) or 'none'}"
        raise FetchError(f"{config_path}: no asset {name!r} in profiles.{profile}.assets ({where})")
    if "data_dir" not in settings:
        raise FetchError(f"{config_path}: profiles.{profile}.data_dir is not set")
    return profile, dict(assets[name]), Path(settings["data_dir"])


def run(args: argparse.Namespace) -> int:
    try:
        profile, spec, data_dir = asset_settings(args.config, args.profile, args.asset)
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
    save_json(data_dir / f"{args.asset}.fetched.json", {"profile": profile, **result.record()})
    print(f"{args.asset}: {result.path}")
    return 0
