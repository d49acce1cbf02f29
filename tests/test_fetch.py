"""Tests of drmoe_repro.data.fetch and the `fetch` subcommand against a loopback HTTP server the tests start.

The server (tests/loopback.py, the `server` fixture of tests/conftest.py) listens on 127.0.0.1 only (port 0: the OS
picks a free one), runs in a daemon thread, is shut down by each test's fixture and, as a safety net, by a timer after
a minute. Archives are made by the tests in the real formats: a small zip laid out like COCO's train2014.zip and small
tars laid out like VOC 2007's.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import re
import shutil
import socket
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from drmoe_repro import progress
from drmoe_repro.commands import fetch as fetch_command
from drmoe_repro.data import fetch as fetch_module
from drmoe_repro.data.fetch import FetchError, extract_archive, fetch_asset, fetch_asset_result

# --------------------------------------------------------------------------------------------------------------------
# Loopback server: the `server` fixture is in tests/conftest.py, the class in tests/loopback.py
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def refused_url():
    """A URL on a loopback port that is bound but not listening: connecting is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/archive.zip"
    sock.close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # urllib honours *_proxy variables; a proxy must not stand between the client and the loopback server.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


# --------------------------------------------------------------------------------------------------------------------
# Archives in the real layouts
# --------------------------------------------------------------------------------------------------------------------


def _payload(seed: int, size: int = 40_000) -> bytes:
    """Incompressible-looking bytes, so archives have a real size to cut in half."""
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


COCO_MEMBERS = {
    "train2014/COCO_train2014_000000000009.jpg": _payload(1),
    "train2014/COCO_train2014_000000000025.jpg": _payload(2),
    "train2014/COCO_train2014_000000000030.jpg": _payload(3),
}


def make_coco_zip(stored: bool = False) -> bytes:
    buffer = io.BytesIO()
    compression = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        zf.writestr("train2014/", b"")
        for name, data in COCO_MEMBERS.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tar_with(members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return buffer.getvalue()


VOC_TRAINVAL = {
    "VOCdevkit/VOC2007/JPEGImages/000005.jpg": _payload(5),
    "VOCdevkit/VOC2007/ImageSets/Main/aeroplane_trainval.txt": b"000005 -1\n",
}
VOC_TEST = {
    "VOCdevkit/VOC2007/JPEGImages/000001.jpg": _payload(6),
    "VOCdevkit/VOC2007/ImageSets/Main/aeroplane_test.txt": b"000001 -1\n",
}


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def spec_for(urls, data: bytes | None, filename: str = "train2014.zip", **extra) -> dict:
    return {"urls": list(urls), "md5": md5_of(data) if data is not None else None, "filename": filename, **extra}


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def assert_coco_extracted(target: Path) -> None:
    for name, data in COCO_MEMBERS.items():
        assert (target / name).read_bytes() == data


# --------------------------------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------------------------------


def test_cut_download_resumes_with_range_and_verifies(server, tmp_path):
    data = make_coco_zip()
    url = server.serve("/zips/train2014.zip", data, "cut_once")
    downloads, target = tmp_path / "downloads", tmp_path / "coco"

    result = fetch_asset_result("coco_train2014", spec_for([url], data), downloads, target, progress=False)

    assert result.path == target and result.source == url and result.md5 == md5_of(data)
    half = len(data) // 2
    assert server.ranges["/zips/train2014.zip"] == [None, f"bytes={half}-"]  # second request resumed at the cut
    assert (downloads / "train2014.zip").read_bytes() == data
    assert not (downloads / "train2014.zip.part").exists()
    sidecar = json.loads((downloads / "train2014.zip.checksums.json").read_text())
    assert sidecar["md5"] == md5_of(data) and sidecar["sha256"] == hashlib.sha256(data).hexdigest()
    assert sidecar["source"] == url
    assert_coco_extracted(target)
    marker = json.loads((target / ".coco_train2014.extracted.json").read_text())
    assert marker["md5"] == md5_of(data) and marker["filename"] == "train2014.zip"


@pytest.mark.parametrize("stale_part", [False, True])
def test_server_ignoring_range_still_gives_the_right_file(server, tmp_path, stale_part):
    data = _tar_with(VOC_TEST)
    url = server.serve("/VOCtest_06-Nov-2007.tar", data, "ignore_range" if stale_part else "cut_once_ignore_range")
    downloads = tmp_path / "downloads"
    if stale_part:  # garbage left by some earlier run: a server answering 200 to our Range must overwrite it
        downloads.mkdir()
        (downloads / "VOCtest_06-Nov-2007.tar.part").write_bytes(b"x" * 1000)

    spec = spec_for([url], data, "VOCtest_06-Nov-2007.tar")
    out = fetch_asset("voc2007_test", spec, downloads, tmp_path / "voc", progress=False)

    ranges = server.ranges["/VOCtest_06-Nov-2007.tar"]
    assert ranges[-1] is not None and ranges[-1].startswith("bytes=")  # we asked to resume; the server said 200
    assert (downloads / "VOCtest_06-Nov-2007.tar").read_bytes() == data
    assert (out / "VOCdevkit/VOC2007/JPEGImages/000001.jpg").read_bytes() == VOC_TEST[
        "VOCdevkit/VOC2007/JPEGImages/000001.jpg"
    ]


def test_transfer_stalling_midway_times_out_and_resumes(server, tmp_path):
    data = make_coco_zip()
    url = server.serve("/train2014.zip", data, "stall_once")
    spec = spec_for([url], data, extract=False)
    fetch_asset("coco_train2014", spec, tmp_path / "dl", tmp_path / "x", timeout=0.5, progress=False)
    assert (tmp_path / "dl" / "train2014.zip").read_bytes() == data
    assert server.ranges["/train2014.zip"] == [None, f"bytes={len(data) // 2}-"]


def test_complete_part_file_is_finished_with_a_416_answer(server, tmp_path):
    # A crash between the last byte and the rename leaves a whole .part; the server answers 416 to its Range.
    data = make_coco_zip()
    url = server.serve("/train2014.zip", data)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "train2014.zip.part").write_bytes(data)
    fetch_asset("coco_train2014", spec_for([url], data, extract=False), downloads, tmp_path / "x", progress=False)
    assert (downloads / "train2014.zip").read_bytes() == data
    assert server.ranges["/train2014.zip"] == [f"bytes={len(data)}-"]


def test_corrupted_archive_is_rejected_naming_both_checksums(server, tmp_path):
    data = make_coco_zip()
    corrupted = bytearray(data)
    corrupted[len(data) // 3] ^= 0xFF
    url = server.serve("/train2014.zip", bytes(corrupted))
    downloads, target = tmp_path / "downloads", tmp_path / "coco"

    with pytest.raises(FetchError) as caught:
        fetch_asset("coco_train2014", spec_for([url], data), downloads, target, progress=False)

    message = str(caught.value)
    assert md5_of(data) in message and md5_of(bytes(corrupted)) in message
    assert url in message and "train2014.zip" in message
    assert not (downloads / "train2014.zip").exists()
    assert not (downloads / "train2014.zip.part").exists()  # a corrupt partial file must not be resumed later
    assert files_under(target) == set()


def test_archive_failing_mid_extraction_leaves_nothing_half_extracted(tmp_path):
    # No checksum published (md5: null), a CRC error in the second member: extraction stops after writing some.
    data = bytearray(make_coco_zip(stored=True))
    second = COCO_MEMBERS["train2014/COCO_train2014_000000000025.jpg"]
    data[data.index(second) + 100] ^= 0xFF
    archive = tmp_path / "mine" / "train2014.zip"
    archive.parent.mkdir()
    archive.write_bytes(bytes(data))
    target = tmp_path / "data" / "coco"
    target.mkdir(parents=True)
    (target / "annotations").mkdir()  # another asset's files, sharing the folder, must survive
    (target / "annotations" / "instances_train2014.json").write_text("{}")

    spec = {"urls": [], "md5": None, "filename": "train2014.zip", "local": str(archive)}
    with pytest.raises(FetchError, match="could not extract"):
        fetch_asset("coco_train2014", spec, tmp_path / "downloads", target, progress=False)

    assert files_under(target) == {"annotations/instances_train2014.json"}
    assert [p.name for p in target.iterdir()] == ["annotations"]  # no staging folder, no marker


def test_mirror_is_used_after_404_and_refused(server, refused_url, tmp_path):
    data = make_coco_zip()
    missing = server.url("/gone/train2014.zip")  # not served: 404
    mirror = server.serve("/mirror/train2014.zip", data)

    result = fetch_asset_result(
        "coco_train2014", spec_for([refused_url, missing, mirror], data), tmp_path / "dl", tmp_path / "coco",
        progress=False,
    )

    assert result.source == mirror
    assert server.hits["/gone/train2014.zip"] == 1 and server.hits["/mirror/train2014.zip"] == 1
    assert_coco_extracted(tmp_path / "coco")


def test_all_urls_failing_for_different_reasons_lists_each(server, refused_url, tmp_path):
    missing = server.url("/gone/train2014.zip")
    with pytest.raises(FetchError) as caught:
        fetch_asset("coco_train2014", spec_for([missing, refused_url], b""), tmp_path / "dl", tmp_path / "c",
                    progress=False)
    message = str(caught.value)
    assert f"{missing}: HTTP 404" in message and refused_url in message
    assert "from any of its 2 URL(s)" in message


def test_server_that_never_answers_times_out_naming_the_url(server, tmp_path):
    url = server.serve("/zips/val2014.zip", b"", "hang")
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch_asset("coco_val2014", spec_for([url], b"", "val2014.zip"), tmp_path / "dl", tmp_path / "coco",
                    timeout=1, progress=False)
    assert time.monotonic() - started < 8
    message = str(caught.value)
    assert url in message and "timed out" in message and "1 s" in message
    assert not (tmp_path / "dl" / "val2014.zip").exists()


def test_offline_says_where_to_put_the_file_and_which_key_to_set(refused_url, tmp_path):
    downloads = tmp_path / "data" / "downloads"
    second = refused_url.replace("/archive.zip", "/mirror/train2014.zip")
    spec = spec_for([refused_url, second], b"")
    with pytest.raises(FetchError) as caught:
        fetch_asset("coco_train2014", spec, downloads, tmp_path / "data" / "coco", progress=False)
    message = str(caught.value)
    assert "cannot reach any host" in message
    assert f"Download {refused_url} by other means" in message
    assert str(downloads / "train2014.zip") in message
    assert "profiles.paper.assets.coco_train2014.local: /path/to/train2014.zip in workflow/config.yaml" in message


def test_second_fetch_of_a_done_asset_does_no_work(server, tmp_path, monkeypatch):
    data = make_coco_zip()
    url = server.serve("/train2014.zip", data)
    args = ("coco_train2014", spec_for([url], data), tmp_path / "dl", tmp_path / "coco")
    fetch_asset(*args, progress=False)
    marker = tmp_path / "coco" / ".coco_train2014.extracted.json"
    before = marker.stat().st_mtime_ns

    def no_hashing(*_args, **_kwargs):
        raise AssertionError("a done asset must not be read again")

    monkeypatch.setattr(fetch_module, "_hash_file", no_hashing)
    monkeypatch.setattr(fetch_module, "extract_archive", no_hashing)
    assert fetch_asset(*args, progress=False) == tmp_path / "coco"
    assert server.hits["/train2014.zip"] == 1
    assert marker.stat().st_mtime_ns == before


def test_second_fetch_of_a_kept_file_trusts_its_checksum_record(server, tmp_path, monkeypatch):
    data = b"not an archive: weights"
    url = server.serve("/resnet.pth", data)
    spec = spec_for([url], data, "resnet.pth", extract=False)
    first = fetch_asset("w", spec, tmp_path / "cache", tmp_path / "cache", progress=False)
    assert first == tmp_path / "cache" / "resnet.pth" and first.read_bytes() == data
    monkeypatch.setattr(fetch_module, "_hash_file", lambda *a, **k: pytest.fail("re-hashed a recorded file"))
    assert fetch_asset("w", spec, tmp_path / "cache", tmp_path / "cache", progress=False) == first
    assert server.hits["/resnet.pth"] == 1


def test_file_put_in_the_download_folder_by_hand_is_verified_and_used(tmp_path, refused_url):
    data = make_coco_zip()
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "train2014.zip").write_bytes(data)
    result = fetch_asset_result("coco_train2014", spec_for([refused_url], data), tmp_path / "dl", tmp_path / "coco",
                                progress=False)
    assert result.md5 == md5_of(data)
    assert_coco_extracted(tmp_path / "coco")

    (tmp_path / "dl" / "val2014.zip").write_bytes(b"wrong")
    with pytest.raises(FetchError, match=f"expected md5 {'0' * 32}, got md5 {md5_of(b'wrong')}"):
        fetch_asset("coco_val2014", {"urls": [refused_url], "md5": "0" * 32, "filename": "val2014.zip"},
                    tmp_path / "dl", tmp_path / "coco", progress=False)


# --------------------------------------------------------------------------------------------------------------------
# The config's `size`: checked before a byte is written or read
# --------------------------------------------------------------------------------------------------------------------


def test_a_host_serving_another_length_is_skipped_before_a_byte_is_written(server, tmp_path, caplog, monkeypatch):
    data = make_coco_zip()
    other = server.serve("/other/train2014.zip", data + b"appended by the host")  # a changed or wrong file
    mirror = server.serve("/mirror/train2014.zip", data)
    written = []
    spec = spec_for([other, mirror], data, size=len(data))

    real_open = open

    def watching_open(path, mode="r", *args, **kwargs):
        if str(path).endswith(".part") and "b" in mode and ("w" in mode or "a" in mode):
            written.append(server.hits["/mirror/train2014.zip"])  # how many mirror requests came before the write
        return real_open(path, mode, *args, **kwargs)

    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, logger="drmoe_repro.data.fetch"):
        patch.setattr(fetch_module, "open", watching_open, raising=False)  # shadows the builtin in fetch.py only
        result = fetch_asset_result("coco_train2014", spec, tmp_path / "dl", tmp_path / "coco", progress=False)
    assert result.source == mirror and result.verified == "matches the config's md5 and size"
    assert written == [1]  # the .part was opened once, for the mirror's answer; never for the other host's
    assert f"is {len(data) + 20:,} bytes, not the {len(data):,} of the config's size" in caplog.text
    assert_coco_extracted(tmp_path / "coco")

    with pytest.raises(FetchError) as caught:
        fetch_asset("coco_val2014", spec_for([other], data, filename="val2014.zip", size=len(data)), tmp_path / "dl",
                    tmp_path / "coco2", config_key="profiles.paper.assets.coco_val2014", progress=False)
    assert other in str(caught.value) and "correct profiles.paper.assets.coco_val2014.size" in str(caught.value)
    assert not (tmp_path / "dl" / "val2014.zip.part").exists()


@pytest.mark.parametrize("size_known", [True, False])
def test_a_body_cut_without_a_length_is_resumed_only_when_the_size_is_known(server, tmp_path, size_known):
    """A server that sends no Content-Length ends its body by closing: a drop then looks like the end of the file."""
    data = make_coco_zip()
    url = server.serve("/zips/train2014.zip", data, "cut_once_no_length")
    spec = spec_for([url], data, **({"size": len(data)} if size_known else {}))
    if size_known:
        fetch_asset("coco_train2014", spec, tmp_path / "dl", tmp_path / "coco", progress=False)
        assert server.ranges["/zips/train2014.zip"] == [None, f"bytes={len(data) // 2}-"]
        assert_coco_extracted(tmp_path / "coco")
    else:  # half the file taken for all of it: caught only by its checksum, and the download is lost
        with pytest.raises(FetchError, match="corrupted download"):
            fetch_asset("coco_train2014", spec, tmp_path / "dl", tmp_path / "coco", progress=False)
        assert server.ranges["/zips/train2014.zip"] == [None]


def test_a_size_is_the_check_an_asset_without_a_checksum_gets(server, tmp_path):
    data = make_coco_zip()
    url = server.serve("/glove.6B.zip", data, "no_length")
    spec = {"urls": [url], "md5": None, "filename": "glove.6B.zip", "size": len(data)}
    result = fetch_asset_result("glove_6B", spec, tmp_path / "dl", tmp_path / "glove", progress=False)
    assert result.verified.startswith("not verified: the config gives no md5 or sha256")
    assert result.verified.endswith("its size matches the config's")

    longer = server.serve("/longer/glove.6B.zip", data + b"x", "no_length")  # no length to reject it early
    with pytest.raises(FetchError, match=rf"expected {len(data):,} bytes \(size\), got {len(data) + 1:,}"):
        fetch_asset("glove_6B", {**spec, "urls": [longer]}, tmp_path / "dl2", tmp_path / "glove2", progress=False)
    assert not (tmp_path / "dl2" / "glove.6B.zip").exists()


def test_a_local_or_present_file_of_another_size_is_refused_without_hashing_it(tmp_path, refused_url, monkeypatch):
    data = make_coco_zip()
    archive = tmp_path / "mine" / "train2014.zip"
    archive.parent.mkdir()
    archive.write_bytes(data[:-1])  # one byte short
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "train2014.zip").write_bytes(data[:-1])

    def no_hashing(*args, **kwargs):
        raise AssertionError("a file of the wrong size was read to hash it")

    monkeypatch.setattr(fetch_module, "_hash_file", no_hashing)
    expected = rf"expected {len(data):,} bytes \(size\), got {len(data) - 1:,}"
    with pytest.raises(FetchError, match=rf"{re.escape(str(archive))} \(from k\.local\) .*{expected}"):
        fetch_asset("coco_train2014", spec_for([], data, local=str(archive), size=len(data)), tmp_path / "dl",
                    tmp_path / "coco", config_key="k", progress=False)
    with pytest.raises(FetchError, match=rf"{expected}\. Delete it .* correct k\.md5 \(and k\.size\)"):
        fetch_asset("coco_train2014", spec_for([refused_url], data, size=len(data)), tmp_path / "dl",
                    tmp_path / "coco", config_key="k", progress=False)


# --------------------------------------------------------------------------------------------------------------------
# Extraction safety and local copies
# --------------------------------------------------------------------------------------------------------------------


def _zip_with(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("train2014/ok.jpg", b"fine")  # a harmless member first: nothing may be written even for it
        for name in names:
            zf.writestr(zipfile.ZipInfo(name), b"evil")
    return buffer.getvalue()


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def _unsafe_archives(tmp_path: Path) -> dict[str, tuple[str, bytes]]:
    absolute = str(tmp_path / "abs_evil.txt")
    ok = {"VOCdevkit/VOC2007/ok.txt": b"fine"}
    return {
        "zip-dotdot": ("a.zip", _zip_with(["../evil.txt"])),
        "zip-absolute": ("a.zip", _zip_with([absolute])),
        "tar-dotdot": ("a.tar", _tar_with({**ok, "VOCdevkit/../../evil.txt": b"evil"})),
        "tar-absolute": ("a.tar", _tar_with({**ok, absolute: b"evil"})),
        "tar-symlink-out": ("a.tar", _tar_with(ok, [_link("VOCdevkit/evil", "../../evil_dir")])),
        "tar-symlink-absolute": ("a.tar", _tar_with(ok, [_link("VOCdevkit/evil", str(tmp_path))])),
        "tar-hardlink-out": ("a.tar", _tar_with(ok, [_link("VOCdevkit/evil", "../evil.txt", hard=True)])),
    }


def test_tar_member_with_an_absolute_name_lands_inside_the_target(tmp_path):
    """tarfile's data filter (PEP 706) strips the leading slash: the member is written under the target, never at
    its absolute path."""
    filename, data = _unsafe_archives(tmp_path)["tar-absolute"]
    archive = tmp_path / "in" / filename
    archive.parent.mkdir()
    archive.write_bytes(data)
    target = tmp_path / "out" / "target"
    fetch_asset("odd", {"urls": [], "md5": None, "filename": filename, "local": str(archive)}, tmp_path / "dl", target,
                progress=False)
    assert not (tmp_path / "abs_evil.txt").exists()
    assert (target / str(tmp_path / "abs_evil.txt").lstrip("/")).read_bytes() == b"evil"


@pytest.mark.parametrize(
    "case",
    ["zip-dotdot", "zip-absolute", "tar-dotdot", "tar-symlink-out", "tar-symlink-absolute", "tar-hardlink-out"],
)
def test_archive_with_members_escaping_the_target_is_refused(tmp_path, case):
    filename, data = _unsafe_archives(tmp_path)[case]
    archive = tmp_path / "in" / filename
    archive.parent.mkdir()
    archive.write_bytes(data)
    target = tmp_path / "out" / "data" / "target"

    with pytest.raises(FetchError, match="refusing to extract") as caught:
        fetch_asset("bad", {"urls": [], "md5": None, "filename": filename, "local": str(archive)},
                    tmp_path / "out" / "dl", target, progress=False)

    assert "evil" in str(caught.value) or str(tmp_path) in str(caught.value)  # the member at fault is named
    assert files_under(tmp_path) == {f"in/{filename}"}  # nothing written anywhere, not even the harmless member
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_local_archive_is_verified_and_used_in_place(tmp_path, refused_url):
    data = make_coco_zip()
    archive = tmp_path / "my_datasets" / "train2014.zip"
    archive.parent.mkdir()
    archive.write_bytes(data)
    downloads, target = tmp_path / "dl", tmp_path / "coco"

    result = fetch_asset_result("coco_train2014", spec_for([refused_url], data, local=str(archive)), downloads,
                                target, progress=False)

    assert result.archive == archive and result.source == str(archive) and result.md5 == md5_of(data)
    assert not downloads.exists()  # not copied
    assert_coco_extracted(target)

    kept = fetch_asset("w", spec_for([], data, local=str(archive), extract=False), downloads, target, progress=False)
    assert kept == archive

    wrong = spec_for([], b"other bytes", local=str(archive))
    with pytest.raises(FetchError) as caught:
        fetch_asset("coco_train2014", wrong, downloads, tmp_path / "coco2", config_key="profiles.paper.assets.x",
                    progress=False)
    assert str(archive) in str(caught.value) and "profiles.paper.assets.x.local" in str(caught.value)
    assert md5_of(data) in str(caught.value) and md5_of(b"other bytes") in str(caught.value)


def test_local_extracted_folder_is_used_as_it_is(tmp_path, caplog):
    folder = tmp_path / "coco_on_nfs"
    (folder / "train2014").mkdir(parents=True)
    spec = spec_for(["http://127.0.0.1:9/never.zip"], None, local=str(folder))
    with caplog.at_level(logging.WARNING, logger="drmoe_repro.data.fetch"):
        result = fetch_asset_result("coco_train2014", spec, tmp_path / "dl", tmp_path / "coco", progress=False)
    assert result.path == folder and result.md5 is None
    assert "no checksum is possible" in caplog.text
    assert not (tmp_path / "dl").exists() and not (tmp_path / "coco").exists()

    with pytest.raises(FetchError, match="does not exist"):
        fetch_asset("coco_train2014", spec_for([], None, local=str(tmp_path / "nope")), tmp_path / "dl",
                    tmp_path / "coco", progress=False)


def test_two_voc_tars_share_one_folder(server, tmp_path):
    # The config extracts both VOC tars into voc/: the second must merge into the first, not replace it.
    trainval, test = _tar_with(VOC_TRAINVAL), _tar_with(VOC_TEST)
    specs = {
        "voc2007_trainval": spec_for([server.serve("/tv.tar", trainval)], trainval, "VOCtrainval_06-Nov-2007.tar"),
        "voc2007_test": spec_for([server.serve("/t.tar", test)], test, "VOCtest_06-Nov-2007.tar"),
    }
    for name, spec in specs.items():
        fetch_asset(name, spec, tmp_path / "dl", tmp_path / "voc", progress=False)
    extracted = files_under(tmp_path / "voc")
    assert set(VOC_TRAINVAL) | set(VOC_TEST) <= extracted
    assert {".voc2007_trainval.extracted.json", ".voc2007_test.extracted.json"} <= extracted


def test_extract_archive_handles_tgz(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        info = tarfile.TarInfo("glove/words.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    (tmp_path / "g.tgz").write_bytes(buffer.getvalue())
    assert extract_archive(tmp_path / "g.tgz", tmp_path / "out") == 1
    assert (tmp_path / "out" / "glove" / "words.txt").read_bytes() == b"hello"


def test_a_disk_too_small_stops_the_download_and_the_extraction_before_they_write(server, tmp_path, monkeypatch):
    """A full disk half-way through COCO's 13.5 GB costs the time spent and leaves the disk full: the space a
    download (from Content-Length) and an extraction (the members' unpacked sizes) need is checked first."""
    data = make_coco_zip()
    unpacked = sum(len(member) for member in COCO_MEMBERS.values())
    url = server.serve("/zips/train2014.zip", data)
    downloads, target = tmp_path / "downloads", tmp_path / "coco"
    free = {downloads: len(data) - 1, target: unpacked - 1}  # as if on two disks, each one byte short
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=free[Path(path)]))

    with pytest.raises(FetchError, match=rf"downloading train2014.zip needs {len(data) / 1000:.0f}kB, but "
                                         rf"{downloads} has {(len(data) - 1) / 1000:.0f}kB free"):
        fetch_asset("coco_train2014", spec_for([url], data), downloads, target, progress=False)
    assert files_under(downloads) == set()  # not even a .part

    free[downloads] = len(data)
    with pytest.raises(FetchError, match=rf"extracting train2014.zip needs {unpacked / 1000:.0f}kB, but {target} "):
        fetch_asset("coco_train2014", spec_for([url], data), downloads, target, progress=False)
    assert (downloads / "train2014.zip").read_bytes() == data  # the verified download is kept for the next try
    assert files_under(target) == set()

    free[target] = unpacked
    fetch_asset("coco_train2014", spec_for([url], data), downloads, target, progress=False)
    assert_coco_extracted(target)


def test_the_partial_extraction_a_crash_left_is_removed_before_the_space_is_counted(tmp_path, monkeypatch):
    """A crash half-way through unpacking train2014.zip leaves gigabytes in the staging folder, which the next call
    deletes anyway: the space check must not count them and send the user off to free space."""
    archive = tmp_path / "train2014.zip"
    archive.write_bytes(make_coco_zip())
    unpacked = sum(len(member) for member in COCO_MEMBERS.values())
    target = tmp_path / "coco"
    stale = target / ".train2014.zip.partial-crashed"
    stale.mkdir(parents=True)
    (stale / "half.jpg").write_bytes(b"x" * unpacked)
    real_usage = shutil.disk_usage
    # As if the stale folder filled the disk: while it exists, one byte too few are free.
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: real_usage(path)._replace(free=unpacked - (1 if stale.exists() else 0)))
    assert extract_archive(archive, target, progress=False) == len(COCO_MEMBERS) + 1  # and the train2014/ entry
    assert_coco_extracted(target)
    assert not stale.exists()


@pytest.mark.parametrize("interval", [60.0, 0.0])
def test_without_bars_each_stage_reports_in_plain_lines_once_it_runs_long(server, tmp_path, monkeypatch, capsys,
                                                                          interval):
    """`progress=False` (every Snakemake job: --no-progress): a fetch quicker than the line interval prints nothing;
    one slower than it (interval 0 here) reports its download, its checksum pass and its extraction in lines."""
    monkeypatch.setattr(progress, "LINE_EVERY_S", interval)
    data = make_coco_zip()
    url = server.serve("/zips/train2014.zip", data)
    downloads = tmp_path / "downloads"
    fetch_asset("coco_train2014", spec_for([url], data), downloads, tmp_path / "coco", progress=False)
    local = spec_for([], data, local=str(downloads / "train2014.zip"))  # a copy the user has: checksummed first
    fetch_asset("coco_train2014", local, tmp_path / "unused", tmp_path / "coco_local", progress=False)
    err = capsys.readouterr().err
    lines = err.splitlines()
    if interval:
        assert err == ""
        return
    assert "\r" not in err
    finished = r"(\S+)/\1B \["  # as many bytes done as the total, e.g. "121k/121kB ["
    assert any(re.match(r"train2014\.zip: " + finished, line) for line in lines), lines
    assert any(re.match(r"verify train2014\.zip: " + finished, line) for line in lines), lines
    assert sum(line.startswith("extract train2014.zip: 4/4 files [") for line in lines) == 2, lines


# --------------------------------------------------------------------------------------------------------------------
# The CLI subcommand
# --------------------------------------------------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="drmoe-repro fetch")
    fetch_command.configure_parser(parser)
    return fetch_command.run(parser.parse_args(argv))


def _config_with_asset(tmp_path: Path, name: str, spec: dict) -> tuple[Path, Path]:
    """The shipped config with the paper profile's data_dir in tmp_path and one asset replaced: (config, data_dir)."""
    import yaml

    config = yaml.safe_load(Path("workflow/config.yaml").read_text())
    data_dir = tmp_path / "results" / "paper" / "data"
    config["profiles"]["paper"]["data_dir"] = str(data_dir)
    config["profiles"]["paper"]["assets"][name] = spec
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, data_dir


def test_cli_fetches_and_writes_the_marker_that_says_where_the_asset_lives(server, tmp_path, capsys):
    data = _tar_with(VOC_TEST)
    url = server.serve("/VOCtest_06-Nov-2007.tar", data)
    config_path, data_dir = _config_with_asset(
        tmp_path, "voc2007_test", {**spec_for([url], data, "VOCtest_06-Nov-2007.tar"), "extract_to": "voc"})

    assert _cli(["--asset", "voc2007_test", "--config", str(config_path), "--profile", "paper", "--no-progress"]) == 0
    done = json.loads((data_dir / "voc2007_test.fetched.json").read_text())
    assert done["source"] == url and done["md5"] == md5_of(data) and done["profile"] == "paper"
    assert done["path"] == str(data_dir / "voc") and done["kind"] == "downloaded archive, extracted"
    assert done["verified"] == "matches the config's md5"
    assert (data_dir / "voc" / "VOCdevkit/VOC2007/JPEGImages/000001.jpg").exists()
    assert (data_dir / "downloads" / "VOCtest_06-Nov-2007.tar").exists()

    with pytest.raises(ValueError, match="available: .*voc2007_test"):
        _cli(["--asset", "voc2007_tset", "--config", str(config_path), "--profile", "paper"])
    with pytest.raises(ValueError, match=r"no asset 'voc2007_test' in profiles\.demo\.assets \(available: demo_coco, "
                                         r"demo_voc\)"):
        _cli(["--asset", "voc2007_test", "--config", str(config_path)])  # default profile: demo


def test_cli_holds_the_download_to_the_configs_size(server, tmp_path, capsys):
    data = _tar_with(VOC_TEST)
    url = server.serve("/VOCtest_06-Nov-2007.tar", data)
    spec = {**spec_for([url], data, "VOCtest_06-Nov-2007.tar"), "size": len(data) + 512, "extract_to": "voc"}
    config_path, data_dir = _config_with_asset(tmp_path, "voc2007_test", spec)
    assert _cli(["--asset", "voc2007_test", "--config", str(config_path), "--profile", "paper", "--no-progress"]) != 0
    error = " ".join(capsys.readouterr().err.split())
    assert f"is {len(data):,} bytes, not the {len(data) + 512:,} of the config's size" in error
    assert "correct profiles.paper.assets.voc2007_test.size and profiles.paper.assets.voc2007_test.md5" in error
    assert not (data_dir / "downloads" / "VOCtest_06-Nov-2007.tar.part").exists()


def test_fetching_a_demo_asset_generates_the_data_set_and_records_where(tmp_path, monkeypatch):
    """The demo data sets are fetched like any asset (generated, not downloaded); prepare reads the marker."""
    import yaml

    from drmoe_repro.config import load_config
    from drmoe_repro.data.prepare import prepare_dataset

    config = yaml.safe_load(Path("workflow/config.yaml").read_text())
    demo = config["profiles"]["demo"]
    demo["data_dir"] = str(tmp_path / "data")
    demo["datasets"]["voc"]["demo_images"] = {"train": 12, "test": 8}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert _cli(["--asset", "demo_voc", "--config", str(tmp_path / "config.yaml")]) == 0
    marker = json.loads((tmp_path / "data" / "demo_voc.fetched.json").read_text())
    assert marker["kind"] == "generated demo data set" and marker["path"] == str(tmp_path / "data")
    prof = load_config(tmp_path / "config.yaml")["profiles"]["demo"]
    counts = prepare_dataset(prof, "voc", "demo", tmp_path / "train.npz", tmp_path / "test.npz")
    assert counts == {"train": 12, "test": 8, "labels": 20}


def test_cli_records_a_local_folder_as_used_in_place_and_unverified(tmp_path):
    folder = tmp_path / "my_voc"
    (folder / "VOCdevkit").mkdir(parents=True)
    config_path, data_dir = _config_with_asset(
        tmp_path, "voc2007_test", {"urls": [], "md5": None, "filename": "VOCtest_06-Nov-2007.tar", "local": str(folder)})
    assert _cli(["--asset", "voc2007_test", "--config", str(config_path), "--profile", "paper", "--no-progress"]) == 0
    done = json.loads((data_dir / "voc2007_test.fetched.json").read_text())
    assert done["path"] == str(folder) and done["kind"] == "local folder, used as it is"
    assert done["verified"].startswith("not verified")


def test_cli_validates_the_whole_config_first_a_misspelt_checksum_key_fetches_nothing(server, tmp_path):
    """An asset whose `md5:` is spelt `MD5:` once downloaded, extracted and marked it with no check at all."""
    from drmoe_repro.config import ConfigError

    data = _tar_with(VOC_TEST)
    url = server.serve("/VOCtest_06-Nov-2007.tar", data)
    spec = {"urls": [url], "MD5": md5_of(data), "md5": None, "filename": "VOCtest_06-Nov-2007.tar"}
    config_path, data_dir = _config_with_asset(tmp_path, "voc2007_test", spec)
    with pytest.raises(ConfigError, match=r"profiles\.paper\.assets\.voc2007_test: unknown key\(s\) \['MD5'\]"):
        _cli(["--asset", "voc2007_test", "--config", str(config_path), "--profile", "paper", "--no-progress"])
    assert server.hits["/VOCtest_06-Nov-2007.tar"] == 0 and not data_dir.exists()


def test_cli_help_explains_itself():
    parser = argparse.ArgumentParser(prog="drmoe-repro fetch")
    fetch_command.configure_parser(parser)
    text = parser.format_help()
    for option in ("--asset", "--config", "--profile", "--timeout", "--no-progress", "local"):
        assert option in text
    assert isinstance(fetch_command.HELP, str) and "\n" not in fetch_command.HELP


# --------------------------------------------------------------------------------------------------------------------
# The demo data set, packed like the real archives, through the whole fetch path
# --------------------------------------------------------------------------------------------------------------------


def _archive_tree(root: Path, prefix: str, fmt: str) -> bytes:
    """Every file under `root`, stored as `<prefix>/<relative path>` in a tar or zip (the real archives' layout)."""
    buffer = io.BytesIO()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    if fmt == "tar":
        with tarfile.open(fileobj=buffer, mode="w") as tf:
            for path in files:
                tf.add(path, arcname=f"{prefix}/{path.relative_to(root).as_posix()}")
    else:
        with zipfile.ZipFile(buffer, "w") as zf:
            for path in files:
                zf.write(path, arcname=f"{prefix}/{path.relative_to(root).as_posix()}")
    return buffer.getvalue()


def test_demo_archives_fetched_through_the_server_give_the_labels_read_directly(
    server, tmp_path, demo_voc_root, demo_coco_root
):
    from drmoe_repro.data.coco import load_coco
    from drmoe_repro.data.voc import load_voc

    # VOCtrainval_06-Nov-2007.tar holds VOCdevkit/VOC2007/...; COCO's zips hold train2014/, val2014/, annotations/.
    assets = {
        "voc2007": ("voc", "VOC.tar", _archive_tree(demo_voc_root, "VOCdevkit/VOC2007", "tar")),
        "coco_train2014": ("coco", "train2014.zip", _archive_tree(demo_coco_root / "train2014", "train2014", "zip")),
        "coco_val2014": ("coco", "val2014.zip", _archive_tree(demo_coco_root / "val2014", "val2014", "zip")),
        "coco_annotations2014": ("coco", "annotations.zip",
                                 _archive_tree(demo_coco_root / "annotations", "annotations", "zip")),
    }
    for name, (folder, filename, data) in assets.items():
        spec = spec_for([server.serve(f"/{filename}", data)], data, filename)
        fetch_asset(name, spec, tmp_path / "downloads", tmp_path / folder, progress=False)

    fetched_voc = tmp_path / "voc" / "VOCdevkit" / "VOC2007"
    for image_set in ("trainval", "test"):
        direct, fetched = load_voc(demo_voc_root, image_set), load_voc(fetched_voc, image_set)
        assert fetched.image_ids == direct.image_ids and fetched.label_names == direct.label_names
        assert (fetched.targets == direct.targets).all() and (direct.targets == -1).any()
    for split in ("train2014", "val2014"):
        direct, fetched = load_coco(demo_coco_root, split), load_coco(tmp_path / "coco", split)
        assert fetched.image_ids == direct.image_ids and fetched.label_names == direct.label_names
        assert (fetched.targets == direct.targets).all()
