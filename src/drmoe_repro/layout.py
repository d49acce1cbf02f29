"""Where everything lives, which runs each table and the report need, and which fetched assets each step needs.

Imports neither torch nor matplotlib (nor pandas): the Snakemake workflow (every `-n`, and every cluster job, parses
it), the DVC generator and the commands all ask this module, so a path or a file name is spelt in one place and
parsing the workflow stays light.
"""

from __future__ import annotations

from pathlib import Path

from drmoe_repro.paper.claims import table_claims

RESULTS = Path("results")
REPORTS = Path("reports")

# ----------------------------------------------------------------------------------------------------------------
# A run directory: results/<profile>/runs/<dataset>/<system>/seed<k>/
# ----------------------------------------------------------------------------------------------------------------

MODEL = "model.pt"  # the evaluated weights (train)
CHECKPOINT = "checkpoint.pt"  # the resume state while a run trains (train; dropped when it finishes)
TRAIN_SUMMARY = "train.json"  # loss and test mAP per epoch, timing (train)
TEST_SCORES = "test_scores.npz"  # model.pt's pass over the test split, for evaluate (train; evaluate drops it)
PREDICTIONS = "predictions.npz"  # image_ids, label_names, targets, scores[, decisions] (evaluate)
GATES = "gates.npz"  # mixture-of-experts models: gates [N, L, E], expert_names (evaluate)
METRICS = "metrics.json"  # every metric named with its convention, headline, gate statistics (evaluate)
CONVENTIONS = "conventions.csv"  # the same scores under every convention (evaluate)
RUN_INFO = "run.json"  # resolved config, provenance, timing (evaluate)
TRAIN_OUTPUTS = (MODEL, TRAIN_SUMMARY)
EVALUATE_OUTPUTS = (PREDICTIONS, METRICS, CONVENTIONS, RUN_INFO)  # gates.npz too, for models with gates


def results_dir(profile: str) -> Path:
    return RESULTS / profile


def run_dir(profile: str, dataset: str, system: str, seed: int) -> Path:
    return results_dir(profile) / "runs" / dataset / system / f"seed{seed}"


def run_file(profile: str, dataset: str, system: str, seed: int, name: str) -> Path:
    return run_dir(profile, dataset, system, seed) / name


def index_path(profile: str, dataset: str, split: str) -> Path:
    """Where `prepare` writes the label index of one split ("train" or "test")."""
    return results_dir(profile) / "index" / dataset / f"{split}.npz"


def fetch_marker(prof: dict, asset: str) -> Path:
    """The file `drmoe-repro fetch --asset NAME` writes once an asset is verified and in place: where it lives."""
    return Path(prof["data_dir"]) / f"{asset}.fetched.json"


def planned_config_dir() -> Path:
    """Where the workflow writes the config it planned with, for its jobs to read (named by content)."""
    return RESULTS / ".planned"


def log_path(profile: str, step: str, name: str) -> Path:
    return results_dir(profile) / "logs" / step / f"{name}.log"


# ----------------------------------------------------------------------------------------------------------------
# Tables, figures, the report
# ----------------------------------------------------------------------------------------------------------------

METRIC_TABLES = (1, 2, 3, 4, 5)  # the paper's tables of mAP / OF1 / CF1
PER_CLASS_TABLE = 6  # the paper's Table 6: per-class AP on VOC
TABLES = {**{str(n): RESULTS / f"table{n}.csv" for n in (*METRIC_TABLES, PER_CLASS_TABLE)},
          "recipes": RESULTS / "recipes.csv", "ablations": RESULTS / "ablations.csv"}
REPORT = REPORTS / "paper_tables.md"
FIGURE_DIR = REPORTS / "figures"


def table_path(name: str | int) -> Path:
    """results/table1.csv ... table6.csv, results/recipes.csv, results/ablations.csv."""
    return TABLES[str(name)]


def headline_path(profile: str) -> Path:
    return results_dir(profile) / "headline.json"


def analysis_path(profile: str) -> Path:
    return results_dir(profile) / "analysis.json"


# The systems the figures and the analyses compare: DR-MoE against HSQ-static (the paper's gating ablation).
BASELINE, PROPOSED = "hsq_static", "drmoe"
# DR-MoE with eq. 11's entropy term of the sign §3.9 describes (-lambda*H); PROPOSED has it as printed (+lambda*H).
PROPOSED_ENTROPY_TEXT = "drmoe_entropy_text"
# Gate figures: figure-key suffix -> (system, how its eq. 11 reads).
GATE_FIGURES = {"": (PROPOSED, "eq. 11 as printed (+λH)"),
                "_entropy_text": (PROPOSED_ENTROPY_TEXT, "eq. 11 with the sign §3.9 describes (−λH)")}


def figure_paths(datasets: list[str], figure_dir: Path = FIGURE_DIR) -> dict[str, Path]:
    """Figure key -> file, for the data sets of a profile (fixed names: the pipeline declares them)."""
    paths = {}
    for d in sorted(datasets):
        for suffix in GATE_FIGURES:
            paths[f"gates_{d}{suffix}"] = figure_dir / f"gates_{d}{suffix}.png"
        paths[f"ap_gain_{d}"] = figure_dir / f"fig4_ap_gain_{d}.png"
        paths[f"cooccurrence_{d}"] = figure_dir / f"cooccurrence_vs_shared_{d}.png"
        paths[f"heterogeneity_{d}"] = figure_dir / f"heterogeneity_vs_gain_{d}.png"
    if "voc" in datasets:
        paths["table6"] = figure_dir / "table6_per_class.png"
    return dict(sorted(paths.items()))


def analysis_datasets(config: dict, profile: str) -> list[str]:
    return sorted(config["profiles"][profile]["datasets"])


def report_outputs(config: dict, profile: str) -> dict[str, Path]:
    """Every file `drmoe-repro report` writes, by key (the pipeline's declared outputs)."""
    out = {"report": REPORT, "headline": headline_path(profile), "analysis": analysis_path(profile)}
    for key, path in figure_paths(analysis_datasets(config, profile)).items():
        out[f"figure_{key}"] = path
    return out


# ----------------------------------------------------------------------------------------------------------------
# Which runs each table and the report read
# ----------------------------------------------------------------------------------------------------------------

# Rows this suite adds to the paper's tables (system, name): measured, with no claim beside them.
EXTRA_ROWS = {
    1: [("drmoe_no_experts", "(not in the paper) DR-MoE ablation: query trunk, no experts")],
    3: [("hsq_static_entropy_text", "(not in the paper) Static gating, eq. 11 with the sign §3.9 describes"),
        ("drmoe_entropy_text", "(not in the paper) Dynamic gating, eq. 11 with the sign §3.9 describes")],
}
RECIPE_TABLE = 1  # baselines' published recipes are compared on Table 1's data set, for Table 1's systems

# {crop_scale}: the profile's own (the paper profile's [0.08, 1]; the demo's milder [0.85, 1], which 0.5 widens)
CROP = "random-resized-crop scale [0.5, 1] instead of the profile's {crop_scale}"
ENTROPY_TEXT = "eq. 11 with the sign §3.9 describes (-λH)"
# (base system, variant, data set, what the variant changes, sensitivity run: trained only with sensitivity_runs)
ABLATIONS = (
    ("drmoe", "drmoe_no_experts", "coco", "no experts and gates: the query trunk and a per-label head", False),
    ("drmoe", "drmoe_entropy_text", "coco", ENTROPY_TEXT, False),
    ("hsq_static", "hsq_static_entropy_text", "coco", ENTROPY_TEXT, False),
    ("drmoe", "drmoe_entropy_text", "voc", ENTROPY_TEXT, False),
    ("drmoe", "drmoe_crop05", "coco", CROP, True),
    ("hsq_static", "hsq_static_crop05", "coco", CROP, True),
    ("ml_gcn", "ml_gcn_crop05", "coco", CROP, True),
)


def table_rows(number: int) -> list[dict]:
    """The paper's rows of table `number` (claims.yaml), then this suite's extra rows (no claimed numbers)."""
    return list(table_claims(number)["rows"]) + [{"system": system, "paper_name": name, "extra": True}
                                                   for system, name in EXTRA_ROWS.get(number, [])]


def _seeds(config: dict, profile: str) -> list[int]:
    return list(config["profiles"][profile]["seeds"])


def required_runs(config: dict, profile: str, number: int) -> list[tuple[str, str, int]]:
    """(data set, system, seed) of every run table `number` reads: the configured systems of its rows."""
    dataset = table_claims(number)["dataset"]
    if dataset not in config["profiles"][profile]["datasets"]:
        return []
    return [(dataset, row["system"], seed) for row in table_rows(number) if row["system"] in config["systems"]
            for seed in _seeds(config, profile)]


def recipe_pairs(config: dict) -> list[tuple[str, str]]:
    """(Table 1 system, configured system of the same model with `recipe: published`), in Table 1's order."""
    published = {spec["model"]: name for name, spec in sorted(config["systems"].items())
                 if spec.get("recipe") == "published"}
    pairs = []
    for row in table_claims(RECIPE_TABLE)["rows"]:
        spec = config["systems"].get(row["system"])
        if spec is not None and spec.get("recipe", "paper") == "paper" and spec["model"] in published:
            pairs.append((row["system"], published[spec["model"]]))
    return pairs


def recipe_runs(config: dict, profile: str) -> list[tuple[str, str, int]]:
    """(data set, system, seed) of every run the recipe comparison needs (none unless compare_recipes)."""
    dataset = table_claims(RECIPE_TABLE)["dataset"]
    prof = config["profiles"][profile]
    if not prof.get("compare_recipes", False) or dataset not in prof["datasets"]:
        return []
    return [(dataset, system, seed) for pair in recipe_pairs(config) for system in pair
            for seed in _seeds(config, profile)]


def active_ablations(config: dict, profile: str) -> list[tuple]:
    """The ablations whose systems are configured and whose data set the profile has (sensitivity ones only with
    `sensitivity_runs`)."""
    prof = config["profiles"][profile]
    return [a for a in ABLATIONS if a[0] in config["systems"] and a[1] in config["systems"]
            and a[2] in prof["datasets"] and (not a[4] or prof.get("sensitivity_runs", False))]


def ablation_runs(config: dict, profile: str) -> list[tuple[str, str, int]]:
    return sorted({(dataset, system, seed) for base, variant, dataset, _, _ in active_ablations(config, profile)
                   for system in (base, variant) for seed in _seeds(config, profile)})


def gate_figure_runs(config: dict, profile: str) -> list[tuple[str, str, int]]:
    return sorted({(d, system, seed) for d in analysis_datasets(config, profile)
                   for system, _ in GATE_FIGURES.values() if system in config["systems"]
                   for seed in _seeds(config, profile)})


def table_runs(config: dict, profile: str, name: str | int) -> list[tuple[str, str, int]]:
    """The runs one table file reads: "1" ... "6", "recipes", "ablations"."""
    name = str(name)
    if name == "recipes":
        return recipe_runs(config, profile)
    if name == "ablations":
        return ablation_runs(config, profile)
    return required_runs(config, profile, int(name))


def report_runs(config: dict, profile: str) -> list[tuple[str, str, int]]:
    """(data set, system, seed) of every run the report reads: every table, the gate figures (both entropy signs),
    sorted."""
    runs = {run for name in TABLES for run in table_runs(config, profile, name)}
    return sorted(runs | set(gate_figure_runs(config, profile)))


# ----------------------------------------------------------------------------------------------------------------
# Which assets a step needs
# ----------------------------------------------------------------------------------------------------------------

# The ImageNet weights of backbone B are the asset `<B>_imagenet`; GloVe label vectors are the asset `glove_6B`; the
# generated demo data set of a data set D is the asset `demo_<D>` (its fetch generates it).
IMAGENET_ASSET_SUFFIX = "_imagenet"
GLOVE_ASSET = "glove_6B"
DEMO_ASSET_PREFIX = "demo_"


def demo_asset(dataset: str) -> str:
    return f"{DEMO_ASSET_PREFIX}{dataset}"


def dataset_assets(prof: dict, dataset: str) -> dict[str, str]:
    """Role ("train", "test", "annotations") -> asset name of a data set; the demo is one generated asset."""
    spec = prof["datasets"][dataset]
    if spec["source"] == "demo":
        return {role: demo_asset(dataset) for role in ("train", "test", "annotations")}
    return dict(spec.get("assets", {}))


def model_assets(model_cfg: dict) -> dict[str, str]:
    """Role -> asset name of what a run's model settings ask for: ImageNet weights, GloVe label vectors.

    `model_cfg` is a run's resolved model block (only the keys its model reads), so a model without label
    embeddings never asks for GloVe, and `pretrained: false` asks for no weights.
    """
    needs = {}
    if model_cfg.get("pretrained"):
        needs["backbone_weights"] = f"{model_cfg['backbone']}{IMAGENET_ASSET_SUFFIX}"
    if model_cfg.get("label_embedding") == "glove":
        needs["label_vectors"] = GLOVE_ASSET
    return needs
