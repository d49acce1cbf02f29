"""`plan`'s data and disk lines: the downloads' bytes from the config's sizes, and the free space, measured where
the outputs will go."""

import shutil
from collections import namedtuple
from pathlib import Path

from drmoe_repro.config import DEFAULT_CONFIG, assets_for_runs, load_config
from drmoe_repro.plan import asset_lines, free_space_line, runs_for_targets

Usage = namedtuple("Usage", "total used free")


def test_free_space_is_measured_on_the_nearest_folder_that_exists(tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()
    asked = []

    def usage(path):
        asked.append(Path(path))
        if Path(path) == tmp_path:  # where elsewhere/data would go: a disk that does not say
            raise PermissionError("no access")
        return Usage(0, 0, 51_200_000_000)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    line = free_space_line({"the runs": tmp_path / "results" / "paper",
                            "the data": tmp_path / "elsewhere" / "data"})
    assert asked == [tmp_path / "results", tmp_path]  # neither folder is made yet: their nearest parents' disks
    assert line == (f"Free disk now: 51.2 GB for the runs ({tmp_path / 'results' / 'paper'}), "
                    f"unknown for the data ({tmp_path / 'elsewhere' / 'data'}).")


def test_the_downloads_are_summed_from_the_configs_sizes_and_an_unsized_one_is_named():
    lines = asset_lines({
        "coco_train2014": {"urls": ["u"], "size": 13_510_573_713},
        "coco_val2014": {"urls": ["u"], "size": 6_645_013_297},
        "resnet101_imagenet": {"urls": ["u"], "size": None},
        "voc2007_test": {"urls": ["u"], "size": 451_020_800, "local": "/data/voc_test.tar"},  # not downloaded
        "demo_voc": None,
    })
    assert lines[0].startswith("Downloads first (where not fetched yet): coco_train2014, coco_val2014, "
                               "resnet101_imagenet: 20.2 GB, not counting resnet101_imagenet (no size in the config).")
    assert lines[1:] == ["Local copies, used where they are (the config's `local`): voc2007_test.",
                         "Generated first (where not generated yet): demo_voc."]
    assert asset_lines({}) == []
    assert asset_lines({"glove_6B": {"urls": ["u"]}})[0].startswith(
        "Downloads first (where not fetched yet): glove_6B: sizes not in the config.")


def test_the_paper_profile_plan_counts_every_archive_it_fetches():
    config = load_config(DEFAULT_CONFIG)
    specs = config["profiles"]["paper"]["assets"]
    names = assets_for_runs(config, "paper", runs_for_targets(config, "paper", ["results/table2.csv"]))
    assert names == ["glove_6B", "resnet101_imagenet", "voc2007_test", "voc2007_trainval"]  # GloVe: ML-GCN's
    line = asset_lines({name: specs[name] for name in names})[0]
    # VOC 2007's two tars and GloVe 6B: 460,032,000 + 451,020,800 + 862,182,613 bytes (workflow/config.yaml)
    assert ": 1.8 GB, not counting resnet101_imagenet (no size in the config)." in line
