"""The ambiguity list: every entry is complete, and every option it offers is a real config key or CLI flag."""

import re

import pytest

from drmoe_repro.config import DEFAULT_CONFIG, load_config
from drmoe_repro.paper.report import load_ambiguities

ENTRIES = load_ambiguities()


def test_entries_are_complete_and_ids_unique():
    assert len(ENTRIES) >= 15
    assert len({e["id"] for e in ENTRIES}) == len(ENTRIES)
    for entry in ENTRIES:
        assert {"id", "where", "paper_says", "choice", "option"} <= set(entry), entry["id"]
        assert entry["paper_says"].strip() and entry["choice"].strip()


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["option"]], ids=lambda e: e["id"])
def test_every_option_exists(entry):
    config = load_config(DEFAULT_CONFIG)
    for option in re.split(r",\s*", entry["option"]):
        words = option.split()
        if words[0] == "drmoe-repro":  # a CLI flag of a subcommand
            from drmoe_repro.cli import build_parser

            parser = build_parser()
            sub = parser._subparsers._group_actions[0].choices[words[1]]
            flags = {flag for action in sub._actions for flag in action.option_strings}
            assert words[2] in flags, option
            continue
        path = words[0].rstrip(":").replace("<profile>", "demo").replace("<dataset>", "voc").split(".")
        node = config if path[0] == "profiles" else config["profiles"]["paper"]
        for key in path:
            assert isinstance(node, dict) and key in node, f"{entry['id']}: {option} is not a config key"
            node = node[key]
