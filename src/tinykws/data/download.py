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
- A download cannot lie: the known Speech Commands URL is checked against its published
  SHA-256 and size (`KNOWN_ARCHIVES`) even without `--sha256`, and every download must
  unpack to the Speech Commands layout (word folders with .wav clips) before the marker is
  written; an empty tar or a stream of zeros is refused and deleted.
- A download cannot hang or grow without bound (`FetchLimits`): the archive may not
  exceed the cap (the extracted-size cap, or the known archive's size), a transfer that
  brings fewer than `stall_bytes` in `stall_seconds` is cut and resumed, and an optional
  `deadline_seconds` bounds the whole fetch.
- The URL and DEST are checked before anything is fetched: an empty or unsupported URL,
  a DEST that is a symlink, a parent that is not a writable folder are one-line errors.
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
from dataclasses import dataclass
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

from tinykws.data.speech_commands import scan_dataset
from tinykws.errors import DownloadError, TinyKWSError

DEFAULT_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
MARKER = ".tinykws-download.json"  # written last into DEST: the download is complete
CHUNK = 1 << 20  # bytes per read
MAX_EXTRACTED_BYTES = 16 << 30  # default cap on what one archive may unpack to (16 GiB)
_SC_V2 = ("af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58", 2_428_923_189)
# url -> (SHA-256, bytes) of archives whose content is published (TensorFlow Datasets'
# speech_commands/checksums.tsv, torchaudio's SPEECHCOMMANDS): checked without --sha256
KNOWN_ARCHIVES = {
    DEFAULT_URL: _SC_V2,
    "https://download.tensorflow.org/data/speech_commands_v0.02.tar.gz": _SC_V2,
    "https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz": _SC_V2,
}
URL_SCHEMES = ("http", "https", "ftp", "file")  # what urllib fetches


class _Retry(ConnectionError):
    """A transfer that went wrong in a way the next attempt can fix (stalled, resumed at
    the wrong byte): retried like a dropped connection."""


_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout)


@dataclass(frozen=True)
class FetchLimits:
    """What a download may cost; the defaults fit the real dataset (2.4 GB), tests use
    small ones. A transfer that brings fewer than `stall_bytes` in `stall_seconds` (a
    server that trickles one byte every few seconds never trips a per-read timeout) is cut
    and resumed; `deadline_seconds` (None: none) bounds the whole fetch, retries included."""

    max_bytes: int | None = None  # the archive may not be larger (None: no cap)
    stall_seconds: float = 60.0
    stall_bytes: int = 64 << 10  # 64 KiB a minute: ~1 kB/s, far below any real link
    deadline_seconds: float | None = None


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


def fetch(url: str, file: Path | str, sha256: str | None = None, *, retries: int = 5, timeout: float = 60.0,
          limits: FetchLimits = FetchLimits()) -> Path:
    """Download `url` to `file`, resuming from `file.part`; returns `file`.

    An interrupted or stalled transfer is resumed with `Range: bytes=N-` up to `retries`
    times (and again on the next call); errors no retry can fix (HTTP 404, an unknown URL
    type, a bad Content-Length, the size cap) are raised at once. With `sha256`, a mismatch
    deletes the download and raises.
    """
    file = Path(file)
    part = file.with_name(file.name + ".part")
    check_url(url)
    check_sha256_form(sha256)
    deadline = None if limits.deadline_seconds is None else time.monotonic() + limits.deadline_seconds
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
                if _fetch_once(url, part, min(timeout, limits.stall_seconds), bar, task, limits, deadline):
                    break
                last_error = DownloadError(f"{url}: connection closed early")
            except _NETWORK_ERRORS as e:
                _raise_if_final(url, e)
                last_error = e
            if deadline is not None and time.monotonic() >= deadline:
                raise DownloadError(f"{url}: not done within {limits.deadline_seconds:g} s "
                                    f"({_reason(last_error)}){_kept(part)}")
            if attempt < retries:
                time.sleep(min(0.5 * 2**attempt, 10.0))
        else:
            raise DownloadError(f"{url}: download failed after {retries + 1} attempts "
                                f"({_reason(last_error)}){_kept(part)}")
    try:
        _check_sha256(part, sha256)
    except DownloadError:
        part.unlink()
        raise
    part.rename(file)
    return file


def _kept(part: Path) -> str:
    have = part.stat().st_size if part.exists() else 0
    return f"; {have} bytes kept in {part}, run again to resume" if have else ""


def _raise_if_final(url: str, e: Exception) -> None:
    """Raise a DownloadError for a network error that retrying cannot fix: an HTTP error
    other than the transient ones, an unsupported URL, a missing local file."""
    if isinstance(e, urllib.error.HTTPError):
        if e.code not in (408, 429, 500, 502, 503, 504):
            raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    elif isinstance(e, urllib.error.URLError) and (
            isinstance(e.reason, str) or isinstance(e.reason, (FileNotFoundError, PermissionError))):
        raise DownloadError(f"{url}: {_reason(e)}") from None


def _fetch_once(url: str, part: Path, timeout: float, bar: Progress, task, limits: FetchLimits,
                deadline: float | None) -> bool:
    """One request, appending to `part`; True when the file is complete."""
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
        have, mode = _resume_point(url, part, have, resp)
        length = _content_length(url, resp)
        total = have + length if length is not None else None
        _check_size(url, part, total if total is not None else have, limits.max_bytes)
        bar.update(task, total=total, completed=have)
        read = getattr(resp, "read1", resp.read)  # read1: whatever arrived, not a full MiB
        window_start, window_have = time.monotonic(), have
        with open(part, mode) as out:
            while True:
                try:
                    chunk = read(CHUNK)
                except http.client.IncompleteRead as e:
                    out.write(e.partial)
                    return False
                if not chunk:
                    break
                out.write(chunk)
                have += len(chunk)
                bar.update(task, completed=have)
                _check_size(url, part, have, limits.max_bytes)
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return False  # fetch() reports the deadline
                if now - window_start >= limits.stall_seconds:
                    if have - window_have < limits.stall_bytes:
                        raise _Retry(f"stalled: {have - window_have} bytes in {now - window_start:.0f} s")
                    window_start, window_have = now, have
    return total is None or have >= total


def _resume_point(url: str, part: Path, have: int, resp) -> tuple[int, str]:
    """(bytes already in `part` that this answer continues, file mode). A 206 must start
    where the part ends; one starting at byte 0 is the whole file (start over); one
    starting elsewhere cannot be used: the part is deleted and the next attempt starts
    from zero (else every re-run failed the same way on the stuck part)."""
    if getattr(resp, "status", None) != 206:  # 200: the whole file (no Range support)
        return 0, "wb"
    start = _content_range_start(resp.headers.get("Content-Range"))
    if start == have:
        return have, "ab"
    if start == 0:
        return 0, "wb"
    part.unlink(missing_ok=True)
    raise _Retry(f"server resumed at byte {start}, expected {have}; starting over")


def _content_length(url: str, resp) -> int | None:
    """The answer's Content-Length as bytes; None when absent; a DownloadError when it is
    not a non-negative integer (a server answering `Content-Length: abc`)."""
    value = resp.headers.get("Content-Length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise DownloadError(f"{url}: the server sent a bad Content-Length ({value!r})")
    return int(value)


def _check_size(url: str, part: Path, size: int, cap: int | None) -> None:
    """Refuse (and delete) a download that is or says it will be larger than `cap`."""
    if cap is not None and size > cap:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: the download is larger than {cap:,} bytes, more than the dataset can be; "
            "deleted (raise --max-extracted-gb if you trust it)")


def _content_range_start(value: str | None) -> int | None:
    """`bytes 100-199/200` -> 100."""
    try:
        return int(value.split()[1].split("-")[0]) if value else None
    except (IndexError, ValueError):
        return None


def check_url(url: str) -> None:
    """Refuse an empty URL or one urllib cannot fetch, before anything is fetched."""
    parsed = urllib.parse.urlparse(url.strip())
    if not url.strip():
        raise DownloadError("--url is empty; give an archive URL or leave --url out for the official dataset")
    if parsed.scheme not in URL_SCHEMES or (parsed.scheme != "file" and not parsed.netloc):
        raise DownloadError(f"--url {url!r} is not an {', '.join(URL_SCHEMES)} URL "
                            "(e.g. https://host/archive.tar.gz)")


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
    limits: FetchLimits | None = None,
) -> Path:
    """Download and unpack the archive at `url` into `dest`; returns `dest`.

    The archive is kept as `DEST.<name>.part` while downloading (resumable), extracted into a
    fresh temporary folder beside `dest`, checked to be a dataset (word folders with .wav
    clips) and renamed into place. An archive that fails its checksum, its extraction or
    the layout check is deleted. Re-running on a finished `dest` does nothing.
    `limits` defaults to the size cap of `max_bytes` (or the known archive's size).
    """
    dest = Path(dest)
    marker = dest / MARKER
    if marker.is_file():
        download_info(dest)  # a torn marker is an error, not a finished download
        return dest
    check_destination(dest)
    check_url(url)
    check_sha256_form(sha256)
    if not max_bytes > 0:
        raise DownloadError(f"the extracted-size cap must be positive, not {max_bytes}")
    known_sha, known_size = KNOWN_ARCHIVES.get(url.strip(), (None, None))
    sha256 = sha256 or known_sha
    if limits is None:  # an archive is never larger than what it unpacks to (give or take headers)
        limits = FetchLimits(max_bytes=min(max_bytes, known_size or max_bytes))
    name = PurePosixPath(urllib.parse.urlparse(url).path).name or "archive.tar.gz"
    archive = dest.parent / f"{dest.name}.{name}"
    fetch(url, archive, sha256, limits=limits)
    # unpredictable name, created by us with mode 0700: no one can plant a symlink there
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
        try:
            files = safe_extract(archive, tmp, max_bytes)
            _check_layout(url, tmp, files)
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


def check_destination(dest: Path) -> None:
    """Refuse a DEST the download could not be renamed into, before anything is fetched:
    one that exists and is not an empty folder, a symlink (to a file, a folder or nowhere),
    or a parent that is not a writable folder."""
    if dest.is_symlink():
        raise DownloadError(f"{dest} is a symlink; give --dest a real folder path")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DownloadError(f"{dest} exists and is not a finished tinykws download; remove it or choose another --dest")
    parent = dest.parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent  # the nearest existing ancestor: fetch creates the rest
    if not parent.is_dir():
        raise DownloadError(f"{parent} is not a folder; choose another --dest")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DownloadError(f"cannot write in {parent} (read-only); choose another --dest")


def _check_layout(url: str, folder: Path, files: int) -> None:
    """Refuse an archive that is not a dataset: `scan_dataset` must find a word folder
    with .wav clips (an empty tar, or a stream of zeros, which tar reads as an empty
    archive, was reported as a finished download)."""
    try:
        scan_dataset(folder)
    except TinyKWSError:
        raise DownloadError(f"{url} is not a dataset: its {files} file(s) hold no word folder with "
                            ".wav clips (Speech Commands layout); nothing was kept") from None


def download_info(dest: Path | str) -> dict:
    """What the marker of a finished download says (url, sha256, files)."""
    path = Path(dest) / MARKER
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DownloadError(f"{path} is damaged ({type(e).__name__}); remove {dest} and download again") from None
    if not isinstance(info, dict) or not {"url", "sha256", "files"} <= info.keys():
        raise DownloadError(f"{path} is damaged (not a download record); remove {dest} and download again")
    return info
