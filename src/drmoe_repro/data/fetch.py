"""Download, verify and unpack the suite's external assets (COCO 2014, VOC 2007, GloVe, backbone weights).

An asset is one archive, described by a dict from the config (``profiles.<profile>.assets.<name>``)::

    urls: [main host, mirror, ...]   # tried in order
    md5: <hex> | null                # published checksum; null when none is published
    sha256: <hex> | null             # optional; a prefix of >= 8 hex digits is accepted (torchvision publishes that)
    filename: train2014.zip          # name of the archive in the download folder
    size: 13510573713 | null         # its length in bytes as the hosts serve it
    local: null | /path              # an archive or an already-extracted folder the user already has
    extract: true                    # unpack into the target folder (false: keep the file, e.g. weights)

What `fetch_asset` guarantees, and why:

- Downloads go to ``<filename>.part`` and resume from it with an HTTP Range request (COCO's train2014.zip is 13 GB;
  a dropped connection should not start it over). A server that ignores Range (200 instead of 206) is handled by
  starting again from byte 0.
- A host whose file has another length than `size` is not downloaded from (its Content-Length says so before a byte
  is written: a wrong URL, or a file changed at the host), and a download that ends at another length is discarded
  like a corrupt one. A local copy, or a file put in the download folder, of another size is refused before it is
  read to be hashed. Without a checksum (GloVe publishes none) the size is the only check there is.
- Nothing is renamed to ``<filename>`` before its MD5 (and SHA-256, when given) matched, so a file under the final
  name is always a verified one. Both checksums are recorded in ``<filename>.checksums.json`` next to it, together
  with the file's size and mtime, so that later calls trust it without reading 13 GB again.
- Every socket operation has a time-out, so a server that accepts the connection and then says nothing ends in an
  error naming the URL instead of a job that hangs for ever.
- Archives are checked member by member before anything is written (no absolute paths, no ``..``, no link that
  points outside), extracted into a temporary folder inside the target and only then moved into place; a marker
  file ``.<name>.extracted.json`` in the target, written last, records which archive (and which checksums) was
  extracted, so a second call does no work and a crash is simply redone. Several assets may share one target
  folder (COCO's three zips all unpack into ``coco/``; VOC's two tars merge into one ``VOCdevkit/``).
- A download (by its Content-Length) and an extraction (by its members' unpacked sizes) first check that their
  disk has the space, rather than fill it half-way through.
- Long work shows its progress: a bar, or with ``progress=False`` (the Snakemake jobs) a line a minute.
- All failures raise `FetchError`, whose message names the asset, the URL or file and the config key at fault.

Only the standard library is used for HTTP (urllib), so there is no dependency to install before data can be had.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import re
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from drmoe_repro import __version__
from drmoe_repro.io import load_json, save_json
from drmoe_repro.progress import format_bytes, progress_bar

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # bytes per read and per hash update
_MAX_ATTEMPTS_PER_URL = 5  # resumes of one URL, as long as each attempt got some bytes further
_USER_AGENT = f"drmoe-repro/{__version__} (python urllib)"
_DEFAULT_CONFIG_PATH = "workflow/config.yaml"


class FetchError(RuntimeError):
    """An asset could not be had: its message names the asset, the URL or file, and what to do."""


# --------------------------------------------------------------------------------------------------------------------
# The asset description
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetSpec:
    """The validated config entry of one asset (see the module docstring for the meaning of each field)."""

    name: str
    urls: tuple[str, ...]
    filename: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    local: Path | None = None
    extract: bool = True

    @classmethod
    def from_config(cls, name: str, spec: Mapping[str, Any], key: str | None = None) -> "AssetSpec":
        """The asset entry of a config already validated against the schema (types, hex patterns, unknown keys);
        only what the schema cannot say is checked here."""
        key = key or f"assets.{name}"
        urls = tuple(spec.get("urls") or [])
        filename = spec.get("filename") or (PurePosixPath(urllib.request.urlparse(urls[0]).path).name if urls else "")
        if not filename or "/" in filename or filename in (".", ".."):
            raise FetchError(f"{key}.filename must be a plain file name, got {filename!r}")
        local = spec.get("local")
        if not urls and local is None:
            raise FetchError(f"{key} has neither urls nor local: nothing to fetch it from")
        md5, sha256 = spec.get("md5"), spec.get("sha256")
        return cls(
            name=name,
            urls=urls,
            filename=filename,
            md5=md5.lower() if md5 else None,
            sha256=sha256.lower() if sha256 else None,
            size=spec.get("size"),
            local=Path(local).expanduser() if local is not None else None,
            extract=spec.get("extract", True),
        )


@dataclass(frozen=True)
class FetchResult:
    """What `fetch_asset_result` did: the path to use, where the bytes came from, and their checksums."""

    name: str
    path: Path  # the extracted folder, or the file itself when extract is false
    source: str  # the URL it was downloaded from, or the local path
    archive: Path | None  # the verified archive (None for an already-extracted local folder)
    md5: str | None  # None only for an already-extracted local folder (nothing to checksum)
    sha256: str | None
    extracted: bool  # path is a folder this module unpacked (or found unpacked by an earlier call)
    verified: str = ""  # what the bytes were checked against (see `_verified`)

    @property
    def kind(self) -> str:
        """Where the asset lives, in words: what later steps read from the fetch marker."""
        local = not self.source.startswith(("http://", "https://", "ftp://"))
        if self.archive is None:
            return "local folder, used as it is"
        if self.extracted:
            return "local archive, extracted" if local else "downloaded archive, extracted"
        return "local file" if local else "downloaded file"

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary (the CLI's done marker): `path` is where every later step finds the asset."""
        return {
            "asset": self.name,
            "path": str(self.path),
            "kind": self.kind,
            "verified": self.verified,
            "source": self.source,
            "archive": str(self.archive) if self.archive is not None else None,
            "md5": self.md5,
            "sha256": self.sha256,
            "extracted": self.extracted,
        }


# --------------------------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------------------------


def fetch_asset(
    name: str,
    spec: Mapping[str, Any],
    download_dir: str | os.PathLike,
    extract_dir: str | os.PathLike,
    *,
    timeout: float = 60,
    progress: bool = True,
    config_key: str | None = None,
    config_path: str = _DEFAULT_CONFIG_PATH,
) -> Path:
    """Make asset `name` available and return the path to use: `extract_dir`, or the verified file if not extracted.

    `config_key` is the dotted key of the asset in the config (default ``profiles.paper.assets.<name>``) and
    `config_path` the config file; both only appear in error messages, to say what to edit.
    """
    return fetch_asset_result(
        name,
        spec,
        download_dir,
        extract_dir,
        timeout=timeout,
        progress=progress,
        config_key=config_key,
        config_path=config_path,
    ).path


def fetch_asset_result(
    name: str,
    spec: Mapping[str, Any],
    download_dir: str | os.PathLike,
    extract_dir: str | os.PathLike,
    *,
    timeout: float = 60,
    progress: bool = True,
    config_key: str | None = None,
    config_path: str = _DEFAULT_CONFIG_PATH,
) -> FetchResult:
    """`fetch_asset`, returning the full `FetchResult` (source and checksums) for the caller's records."""
    key = config_key or f"profiles.paper.assets.{name}"
    asset = AssetSpec.from_config(name, spec, key)
    download_dir, extract_dir = Path(download_dir), Path(extract_dir)

    if asset.local is not None:
        return _use_local(asset, extract_dir, key, progress)

    if asset.extract:
        done = _done_extraction(asset, extract_dir)
        if done is not None:
            return done

    archive = download_dir / asset.filename
    if archive.exists():
        md5, sha256, source = _verify_present_archive(asset, archive, key, progress)
    else:
        md5, sha256, source = _download_asset(asset, archive, timeout, progress, key, config_path)

    if not asset.extract:
        return FetchResult(name, archive, source, archive, md5, sha256, extracted=False, verified=_verified(asset))
    _extract_and_mark(asset, archive, extract_dir, source, md5, sha256, progress)
    return FetchResult(name, extract_dir, source, archive, md5, sha256, extracted=True, verified=_verified(asset))


# --------------------------------------------------------------------------------------------------------------------
# Files the user already has
# --------------------------------------------------------------------------------------------------------------------


def _use_local(asset: AssetSpec, extract_dir: Path, key: str, progress: bool = True) -> FetchResult:
    """Use `local` in place: an archive is verified (and extracted if asked), a folder is taken as it is."""
    path = asset.local
    assert path is not None
    if not path.exists():
        raise FetchError(f"asset '{asset.name}': {key}.local is {path}, which does not exist")
    if path.is_dir():
        if not asset.extract:
            raise FetchError(
                f"asset '{asset.name}': {key}.local is the folder {path}, but the asset is a file (extract: false); "
                f"point it at {asset.filename}"
            )
        log.warning(
            "asset '%s': using the already-extracted folder %s as it is; no checksum is possible for a folder, "
            "so its contents are not verified",
            asset.name,
            path,
        )
        return FetchResult(asset.name, path, str(path), None, None, None, extracted=False,
                           verified="not verified: a folder has no checksum")

    if asset.extract:
        done = _done_extraction(asset, extract_dir, source=str(path))
        if done is not None:
            return done

    def not_expected(problem: str) -> FetchError:
        return FetchError(f"asset '{asset.name}': {path} (from {key}.local) is not the expected file: {problem}. "
                          f"Point {key}.local at an intact copy of {asset.filename}")

    problem = _size_problem(asset, path.stat().st_size)  # before reading 13 GB to hash them
    if problem:
        raise not_expected(problem)
    log.info("asset '%s': verifying %s", asset.name, path)
    md5, sha256 = _hash_file(path, progress=progress)
    problem = _checksum_problem(asset, md5, sha256)
    if problem:
        raise not_expected(problem)
    if not asset.extract:
        return FetchResult(asset.name, path, str(path), path, md5, sha256, extracted=False, verified=_verified(asset))
    _extract_and_mark(asset, path, extract_dir, str(path), md5, sha256, progress)
    return FetchResult(asset.name, extract_dir, str(path), path, md5, sha256, extracted=True,
                       verified=_verified(asset))


# --------------------------------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------------------------------


class _Digests:
    """MD5 and SHA-256 of the bytes written so far, so a download is hashed while it streams, not read again."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # usedforsecurity=False: MD5 is an integrity check here, and FIPS-mode Pythons refuse it otherwise.
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.md5.update(chunk)
        self.sha256.update(chunk)
        self.size += len(chunk)

    def hexdigests(self) -> tuple[str, str]:
        return self.md5.hexdigest(), self.sha256.hexdigest()


def _hash_file(path: Path, digests: _Digests | None = None, progress: bool = True) -> tuple[str, str]:
    digests = digests or _Digests()
    with open(path, "rb") as handle, progress_bar(total=path.stat().st_size, desc=f"verify {path.name}", unit="B",
                                                  unit_scale=True, bars=progress) as bar:
        while chunk := handle.read(_CHUNK):
            digests.update(chunk)
            bar.update(len(chunk))
    return digests.hexdigests()


def _verified(asset: AssetSpec) -> str:
    """What a file of `asset` that passed `_size_problem` and `_checksum_problem` was checked against, in words."""
    checked = [name for name, value in (("md5", asset.md5), ("sha256", asset.sha256)) if value is not None]
    if not checked:
        size = "; its size matches the config's" if asset.size is not None else ""
        return f"not verified: the config gives no md5 or sha256 (the checksums seen are recorded){size}"
    return "matches the config's " + " and ".join(checked + (["size"] if asset.size is not None else []))


def _size_problem(asset: AssetSpec, size: int) -> str | None:
    """None when `size` (bytes) is the config's `size` or the config gives none, else a sentence naming both."""
    if asset.size is None or size == asset.size:
        return None
    return f"expected {asset.size:,} bytes (size), got {size:,}"


def _checksum_problem(asset: AssetSpec, md5: str, sha256: str) -> str | None:
    """None when the checksums match what the config expects, else a sentence naming expected and got."""
    problems = []
    if asset.md5 is not None and md5 != asset.md5:
        problems.append(f"expected md5 {asset.md5}, got md5 {md5}")
    if asset.sha256 is not None and not sha256.startswith(asset.sha256):
        problems.append(f"expected sha256 {asset.sha256}, got sha256 {sha256}")
    return "; ".join(problems) or None


def _sidecar_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".checksums.json")


def _write_sidecar(archive: Path, md5: str, sha256: str, source: str) -> None:
    stat = archive.stat()
    save_json(
        _sidecar_path(archive),
        {
            "filename": archive.name,
            "md5": md5,
            "sha256": sha256,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,  # with size: the sidecar is trusted only for the very file it describes
            "source": source,
        },
    )


def _verify_present_archive(asset: AssetSpec, archive: Path, key: str, progress: bool = True) -> tuple[str, str, str]:
    """Check a file already under the final name: trust a fresh sidecar, else hash it (it may have been put there)."""
    sidecar = _sidecar_path(archive)
    stat = archive.stat()
    try:
        recorded = load_json(sidecar)
        fresh = recorded.get("size") == stat.st_size and recorded.get("mtime_ns") == stat.st_mtime_ns
    except (OSError, ValueError, AttributeError):
        recorded, fresh = {}, False
    problem = _size_problem(asset, stat.st_size)  # before a record is trusted, or the file read to hash it
    if (problem is None and fresh
            and _checksum_problem(asset, recorded.get("md5", ""), recorded.get("sha256", "")) is None):
        return recorded["md5"], recorded["sha256"], recorded.get("source", str(archive))

    if problem is None:
        log.info("asset '%s': verifying %s", asset.name, archive)
        md5, sha256 = _hash_file(archive, progress=progress)
        problem = _checksum_problem(asset, md5, sha256)
    if problem:
        raise FetchError(
            f"asset '{asset.name}': {archive} is not the expected file: {problem}. Delete it to download it again, "
            f"or correct {key}.md5 (and {key}.size) if the published file changed"
        )
    source = recorded.get("source") if isinstance(recorded, dict) and recorded.get("source") else str(archive)
    _write_sidecar(archive, md5, sha256, source)
    return md5, sha256, source


# --------------------------------------------------------------------------------------------------------------------
# HTTP download with resume, mirrors and time-outs
# --------------------------------------------------------------------------------------------------------------------


class _UrlFailed(Exception):
    """One URL gave up. `kind` sorts failures: 'unreachable' (refused, DNS, no route) means we are probably offline."""

    def __init__(self, url: str, kind: str, detail: str) -> None:
        super().__init__(f"{url}: {detail}")
        self.url, self.kind, self.detail = url, kind, detail


class _Interrupted(Exception):
    """The body stopped early; the bytes so far are kept in the .part file and the next attempt resumes."""

    def __init__(self, detail: str, progressed: bool, kind: str = "incomplete") -> None:
        super().__init__(detail)
        self.detail, self.progressed, self.kind = detail, progressed, kind


def _download_asset(
    asset: AssetSpec, archive: Path, timeout: float, progress: bool, key: str, config_path: str
) -> tuple[str, str, str]:
    """Try each URL in turn; return (md5, sha256, url) of the verified file now at `archive`."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    digests = _Digests()
    failures: list[_UrlFailed] = []
    for index, url in enumerate(asset.urls):
        if index > 0 and asset.md5 is None and asset.sha256 is None and part.exists():
            # Without a checksum a mix of two hosts' bytes could never be detected: start this mirror afresh.
            part.unlink()
        try:
            _download_url(url, part, digests, timeout=timeout, progress=progress, label=asset.filename,
                          expected_size=asset.size)
        except _UrlFailed as failure:
            log.warning("asset '%s': %s", asset.name, failure)
            failures.append(failure)
            continue
        md5, sha256 = digests.hexdigests()
        problem = _size_problem(asset, digests.size) or _checksum_problem(asset, md5, sha256)
        if problem:
            # A corrupt .part must not be resumed by the next attempt: delete it.
            part.unlink()
            digests.reset()
            failure = _UrlFailed(url, "checksum", f"corrupted download of {asset.filename}: {problem}; deleted it")
            log.warning("asset '%s': %s", asset.name, failure)
            failures.append(failure)
            continue
        if asset.md5 is None and asset.sha256 is None:
            log.warning(
                "asset '%s': no checksum is published for %s; recorded md5 %s and sha256 %s",
                asset.name,
                asset.filename,
                md5,
                sha256,
            )
        os.replace(part, archive)  # only now does the file carry its final name
        _write_sidecar(archive, md5, sha256, url)
        return md5, sha256, url
    raise FetchError(_all_failed_message(asset, failures, archive, key, config_path))


def _all_failed_message(
    asset: AssetSpec, failures: list[_UrlFailed], archive: Path, key: str, config_path: str
) -> str:
    if all(f.kind == "unreachable" for f in failures):
        head = f"cannot reach any host for asset '{asset.name}' (offline, or behind a firewall?)"
    else:
        head = f"could not fetch asset '{asset.name}' ({asset.filename}) from any of its {len(failures)} URL(s)"
    lines = "\n".join(f"  - {failure}" for failure in failures)
    hint = (
        f"Download {asset.urls[0]} by other means and either put it at {archive} "
        f"or set {key}.local: /path/to/{asset.filename} in {config_path}"
    )
    if any(f.kind == "size" for f in failures):
        hint += f"; if the host's file changed on purpose, correct {key}.size and {key}.md5 there"
    return f"{head}:\n{lines}\n{hint}"


def _download_url(url: str, part: Path, digests: _Digests, *, timeout: float, progress: bool, label: str,
                  expected_size: int | None = None) -> None:
    """Fill `part` with the whole body of `url`, resuming after interruptions while they make progress."""
    for attempt in range(1, _MAX_ATTEMPTS_PER_URL + 1):
        try:
            _request_once(url, part, digests, timeout=timeout, progress=progress, label=label,
                          expected_size=expected_size)
            return
        except _Interrupted as stop:
            if not stop.progressed or attempt == _MAX_ATTEMPTS_PER_URL:
                raise _UrlFailed(url, stop.kind, stop.detail) from None
            log.info("%s: %s; resuming (attempt %d)", url, stop.detail, attempt + 1)


def _sync_digests(part: Path, digests: _Digests, progress: bool) -> int:
    """Make `digests` cover exactly the bytes in `part` (re-hashing it if left by an earlier run); return its size."""
    size = part.stat().st_size if part.exists() else 0
    if size != digests.size:
        digests.reset()
        if size:
            _hash_file(part, digests, progress=progress)
    return size


def _request_once(url: str, part: Path, digests: _Digests, *, timeout: float, progress: bool, label: str,
                  expected_size: int | None = None) -> None:
    """One HTTP request appending to `part`. Returns when the body is complete; raises _Interrupted or _UrlFailed.

    `expected_size` (the config's `size`, or None): a server that announces another length fails this URL before a
    byte is written, and one that announces none is held to it (free space, the progress bar, a short body)."""
    offset = _sync_digests(part, digests, progress)
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}  # identity: Range counts raw bytes
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        # timeout applies to the connect and to every later read of the socket
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        with err:
            if err.code == 416 and offset:
                # Range not satisfiable: either the .part is already whole, or it is longer than the file.
                if _total_from_content_range(err.headers.get("Content-Range")) == offset:
                    return
                _restart(part, digests)
                raise _Interrupted("the server refused to resume; starting again", progressed=True) from None
            raise _UrlFailed(url, "http", f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise _UrlFailed(url, *_classify_connect_error(err.reason, timeout)) from None
    except (TimeoutError, socket.timeout):
        # Connected and sent the request, but no status line came back in time.
        raise _Interrupted(_stalled(timeout), progressed=False, kind="timeout") from None
    except (OSError, http.client.HTTPException) as err:
        raise _Interrupted(f"connection failed: {err!r}", progressed=False, kind="error") from None

    with response:
        total: int | None
        if response.status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                _restart(part, digests)
                raise _Interrupted(f"the server resumed at byte {start}, not {offset}; starting again", True)
        else:
            if offset:
                log.info("%s: the server ignored the Range request; starting again from byte 0", url)
                _restart(part, digests)
                offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and expected_size is not None and total != expected_size:
            raise _UrlFailed(url, "size", f"the server's {label} is {total:,} bytes, not the {expected_size:,} "
                                          "of the config's size: another file (or one changed at the host); "
                                          "not downloaded")
        total = expected_size if total is None else total
        if total is not None:
            _require_free_space(part.parent, total - offset, f"downloading {label}")

        written = 0
        with open(part, "ab" if offset else "wb") as out, progress_bar(
            total=total, initial=offset, unit="B", unit_scale=True, desc=label, bars=progress
        ) as bar:
            while True:
                try:
                    # read1, not read: read(n) waits for all n bytes, and a stall would lose those already received
                    chunk = response.read1(_CHUNK)
                except (TimeoutError, socket.timeout):
                    raise _Interrupted(_stalled(timeout), progressed=written > 0, kind="timeout") from None
                except (OSError, http.client.HTTPException) as err:
                    # IncompleteRead, connection reset: keep what we have and resume.
                    raise _Interrupted(f"connection broke after {digests.size} bytes ({err!r})", written > 0) from None
                if not chunk:
                    break
                out.write(chunk)  # a write error (disk full) is not a network error: let it propagate
                digests.update(chunk)
                bar.update(len(chunk))
                written += len(chunk)

    if total is not None and digests.size < total:
        raise _Interrupted(f"connection closed after {digests.size} of {total} bytes", progressed=written > 0)


def _restart(part: Path, digests: _Digests) -> None:
    part.unlink(missing_ok=True)
    digests.reset()


def _stalled(timeout: float) -> str:
    return (
        f"timed out: the server accepted the connection but sent nothing for {timeout:g} s "
        "(retry later, use a mirror, or raise --timeout)"
    )


def _classify_connect_error(reason: Any, timeout: float) -> tuple[str, str]:
    """Sort a connection failure: refused/DNS/no-route/connect-timeout all mean 'unreachable' (offline, firewall)."""
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "unreachable", f"no connection within {timeout:g} s (a firewall dropping packets?)"
    if isinstance(reason, socket.gaierror):
        return "unreachable", f"host name lookup failed ({reason})"
    if isinstance(reason, ConnectionRefusedError) or (
        isinstance(reason, OSError)
        and reason.errno in (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL)
    ):
        return "unreachable", f"connection failed ({reason})"
    return "error", f"connection failed ({reason})"


def _parse_content_range(value: str | None) -> tuple[int, int | None]:
    """'bytes 100-199/1000' -> (100, 1000); an unknown total ('*') -> None."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not match:
        return -1, None  # -1 never equals an offset, so the caller starts again
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))


def _require_free_space(folder: Path, needed: int, what: str) -> None:
    """Stop (FetchError) before `what` if the file system of `folder` has fewer than `needed` bytes free.

    COCO's train2014.zip is 13.5 GB and unpacks to about as much again: a disk that fills half-way costs the time
    spent so far, and leaves a full disk behind. A file system that does not report its free space is not checked.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise FetchError(
            f"{what} needs {format_bytes(needed)}, but {folder} has {format_bytes(free)} free. Free some space, set "
            "the profile's data_dir to a larger disk, or give the asset `local:` (a copy you already have)"
        )


def _total_from_content_range(value: str | None) -> int | None:
    """'bytes */1000' (sent with 416) -> 1000."""
    match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", value or "")
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------------------------------------------------
# Safe, all-or-nothing extraction
# --------------------------------------------------------------------------------------------------------------------


def archive_format(filename: str) -> str:
    """'zip' or 'tar' (plain or compressed), from the file name; FetchError for anything else."""
    lower = filename.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    raise FetchError(f"{filename}: unknown archive type (expected .zip, .tar, .tar.gz or .tgz); set extract: false?")


def _zip_escape_reason(name: str) -> str | None:
    """Why a zip member path would land outside the target, or None if it stays inside. (zipfile itself would strip
    such parts silently; an archive holding them is refused instead.)"""
    if not name:
        return "an empty name"
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "a '..' component"
    return None


def check_archive_members(archive: Path, target: Path) -> tuple[int, int]:
    """Refuse (FetchError) an archive with any member that would be written outside `target`; return the number of
    members and their unpacked size in bytes.

    Tar members go through tarfile's own "data" extraction filter (PEP 706): absolute paths, '..', links pointing
    outside, device files; zip members through `_zip_escape_reason`. Every member is checked before anything is
    written, so a refused archive leaves nothing behind.
    """
    fmt = archive_format(archive.name)
    bad: list[str] = []
    try:
        if fmt == "zip":
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
                # zipfile writes symlink members as plain files holding the link text, so names are all that matter.
                bad = [f"{n!r}: {r}" for n in names if (r := _zip_escape_reason(n))]
                count, size = len(names), sum(info.file_size for info in zf.infolist())
        else:
            with tarfile.open(archive, "r:*") as tf:
                members = tf.getmembers()
                count, size = len(members), sum(member.size for member in members)
                for member in members:
                    try:
                        tarfile.data_filter(member, str(target))
                    except tarfile.FilterError as err:
                        bad.append(f"{member.name!r}: {err}")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise FetchError(f"{archive} is not a readable {fmt} archive ({err})") from None
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise FetchError(f"refusing to extract {archive}: members would land outside the target folder: {shown}")
    return count, size


def extract_archive(archive: str | os.PathLike, target: str | os.PathLike, progress: bool = True) -> int:
    """Unpack `archive` into `target` safely and all-or-nothing per file; return the number of members.

    Every member is checked before anything is written. The archive is unpacked into a temporary folder inside
    `target` (same file system, so the moves are renames) and merged into `target` only once complete; a crash
    leaves at most that temporary folder, which the next call removes. Files already in `target` with the same
    path are replaced (so two archives may share a target, e.g. VOC's trainval and test tars). `progress`: a bar
    over the members, else a line a minute (COCO's train2014.zip is 82,783 files, minutes of work).
    """
    archive, target = Path(archive), Path(target)
    count, size = check_archive_members(archive, target)
    target.mkdir(parents=True, exist_ok=True)
    prefix = f".{archive.name}.partial-"
    for stale in target.glob(prefix + "*"):  # left by a crash of an earlier call; removed before the space is counted
        shutil.rmtree(stale, ignore_errors=True)
    _require_free_space(target, size, f"extracting {archive.name}")
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=target))
    try:
        try:
            def counted(members):
                return progress_bar(members, total=count, desc=f"extract {archive.name}", unit="files", bars=progress)

            if archive_format(archive.name) == "zip":
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(staging, members=counted(zf.infolist()))
            else:
                with tarfile.open(archive, "r:*") as tf:
                    tf.extractall(staging, members=counted(tf), filter="data")  # also drops setuid bits
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zipfile.LargeZipFile, OSError) as err:
            raise FetchError(f"could not extract {archive} ({err}); nothing of it was put into {target}") from None
        _merge_into(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count


def _merge_into(source: Path, target: Path) -> None:
    """Move everything under `source` into `target`: whole subtrees by one rename where `target` lacks them."""
    for entry in os.scandir(source):
        destination = target / entry.name
        dest_is_dir = destination.is_dir() and not destination.is_symlink()
        if entry.is_dir(follow_symlinks=False) and dest_is_dir:
            _merge_into(Path(entry.path), destination)
            continue
        if dest_is_dir:
            shutil.rmtree(destination)  # the archive has a file (or link) where a folder was: the archive wins
        elif entry.is_dir(follow_symlinks=False) and (destination.exists() or destination.is_symlink()):
            destination.unlink()
        os.replace(entry.path, destination)


def _marker_path(asset: AssetSpec, extract_dir: Path) -> Path:
    # One marker per asset, since several assets may share a target folder.
    return extract_dir / f".{asset.name}.extracted.json"


def _done_extraction(asset: AssetSpec, extract_dir: Path, source: str | None = None) -> FetchResult | None:
    """The result of an earlier extraction of this very archive (same file name and checksums), or None."""
    try:
        marker = load_json(_marker_path(asset, extract_dir))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("filename") != asset.filename:
        return None
    if _checksum_problem(asset, str(marker.get("md5")), str(marker.get("sha256"))) is not None:
        return None
    if source is not None and marker.get("source") != source:
        return None
    archive = marker.get("archive")
    log.info("asset '%s': already extracted into %s", asset.name, extract_dir)
    return FetchResult(
        asset.name,
        extract_dir,
        str(marker.get("source")),
        Path(archive) if archive else None,
        marker.get("md5"),
        marker.get("sha256"),
        extracted=True,
        verified=_verified(asset),
    )


def _extract_and_mark(asset: AssetSpec, archive: Path, extract_dir: Path, source: str, md5: str, sha256: str,
                      progress: bool = True) -> None:
    marker = _marker_path(asset, extract_dir)
    marker.unlink(missing_ok=True)  # whatever was extracted before is about to be overwritten
    log.info("asset '%s': extracting %s into %s", asset.name, archive, extract_dir)
    count = extract_archive(archive, extract_dir, progress)
    save_json(
        marker,
        {
            "asset": asset.name,
            "filename": asset.filename,
            "archive": str(archive),
            "source": source,
            "md5": md5,
            "sha256": sha256,
            "members": count,
        },
    )
