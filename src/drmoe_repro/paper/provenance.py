"""Where each baseline number of the paper's Tables 1-2 comes from, and under what setup (provenance.yaml).

The paper trains none of its baselines: their rows are numbers from the baselines' publications. provenance.yaml
records, for every baseline row, the publication and table it most plausibly comes from, the source's own values,
its setup (resolution, backbone, pretraining), whether that is the paper's setup, and what the baseline publishes
under the paper's setup where it does. `findings` turns that into the statements the claims audit prints: rows
compared under another setup (with the same-setup number where published), rows whose F1 columns are the source's
swapped, and rows that could not be traced.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

from drmoe_repro.paper.claims import table_claims

METRICS = ("mAP", "OF1", "CF1")


@lru_cache(maxsize=1)
def load_provenance() -> dict:
    with resources.files("drmoe_repro.paper").joinpath("provenance.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def entries() -> list[dict]:
    return list(load_provenance()["entries"])


def _value(values: dict | None, metric: str):
    return None if not values else values.get(metric)


def _f1_swapped(entry: dict) -> bool:
    paper, source = entry["paper_value"], entry.get("source_values") or {}
    return (source.get("OF1") is not None and source.get("CF1") is not None and source["OF1"] != source["CF1"]
            and paper["OF1"] == source["CF1"] and paper["CF1"] == source["OF1"])


def findings() -> list[dict]:
    """One statement per baseline row that the audit should flag: {table, system, kind, text}."""
    out = []
    for entry in entries():
        table, system, paper = entry["table"], entry["system"], entry["paper_value"]
        ours = next(r for r in table_claims(table)["rows"] if r["system"] == "drmoe")
        setup = entry.get("setup") or {}
        same = entry.get("same_setup_as_drmoe") or {}
        if same.get("value") is False:
            text = (f"the paper sets DR-MoE's mAP {ours['mAP']} beside {paper['mAP']}, measured under another setup "
                    f"({setup.get('backbone')}, {setup.get('resolution')}): {same.get('reason')}")
            under = entry.get("under_drmoe_setup")
            if under and under.get("mAP") is not None:
                text += (f" Under the paper's own setup the baseline publishes mAP {under['mAP']}"
                         + "".join(f", {m} {under[m]}" for m in ("OF1", "CF1") if under.get(m) is not None)
                         + f" ({under.get('source')}), which DR-MoE's {ours['mAP']} "
                         + ("exceeds." if ours["mAP"] > under["mAP"] else "does not exceed."))
            else:
                text += " The baseline publishes no number under the paper's setup that could be found."
            out.append({"table": table, "system": system, "kind": "different setup", "text": text})
        elif same.get("value") is None or same.get("value") == "unknown":
            out.append({"table": table, "system": system, "kind": "setup unknown",
                        "text": f"the setup behind {paper['mAP']} could not be established: {same.get('reason')}"})
        if _f1_swapped(entry):
            source = entry["source_values"]
            out.append({"table": table, "system": system, "kind": "F1 columns swapped",
                        "text": f"the source prints OF1 {source['OF1']} and CF1 {source['CF1']}; the paper's OF1 "
                                f"{paper['OF1']} and CF1 {paper['CF1']} are the two swapped"})
        # A value that differs from its source is said whatever the setup (a different setup is said above).
        if entry.get("matches_source") is False and not _f1_swapped(entry):
            out.append({"table": table, "system": system, "kind": "does not match its source",
                        "text": entry.get("notes", "").strip()})
        for item in (entry.get("evidence") or {}).get("unverified", []):
            if entry.get("confidence") == "low":
                out.append({"table": table, "system": system, "kind": "unverified", "text": item})
    return out


def source_cell(entry: dict) -> str:
    source = entry.get("source") or {}
    return f"{source.get('publication', '?')} — {source.get('table_or_place', '?')}"


def setup_cell(entry: dict) -> str:
    setup = entry.get("setup") or {}
    return ", ".join(str(setup[k]) for k in ("backbone", "resolution", "pretraining") if setup.get(k))


def values_cell(values: dict | None) -> str:
    if not values:
        return "—"
    return " / ".join("?" if values.get(m) is None else f"{values[m]}" for m in METRICS)
