"""`tinykws data download`: fetch and unpack a dataset archive, safely and resumably.

- `fetch` streams a URL into `FILE.part`, resuming with an HTTP Range request after an
  interruption (in the same run, or the next one), checks the SHA-256 when given, then
  renames the file into place.
- `safe_extract` unpacks a tar archive, refusing absolute paths, `..`, links and devices
  (DownloadError) before anything of that member is written; it writes only regular files
  and folders, with our own permissions.
- `download_dataset` = fetch + extract into a fresh, unpredictably named temporary folder
  beside DEST (`tempfile.mkdtemp`: nobody can pre-plant it) + rename into place, so DEST
  either does not exist or is complete. A marker file makes re-runs a no-op. An archive
  that fails its checksum or its extraction is deleted, so the next run downloads afresh.
- `--sha256` is checked for form before anything is fetched; the extracted size is capped
  (`max_bytes`, default 16 GiB; the real dataset unpacks to ~3.4 GB) against archive bombs.
Only the standard library (urllib, tarfile, hashlib) is used.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from tinykws.errors import DownloadError

DEFAULT_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
MARKER = ".tinykws-download.json"  # written last into DEST: the download is complete
CHUNK = 1 << 20  # bytes per read
MAX_EXTRACTED_BYTES = 16 << 30  # default cap on what one archive may unpack to (16 GiB)
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout)


def _byte_bar() -> Progress:
    """A rich bar for byte counts (silent when TINYKWS_NO_PROGRESS=1)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=os.environ.get("TINYKWS_NO_PROGRESS") == "1",
    )


# ------------------------------------------------------------------ download


def fetch(url: str, file: Path | str, sha256: str | None = None, *, retries: int = 5, timeout: float = 60.0) -> Path:
    """Download `url` to `file`, resuming from `file.part`; returns `file`.

    An interrupted transfer is resumed with `Range: bytes=N-` up to `retries` times (and
    again on the next call). With `sha256`, a mismatch deletes the download and raises.
    """
    file = Path(file)
    part = file.with_name(file.name + ".part")
    check_sha256_form(sha256)
    if file.is_file():
        try:
            _check_sha256(file, sha256)
            return file
        except DownloadError:  # a stale or wrong file from an earlier run: fetch afresh
            file.unlink()
    file.parent.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    with _byte_bar() as bar:
        task = bar.add_task(f"download {file.name}", total=None)
        for attempt in range(retries + 1):
            try:
                if _fetch_once(url, part, timeout, bar, task):
                    break
                last_error = DownloadError(f"{url}: connection closed early")
            except _NETWORK_ERRORS as e:
                if isinstance(e, urllib.error.HTTPError) and e.code not in (408, 429, 500, 502, 503, 504):
                    raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
                last_error = e
            if attempt < retries:
                time.sleep(min(0.5 * 2**attempt, 10.0))
        else:
            have = part.stat().st_size if part.exists() else 0
            kept = f"; {have} bytes kept in {part}, run again to resume" if have else ""
            raise DownloadError(f"{url}: download failed after {retries + 1} attempts ({_reason(last_error)}){kept}")
    try:
        _check_sha256(part, sha256)
    except DownloadError:
        part.unlink()
        raise
    part.rename(file)
    return file


def _fetch_once(url: str, part: Path, timeout: float, bar: Progress, task) -> bool:
    """One HTTP request, appending to `part`; True when the file is complete."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "tinykws", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left after `have` bytes: already complete
            return True
        raise
    with resp:
        if have and resp.status == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != have:
                raise DownloadError(f"{url}: server resumed at byte {start}, expected {have}")
            mode = "ab"
        else:  # 200: the server sent the whole file (no Range support): start over
            have, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        bar.update(task, total=total, completed=have)
        with open(part, mode) as out:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except http.client.IncompleteRead as e:
                    out.write(e.partial)
                    return False
                if not chunk:
                    break
                out.write(chunk)
                have += len(chunk)
                bar.update(task, completed=have)
    return total is None or have >= total


def _content_range_start(value: str | None) -> int | None:
    """`bytes 100-199/200` -> 100."""
    try:
        return int(value.split()[1].split("-")[0]) if value else None
    except (IndexError, ValueError):
        return None


def _reason(e: Exception | None) -> str:
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        return str(e.reason)
    return str(e) or type(e).__name__


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256_form(sha256: str | None) -> None:
    """Refuse a --sha256 that is not 64 hex digits, before anything is downloaded."""
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256.strip()):
        raise DownloadError(f"--sha256 must be 64 hexadecimal digits, not {sha256!r}")


def _check_sha256(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    got = sha256_of(path)
    if got != expected.strip().lower():
        raise DownloadError(f"{path.name}: SHA-256 is {got}, expected {expected}; the download is corrupt or not the file you meant")


# ------------------------------------------------------------------ extraction


def _check_member(archive: Path, m: tarfile.TarInfo) -> PurePosixPath | None:
    """The safe relative path of member `m` (None for the archive root), or DownloadError."""
    name = m.name
    refuse = None
    if not (m.isfile() or m.isdir()):
        kind = "symlink" if m.issym() else "hard link" if m.islnk() else "device or special file"
        refuse = f"is a {kind}"
    elif name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        refuse = "has an absolute path"
    elif ".." in PurePosixPath(name.replace("\\", "/")).parts:
        refuse = "points outside the folder (..)"
    if refuse:
        raise DownloadError(f"refusing {archive.name}: member {name!r} {refuse}")
    parts = [p for p in PurePosixPath(name).parts if p not in (".", "")]
    return PurePosixPath(*parts) if parts else None


class _Counting:
    """A file wrapper that reports how many compressed bytes were read (for the bar)."""

    def __init__(self, f: BinaryIO, on_read) -> None:
        self._f, self._on_read = f, on_read

    def read(self, n: int = -1) -> bytes:
        b = self._f.read(n)
        self._on_read(len(b))
        return b

    def __getattr__(self, name):
        return getattr(self._f, name)


def safe_extract(archive: Path | str, dest: Path | str, max_bytes: int = MAX_EXTRACTED_BYTES) -> int:
    """Extract the tar (any compression) `archive` into `dest`; returns files written.

    Every member is checked before it is written: absolute paths, `..`, symlinks, hard
    links and devices raise DownloadError, and so does a member that would take the total
    past `max_bytes` (an archive bomb). Only regular files and folders are created,
    so nothing can land outside `dest`. On error, what was already written stays in `dest`
    (callers extract into a temporary folder and delete it).
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    files = written = 0
    with _byte_bar() as bar, open(archive, "rb") as raw:
        task = bar.add_task(f"extract {archive.name}", total=archive.stat().st_size)
        counted = _Counting(raw, lambda n: bar.advance(task, n))
        try:
            tar = tarfile.open(fileobj=counted, mode="r|*")  # streaming: one pass over the archive
        except tarfile.TarError as e:
            raise DownloadError(f"{archive.name} is not a readable tar archive ({e})") from None
        try:
            for m in tar:
                rel = _check_member(archive, m)
                if rel is None:
                    continue
                target = root.joinpath(*rel.parts)
                if root not in target.parents:
                    raise DownloadError(f"refusing {archive.name}: member {m.name!r} points outside the folder")
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                written += m.size
                if written > max_bytes:
                    raise DownloadError(
                        f"refusing {archive.name}: it unpacks to more than {max_bytes / 2**30:.3g} GiB "
                        "(raise the cap with --max-extracted-gb if you trust it)")
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                with open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                files += 1
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DownloadError(f"{archive.name}: corrupt or truncated archive ({e})") from None
        finally:
            tar.close()
    return files


# ------------------------------------------------------------------ the whole operation


def download_dataset(
    dest: Path | str, url: str = DEFAULT_URL, sha256: str | None = None, *,
    keep_archive: bool = False, max_bytes: int = MAX_EXTRACTED_BYTES,
) -> Path:
    """Download and unpack the archive at `url` into `dest`; returns `dest`.

    The archive is kept as `DEST.<name>.part` while downloading (resumable), extracted into a
    fresh temporary folder beside `dest` and renamed into place. An archive that fails its
    checksum or extraction is deleted. Re-running on a finished `dest` does nothing.
    """
    dest = Path(dest)
    marker = dest / MARKER
    if marker.is_file():
        return dest
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DownloadError(f"{dest} exists and is not a finished tinykws download; remove it or choose another --dest")
    check_sha256_form(sha256)
    if not max_bytes > 0:
        raise DownloadError(f"the extracted-size cap must be positive, not {max_bytes}")
    name = PurePosixPath(urllib.parse.urlparse(url).path).name or "archive.tar.gz"
    archive = dest.parent / f"{dest.name}.{name}"
    fetch(url, archive, sha256)
    # unpredictable name, created by us with mode 0700: no one can plant a symlink there
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
        try:
            files = safe_extract(archive, tmp, max_bytes)
        except DownloadError:
            archive.unlink()  # a bad archive must not be reused by the next run
            raise
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # the dataset folder gets normal permissions, not 0700
        digest = sha256.strip().lower() if sha256 else sha256_of(archive)  # given = already checked
        info = {"url": url, "sha256": digest, "files": files, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (tmp / MARKER).write_text(json.dumps(info, indent=1))
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not keep_archive:
        archive.unlink()
    return dest


def download_info(dest: Path | str) -> dict:
    """What the marker of a finished download says (url, sha256, files)."""
    return json.loads((Path(dest) / MARKER).read_text())
