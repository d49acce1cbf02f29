"""Where a fetched asset lives, read from its fetch marker: the one answer every later step uses.

`drmoe-repro fetch` decides where an asset is (an archive it extracted, a `local:` archive it extracted, a `local:`
folder used as it is, a downloaded or `local:` file) and records it in `<data_dir>/<asset>.fetched.json`. `prepare`,
`train` and `evaluate` read the location from there and nowhere else, so a `local:` setting is honoured by every
step or by none.
"""

from __future__ import annotations

from pathlib import Path

from drmoe_repro.io import load_json
from drmoe_repro.layout import fetch_marker


class AssetNotFetchedError(FileNotFoundError):
    """An asset a step needs has no fetch marker (or its location has gone); the message says what to run."""


def asset_location(prof: dict, asset: str, profile: str) -> Path:
    """The folder (extracted or `local:`) or file (weights) of a fetched asset."""
    marker = fetch_marker(prof, asset)
    fetch = f"`drmoe-repro fetch --profile {profile} --asset {asset}` (or let Snakemake/DVC run it)"
    if not marker.is_file():
        raise AssetNotFetchedError(f"asset {asset!r} is not fetched yet ({marker} is missing): run {fetch}")
    try:
        record = load_json(marker)
        path = Path(record["path"])
    except (ValueError, KeyError, TypeError) as err:
        raise AssetNotFetchedError(f"{marker} is not a fetch marker ({err}); delete it and run {fetch}") from None
    if not path.exists():
        raise AssetNotFetchedError(f"asset {asset!r}: {path}, recorded in {marker} ({record.get('kind', '?')}), does "
                                   f"not exist any more; delete {marker} and run {fetch}")
    return path


def asset_locations(prof: dict, assets: dict[str, str], profile: str) -> dict[str, Path]:
    """Role -> location for a {role: asset name} mapping (layout.dataset_assets, layout.model_assets)."""
    return {role: asset_location(prof, asset, profile) for role, asset in assets.items()}
