"""claims.yaml against the paper text: every transcribed number is the number printed in the paper."""

import os
import re
from pathlib import Path

import pytest

from drmoe_repro.paper.claims import load_claims

ROOT = Path(__file__).resolve().parents[1]
# The paper is not part of this repository; it lies in the workplace's shared/ folder beside the checkout.
PAPER = Path(os.environ.get("DRMOE_PAPER", ROOT.parent / "shared" / "paper" / "dr-moe-paper.md"))

pytestmark = pytest.mark.skipif(not PAPER.exists(), reason=f"paper text not found at {PAPER} (set DRMOE_PAPER)")


def _cells(line: str) -> list[str]:
    return [re.sub(r"</?b>", "", cell).strip() for cell in line.split("\t")]


def _table_lines(text: str, number: int) -> list[list[str]]:
    """The tab-separated rows that follow the caption 'Table N:' up to the next caption or section."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"Table {number}:"))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("Table ") or line.startswith("#") or line.startswith("Figure"):
            break
        if "\t" in line:
            rows.append(_cells(line))
    return rows


@pytest.fixture(scope="module")
def paper_text():
    return PAPER.read_text(encoding="utf-8")


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_metric_tables_match_the_paper(paper_text, number):
    claims = load_claims()[f"table{number}"]
    rows = _table_lines(paper_text, number)
    header, body = rows[0], rows[1:]
    assert claims["caption"] in paper_text
    assert len(body) == len(claims["rows"])
    for printed, claim in zip(body, claims["rows"]):
        values = {name: float(printed[header.index(f"{name} (%)")]) for name in claims["metrics"]}
        assert printed[0].replace("$", "").strip() == claim["paper_name"].replace("$", "").strip() or \
            printed[0] == claim["paper_name"], (printed[0], claim["paper_name"])
        assert values == {name: claim[name] for name in claims["metrics"]}, printed[0]
        if "backbone" in claim:
            assert printed[header.index("Backbone")] == claim["backbone"]


def test_per_class_table_matches_the_paper(paper_text):
    claims = load_claims()["table6"]
    rows = _table_lines(paper_text, 6)
    halves = [rows[0:3], rows[3:6]]  # the paper prints 10 classes per block
    columns = [c for block in halves for c in block[0][1:]]
    assert columns == list(claims["classes"])
    for r, claim in enumerate(claims["rows"]):
        printed = [float(v) for block in halves for v in block[r + 1][1:]]
        assert printed == claim["per_class"], claim["system"]
