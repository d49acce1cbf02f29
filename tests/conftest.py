"""Shared fixtures. The demo data sets are generated once per test session (small sizes keep it under a second), as
are the miniature real-format archives and stand-in pretrained files of tests/realformat.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from drmoe_repro.data.demo import write_demo_coco, write_demo_voc

# tests/ is on sys.path (pytest puts the folder of a conftest.py without __init__.py there): the test helpers
import realformat
from loopback import PROXY_VARIABLES, LoopbackServer


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """One intra-op thread, as the pipeline's profiles pin it: small tensors on a shared 2-core machine run many times
    slower with two threads fighting over the cores, and the thread count is part of what makes runs reproducible.

    A fixture, not an import-time call: under `pytest -n` the controller process runs no test and so never imports
    torch (about 4 s before any worker starts)."""
    import torch

    torch.set_num_threads(1)


DEMO_SEED = 7
DEMO_VOC_SIZES = {"n_trainval": 150, "n_test": 150}
DEMO_COCO_SIZES = {"n_train": 150, "n_val": 150}


@pytest.fixture(scope="session")
def demo_voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo VOC 2007 tree (`JPEGImages/`, `Annotations/`, `ImageSets/Main/`)."""
    root = tmp_path_factory.mktemp("demo") / "VOCdevkit" / "VOC2007"
    write_demo_voc(root, seed=DEMO_SEED, **DEMO_VOC_SIZES)
    return root


@pytest.fixture(scope="session")
def demo_coco_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo COCO 2014 tree (`train2014/`, `val2014/`, `annotations/`)."""
    root = tmp_path_factory.mktemp("demo") / "coco"
    write_demo_coco(root, seed=DEMO_SEED, **DEMO_COCO_SIZES)
    return root


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    """A `LoopbackServer` on 127.0.0.1, closed after the test; *_proxy variables are cleared so urllib reaches it."""
    for var in PROXY_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    srv = LoopbackServer().start()
    yield srv
    srv.close()


# Miniature MS-COCO 2014 / PASCAL VOC 2007 archives in the real names and layouts, stand-in ImageNet weights and
# GloVe vectors (tests/realformat.py). Session-scoped: read them, do not modify them.


@pytest.fixture(scope="session")
def realformat_coco(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`realformat.build_coco2014` (train2014.zip, val2014.zip, annotations_trainval2014.zip) with its defaults."""
    return realformat.build_coco2014(tmp_path_factory.mktemp("realformat_coco"))


@pytest.fixture(scope="session")
def realformat_voc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`realformat.build_voc2007` (VOCtrainval_06-Nov-2007.tar, VOCtest_06-Nov-2007.tar) with its defaults."""
    return realformat.build_voc2007(tmp_path_factory.mktemp("realformat_voc"))


@pytest.fixture(scope="session")
def standin_resnet101(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`realformat.write_standin_resnet101`: resnet101-63fe2227.pth, untrained (~170 MB, about a second)."""
    return realformat.write_standin_resnet101(tmp_path_factory.mktemp("standin_weights"))


@pytest.fixture(scope="session")
def standin_glove(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`realformat.glove_zip`: glove.6B.zip with vectors for every COCO and VOC class-name token."""
    return realformat.glove_zip(tmp_path_factory.mktemp("standin_glove"))


# The modules that take longest, longest first (`make test` at 646f646: the two end-to-end builds about 300 s each,
# then 149, 30, 28 and 13 s; every other module 10 s or less). Collected first, the two builds start at once on two
# workers under `pytest -n` (make test, which keeps this order: --no-loadscope-reorder), and the rest of the suite
# follows longest first, so that no long module is left to run alone at the end.
LONGEST_FIRST = ("test_paper_profile.py", "test_pipeline.py", "test_engine.py", "test_report.py", "test_readme.py",
                 "test_layers.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order within a module is kept
