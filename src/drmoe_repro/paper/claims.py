"""The paper's claimed numbers (claims.yaml), loaded once."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml


@lru_cache(maxsize=1)
def load_claims() -> dict:
    with resources.files("drmoe_repro.paper").joinpath("claims.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def table_claims(number: int) -> dict:
    claims = load_claims()
    key = f"table{number}"
    if key not in claims:
        raise KeyError(f"the paper has no table {number}; tables: {', '.join(sorted(claims))}")
    return claims[key]
