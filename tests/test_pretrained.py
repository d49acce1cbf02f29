"""Tests of drmoe_repro.data.pretrained, offline: weights are untrained torchvision models the tests save, the
'download' is from a loopback server or a refused loopback port, GloVe is a tiny file the tests write."""

from __future__ import annotations

import hashlib
import http.server
import logging
import socket
import threading

import numpy as np
import pytest
import torch
import torchvision

from drmoe_repro.data import pretrained
from drmoe_repro.data.fetch import FetchError
from drmoe_repro.data.pretrained import (
    MissingWordError,
    imagenet_backbone_weights,
    imagenet_weights_asset,
    load_glove,
    load_imagenet_resnet101,
)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def resnet18_state():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.fixture
def refused_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    yield sock.getsockname()[1]
    sock.close()


# --------------------------------------------------------------------------------------------------------------------
# ImageNet weights
# --------------------------------------------------------------------------------------------------------------------


def test_torchvision_weights_are_described_with_their_hash_prefix():
    v1 = imagenet_weights_asset("resnet101")
    assert v1["urls"] == ["https://download.pytorch.org/models/resnet101-63fe2227.pth"]
    assert v1["filename"] == "resnet101-63fe2227.pth" and v1["sha256"] == "63fe2227" and v1["extract"] is False
    assert imagenet_weights_asset("resnet101", "IMAGENET1K_V2")["sha256"] == "cd907fc2"
    with pytest.raises(FetchError, match="IMAGENET1K_V1"):
        imagenet_weights_asset("resnet101", "IMAGENET9K")


def test_local_state_dict_loads_into_the_model(tmp_path, resnet18_state):
    path = tmp_path / "my_resnet18.pth"
    torch.save(resnet18_state, path)
    state = imagenet_backbone_weights("resnet18", tmp_path / "cache", local=path)
    model = torchvision.models.resnet18(weights=None)
    model.load_state_dict(state)  # strict
    assert torch.equal(model.conv1.weight, resnet18_state["conv1.weight"])
    assert not (tmp_path / "cache").exists()  # a local file is used in place


@pytest.mark.parametrize("with_counters", [True, False])
def test_a_backbone_built_from_weights_holds_exactly_them_and_draws_no_random_numbers(resnet18_state, with_counters):
    """The backbone skips its random initialisation when given weights (models/backbone.py): every tensor must still
    be the file's, a missing BatchNorm counter 0 as in a fresh network, the weights not shared with the model, and
    the global RNG where it was, so that what is built next starts from the same RNG state."""
    from drmoe_repro.models.backbone import build_backbone

    state = {k: v for k, v in resnet18_state.items() if with_counters or not k.endswith("num_batches_tracked")}
    torch.manual_seed(5)
    rng_before = torch.get_rng_state()
    trunk = build_backbone({"backbone": "resnet18", "pretrained": True}, state)
    assert torch.equal(torch.get_rng_state(), rng_before)
    reference = torchvision.models.resnet18(weights=None)
    reference.load_state_dict(state)
    reference_body = torch.nn.Sequential(*list(reference.children())[:-2])  # conv1 .. layer4, as the trunk
    built, expected = trunk.body.state_dict(), reference_body.state_dict()
    assert list(built) == list(expected)
    for name, tensor in expected.items():
        assert torch.equal(built[name], tensor), name
    file_conv1 = state["conv1.weight"].clone()
    with torch.no_grad():
        trunk.body[0].weight.add_(1.0)  # training the model must leave the loaded weights (and this fixture) alone
    assert torch.equal(state["conv1.weight"], file_conv1)
    assert torch.equal(trunk.body[0].weight, file_conv1 + 1.0)


def test_local_checkpoint_wrapping_is_unwrapped(tmp_path, resnet18_state):
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in resnet18_state.items()}}, path)
    state = imagenet_backbone_weights("resnet18", tmp_path, local=path)
    assert set(state) == set(resnet18_state)


def test_wrong_architecture_and_unsafe_pickles_are_refused(tmp_path, resnet18_state):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    expected = r"not a torchvision resnet101 state dict: 4\d\d missing \(e\.g\. layer1\.0\.bn3"
    with pytest.raises(FetchError, match=expected):
        load_imagenet_resnet101(tmp_path / "cache", local=path)

    pickled = tmp_path / "code.pth"
    torch.save({"weights": logging.getLogger("x")}, pickled)  # an arbitrary object: weights_only must refuse it
    with pytest.raises(FetchError, match="weights_only=True"):
        imagenet_backbone_weights("resnet18", tmp_path, local=pickled)
    with pytest.raises(FetchError, match="does not exist"):
        imagenet_backbone_weights("resnet18", tmp_path, local=tmp_path / "missing.pth")


def test_offline_download_says_where_to_put_the_weights(tmp_path, refused_port):
    url = f"http://127.0.0.1:{refused_port}/models/resnet101-63fe2227.pth"
    with pytest.raises(FetchError) as caught:
        load_imagenet_resnet101(tmp_path / "weights", urls=[url], progress=False)
    message = str(caught.value)
    assert "cannot reach any host" in message and url in message
    assert str(tmp_path / "weights" / "resnet101-63fe2227.pth") in message
    assert "resnet101_imagenet.local: /path/to/resnet101-63fe2227.pth" in message


class _OneFile(http.server.BaseHTTPRequestHandler):
    body = b""
    hits = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def weights_server(tmp_path, resnet18_state):
    path = tmp_path / "served.pth"
    torch.save(resnet18_state, path)
    data = path.read_bytes()
    handler = type("Handler", (_OneFile,), {"body": data, "hits": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    safety = threading.Timer(60, httpd.shutdown)  # never outlives the test session
    safety.daemon = True
    safety.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/resnet18.pth", data, handler
    safety.cancel()
    httpd.shutdown()
    httpd.server_close()


def test_download_is_cached_and_its_hash_prefix_checked(tmp_path, monkeypatch, weights_server):
    url, data, handler = weights_server
    prefix = hashlib.sha256(data).hexdigest()[:8]
    spec = {"urls": [url], "md5": None, "sha256": prefix, "filename": f"resnet18-{prefix}.pth", "extract": False}
    monkeypatch.setattr(pretrained, "imagenet_weights_asset", lambda arch, version: dict(spec))

    cache = tmp_path / "weights"
    state = imagenet_backbone_weights("resnet18", cache, progress=False)
    assert (cache / f"resnet18-{prefix}.pth").read_bytes() == data
    assert set(state) == set(torchvision.models.resnet18(weights=None).state_dict())
    imagenet_backbone_weights("resnet18", cache, progress=False)
    assert handler.hits == 1  # the second call uses the cache

    # torchvision's own file name promises another SHA-256: the untrained file served in its place is refused.
    monkeypatch.setattr(pretrained, "imagenet_weights_asset", lambda arch, version: {**spec, "sha256": "63fe2227",
                                                                                     "filename": "resnet18-x.pth"})
    with pytest.raises(FetchError, match=f"expected sha256 63fe2227, got sha256 {prefix}"):
        imagenet_backbone_weights("resnet18", cache, progress=False)
    assert not (cache / "resnet18-x.pth").exists()


# --------------------------------------------------------------------------------------------------------------------
# GloVe
# --------------------------------------------------------------------------------------------------------------------

_GLOVE = {
    "person": [1.0, 0.0, 0.0, 0.0],
    "traffic": [1.0, 2.0, 3.0, 4.0],
    "light": [3.0, 2.0, 1.0, 0.0],
    "dining": [0.0, 0.0, 2.0, 2.0],
    "table": [2.0, 2.0, 0.0, 0.0],
    "potted": [4.0, 0.0, 0.0, 0.0],
    "plant": [0.0, 4.0, 0.0, 0.0],
    "t-shirt": [0.5, 0.5, 0.5, 0.5],
    "t": [9.0, 9.0, 9.0, 9.0],
}


@pytest.fixture
def glove_file(tmp_path):
    path = tmp_path / "glove.6B.4d.txt"
    lines = [f"{word} " + " ".join(f"{v:.5f}" for v in vec) for word, vec in _GLOVE.items()]
    lines.insert(3, "the 0.1 0.2 0.3 0.4")  # words the labels do not need are skipped
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_glove_averages_the_parts_of_multi_word_labels(glove_file):
    vectors = load_glove(glove_file, ["Person", "traffic light", "dining_table", "pottedplant", "t-shirt"], dim=4)
    assert vectors.shape == (5, 4) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], _GLOVE["person"])  # case folded
    np.testing.assert_allclose(vectors[1], [2.0, 2.0, 2.0, 2.0])  # mean of "traffic" and "light"
    np.testing.assert_allclose(vectors[2], [1.0, 1.0, 1.0, 1.0])  # underscore splits too
    np.testing.assert_allclose(vectors[3], [2.0, 2.0, 0.0, 0.0])  # VOC alias -> "potted plant"
    np.testing.assert_allclose(vectors[4], _GLOVE["t-shirt"])  # a whole token wins over its parts
    np.testing.assert_allclose(load_glove(glove_file.parent, ["person"], dim=4)[0], _GLOVE["person"])  # a folder


def test_glove_missing_word_is_named_or_zero_filled(glove_file, caplog):
    with pytest.raises(MissingWordError) as caught:
        load_glove(glove_file, ["person", "hair drier"], dim=4)
    message = str(caught.value)
    assert "'hair'" in message and "'hair drier'" in message and str(glove_file) in message

    with caplog.at_level(logging.WARNING, logger="drmoe_repro.data.pretrained"):
        vectors = load_glove(glove_file, ["hair drier", "light bulb"], dim=4, missing="zeros")
    np.testing.assert_allclose(vectors[0], 0.0)  # nothing found: zeros
    np.testing.assert_allclose(vectors[1], _GLOVE["light"])  # the parts found
    assert "hair" in caplog.text


def test_glove_wrong_dimension_is_reported_with_the_line(glove_file):
    with pytest.raises(ValueError, match=r"line 1: 'person' has 4 values, expected 300"):
        load_glove(glove_file, ["person"])
