"""`data download` against a local HTTP server on loopback, with archives the test builds."""

from __future__ import annotations

import contextlib
import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tinykws.data.download import MARKER, FetchLimits, download_dataset, download_info, fetch, safe_extract
from tinykws.errors import DownloadError


def make_tar(members: list[tuple[str, str, bytes | str]]) -> bytes:
    """A .tar.gz from (kind, name, payload) with kind file | dir | symlink | hardlink | fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for kind, name, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE, "chardev": tarfile.CHRTYPE}[kind]  # fmt: skip
            if kind in ("symlink", "hardlink"):
                info.linkname = payload
            tar.addfile(info)
    return buf.getvalue()


GOOD = make_tar(
    [("dir", "./yes", b""), ("file", "./yes/a_nohash_0.wav", b"RIFF" + bytes(5000)),
     ("file", "./_background_noise_/n.wav", bytes(range(256)) * 400), ("file", "./README.md", b"hello")]
)  # fmt: skip
HOSTILE = {
    "dotdot": make_tar([("file", "ok.txt", b"x"), ("file", "../escaped.txt", b"pwned")]),
    "absolute": make_tar([("file", "ok.txt", b"x"), ("file", "/tmp/tinykws-escaped-abs.txt", b"pwned")]),
    "symlink": make_tar([("file", "ok.txt", b"x"), ("symlink", "link", "/etc/passwd"), ("file", "link2/x", b"y")]),
    "hardlink": make_tar([("file", "ok.txt", b"x"), ("hardlink", "hard", "/etc/passwd")]),
    "device": make_tar([("file", "ok.txt", b"x"), ("chardev", "dev", b"")]),
    "nested_dotdot": make_tar([("file", "a/b/../../../escaped.txt", b"pwned")]),
}


class Server:
    """Serves `files` (path -> bytes) on 127.0.0.1, with Range support; `cut_first` makes
    the first N full requests of a path stop halfway (connection closed mid-body)."""

    def __init__(self, files: dict[str, bytes], cut_first: int = 0, ranges: bool = True, mode: str = ""):
        self.files, self.cut_left, self.ranges, self.mode = files, cut_first, ranges, mode
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                if outer.mode:
                    HOSTILE_ANSWERS[outer.mode](self, body, rng)
                    return
                start = 0
                if rng and outer.ranges:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if outer.cut_left > 0:
                    outer.cut_left -= 1
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _endless(h, body, rng) -> None:
    """No Content-Length, then zeros until the client hangs up (at most 400 MB)."""
    h.send_response(200)
    h.end_headers()
    block = bytes(64 << 10)
    with contextlib.suppress(OSError):
        for _ in range(6400):
            h.wfile.write(block)
    h.close_connection = True


def _trickle(h, body, rng) -> None:
    """The right Content-Length, then one byte every 20 ms (at most 5 s a request)."""
    h.send_response(200)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    with contextlib.suppress(OSError):
        for i in range(min(len(body), 250)):
            h.wfile.write(body[i:i + 1])
            h.wfile.flush()
            threading.Event().wait(0.02)  # time.sleep is patched out below
    h.close_connection = True


def _range_from_zero(h, body, rng) -> None:
    """Answers every request with 206 from byte 0 (whatever Range asked for)."""
    h.send_response(206 if rng else 200)
    if rng:
        h.send_header("Content-Range", f"bytes 0-{len(body) - 1}/{len(body)}")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _range_elsewhere(h, body, rng) -> None:
    """A Range request gets a 206 starting at byte 7, whatever it asked for."""
    if not rng:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
        return
    h.send_response(206)
    h.send_header("Content-Range", f"bytes 7-{len(body) - 1}/{len(body)}")
    h.send_header("Content-Length", str(len(body) - 7))
    h.end_headers()
    h.wfile.write(body[7:])


def _bad_length(h, body, rng) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "abc")
    h.end_headers()
    h.wfile.write(body)
    h.close_connection = True


def _long_length(h, body, rng) -> None:
    """Says twice the length it sends, then hangs up: every answer looks truncated."""
    h.send_response(200)
    h.send_header("Content-Length", str(2 * len(body)))
    h.end_headers()
    h.wfile.write(body)
    h.close_connection = True


def _short_length(h, body, rng) -> None:
    """Says (and sends) half the file: a complete-looking transfer of a wrong file."""
    h.send_response(200)
    h.send_header("Content-Length", str(len(body) // 2))
    h.end_headers()
    h.wfile.write(body[: len(body) // 2])


HOSTILE_ANSWERS = {"endless": _endless, "trickle": _trickle, "range_from_zero": _range_from_zero,
                   "range_elsewhere": _range_elsewhere, "bad_length": _bad_length,
                   "long_length": _long_length, "short_length": _short_length}


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("TINYKWS_NO_PROGRESS", "1")
    monkeypatch.setattr("tinykws.data.download.time.sleep", lambda s: None)  # no retry back-off


def test_good_archive_downloads_checks_and_extracts(tmp_path):
    sha = hashlib.sha256(GOOD).hexdigest()
    with Server({"/sc.tar.gz": GOOD}) as srv:
        dest = download_dataset(tmp_path / "sc", url=srv.url + "/sc.tar.gz", sha256=sha)
    assert (dest / "yes" / "a_nohash_0.wav").read_bytes() == b"RIFF" + bytes(5000)
    assert (dest / "_background_noise_" / "n.wav").read_bytes() == bytes(range(256)) * 400
    assert download_info(dest)["sha256"] == sha and download_info(dest)["files"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sc"]  # no archive, no temp folder left


def test_rerun_on_a_finished_download_does_nothing(tmp_path):
    with Server({"/sc.tar.gz": GOOD}) as srv:
        download_dataset(tmp_path / "sc", url=srv.url + "/sc.tar.gz")
        n = len(srv.requests)
        download_dataset(tmp_path / "sc", url=srv.url + "/sc.tar.gz")
        assert len(srv.requests) == n  # no network at all


def test_interrupted_transfer_resumes_with_a_range_request(tmp_path):
    with Server({"/sc.tar.gz": GOOD}, cut_first=1) as srv:
        dest = download_dataset(tmp_path / "sc", url=srv.url + "/sc.tar.gz", sha256=hashlib.sha256(GOOD).hexdigest())
    assert srv.requests[0][1] is None
    assert srv.requests[1][1] == f"bytes={len(GOOD) // 2}-"  # resumed where the cut happened
    assert (dest / "README.md").read_bytes() == b"hello"


def test_failed_download_keeps_the_part_file_and_the_next_run_resumes(tmp_path):
    with Server({"/sc.tar.gz": GOOD}, cut_first=10) as srv:
        with pytest.raises(DownloadError, match="bytes kept in .*run again to resume"):
            fetch(srv.url + "/sc.tar.gz", tmp_path / "sc.tar.gz", retries=0)
    part = tmp_path / "sc.tar.gz.part"
    assert part.stat().st_size == len(GOOD) // 2
    with Server({"/sc.tar.gz": GOOD}) as srv:
        fetch(srv.url + "/sc.tar.gz", tmp_path / "sc.tar.gz")
        assert srv.requests == [("/sc.tar.gz", f"bytes={len(GOOD) // 2}-")]
    assert (tmp_path / "sc.tar.gz").read_bytes() == GOOD and not part.exists()


def test_server_without_range_support_restarts_cleanly(tmp_path):
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes")
    with Server({"/f.bin": GOOD}, ranges=False) as srv:
        fetch(srv.url + "/f.bin", tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == GOOD


def test_bad_checksum_is_refused_and_nothing_is_extracted(tmp_path):
    with Server({"/sc.tar.gz": GOOD}) as srv:
        with pytest.raises(DownloadError, match="SHA-256"):
            download_dataset(tmp_path / "sc", url=srv.url + "/sc.tar.gz", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_http_errors_are_clean_download_errors(tmp_path):
    with Server({}) as srv:
        with pytest.raises(DownloadError, match="HTTP 404"):
            download_dataset(tmp_path / "sc", url=srv.url + "/missing.tar.gz")
    with pytest.raises(DownloadError, match="download failed"):
        fetch("http://127.0.0.1:9/nothing-listens-here", tmp_path / "x", retries=1, timeout=2)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_archive_is_refused_with_nothing_written_outside(tmp_path, kind):
    root = tmp_path / "root"
    root.mkdir()
    with Server({"/evil.tar.gz": HOSTILE[kind]}) as srv:
        with pytest.raises(DownloadError, match="refusing"):
            download_dataset(root / "sc", url=srv.url + "/evil.tar.gz")
    # nothing outside: no escaped files, no DEST, no temp folder, and the refused archive
    # is deleted (a kept one was reused by every later run)
    assert list(root.iterdir()) == []
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/tinykws-escaped-abs.txt").exists()
    assert [p for p in tmp_path.rglob("*") if p.is_symlink()] == []


def test_safe_extract_checks_each_member_before_writing_it(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(HOSTILE["symlink"])
    with pytest.raises(DownloadError, match="'link' is a symlink"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "link").exists() and not (tmp_path / "out" / "link2").exists()


def test_corrupt_archive_is_a_download_error(tmp_path):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(GOOD[: len(GOOD) // 2])
    with pytest.raises(DownloadError, match="bad.tar.gz"):
        safe_extract(archive, tmp_path / "out")
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(DownloadError, match="junk.tar.gz"):
        safe_extract(tmp_path / "junk.tar.gz", tmp_path / "out2")


def test_existing_foreign_destination_is_not_touched(tmp_path):
    (tmp_path / "sc").mkdir()
    (tmp_path / "sc" / "mine.txt").write_text("keep")
    with pytest.raises(DownloadError, match="not a finished tinykws download"):
        download_dataset(tmp_path / "sc", url="http://127.0.0.1:9/x.tar.gz")
    assert (tmp_path / "sc" / "mine.txt").read_text() == "keep"
    assert not (tmp_path / "sc" / MARKER).exists()


def test_cli_download_and_refusal(tmp_path):
    from eval_helpers import tinykws_command

    with Server({"/sc.tar.gz": GOOD, "/evil.tar.gz": HOSTILE["dotdot"]}) as srv:
        p = tinykws_command("data", "download", "--dest", str(tmp_path / "sc"), "--url", srv.url + "/sc.tar.gz",
                            "--sha256", hashlib.sha256(GOOD).hexdigest())  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert "downloaded" in p.stderr and (tmp_path / "sc" / "README.md").is_file()
        p = tinykws_command("data", "download", "--dest", str(tmp_path / "sc"), "--url", srv.url + "/sc.tar.gz")
        assert p.returncode == 0 and "already downloaded" in p.stderr
        p = tinykws_command("data", "download", "--dest", str(tmp_path / "evil"), "--url", srv.url + "/evil.tar.gz")
    assert p.returncode == 2 and "refusing" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "evil").exists() and not (tmp_path / "escaped.txt").exists()


def test_failed_extraction_deletes_the_archive_and_the_next_run_recovers(tmp_path):
    """A corrupt archive used to stay beside DEST and be reused by every later run, even with
    the right --sha256 (which reported the mismatch and kept the file)."""
    bad = GOOD[: len(GOOD) // 2]
    with Server({"/sc.tar.gz": bad}) as srv:
        with pytest.raises(DownloadError, match="corrupt or truncated"):
            download_dataset(tmp_path / "sc", url=srv.url + "/sc.tar.gz")
    assert list(tmp_path.iterdir()) == []
    # an archive left by an older version: the right checksum replaces it
    (tmp_path / "sc.sc.tar.gz").write_bytes(bad)
    with Server({"/sc.tar.gz": GOOD}) as srv:
        download_dataset(tmp_path / "sc", url=srv.url + "/sc.tar.gz",
                         sha256=hashlib.sha256(GOOD).hexdigest())
    assert (tmp_path / "sc" / "README.md").read_bytes() == b"hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sc"]


def test_extraction_folder_cannot_be_pre_planted(tmp_path, monkeypatch):
    """The temp folder used to be `.DEST.extract-<pid>`: a symlink planted under that name
    sent the dataset into someone else's folder. Now it is a fresh mkdtemp folder."""
    import os

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    for pid in range(os.getpid() - 2, os.getpid() + 3):
        (root / f".sc.extract-{pid}").symlink_to(theirs)
    with Server({"/sc.tar.gz": GOOD}) as srv:
        download_dataset(root / "sc", url=srv.url + "/sc.tar.gz")
    assert not (root / "sc").is_symlink() and (root / "sc" / "README.md").is_file()
    assert list(theirs.iterdir()) == []
    umask = os.umask(0)
    os.umask(umask)
    assert (root / "sc").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700


@pytest.mark.parametrize("bad", ["abc", "0" * 63, "g" * 64, "0" * 65, ""])
def test_sha256_form_checked_before_downloading(tmp_path, bad):
    with Server({"/sc.tar.gz": GOOD}) as srv:
        with pytest.raises(DownloadError, match="64 hexadecimal"):
            download_dataset(tmp_path / "sc", url=srv.url + "/sc.tar.gz", sha256=bad)
        assert srv.requests == []
    assert list(tmp_path.iterdir()) == []


def test_extracted_size_is_capped(tmp_path):
    big = make_tar([("file", "yes/a.wav", bytes(3000)), ("file", "b.bin", bytes(3000))])
    with Server({"/big.tar.gz": big}) as srv:
        with pytest.raises(DownloadError, match="unpacks to more than"):
            download_dataset(tmp_path / "sc", url=srv.url + "/big.tar.gz", max_bytes=5000)
        assert list(tmp_path.iterdir()) == []
        download_dataset(tmp_path / "sc", url=srv.url + "/big.tar.gz", max_bytes=6000)
    assert (tmp_path / "sc" / "b.bin").stat().st_size == 3000


# ------------------------------------------------------------------ issue 22: downloads that cannot lie or hang

FAST = FetchLimits(max_bytes=1 << 20, stall_seconds=0.3, stall_bytes=100)  # small thresholds for tests


def _nothing_finished(root: Path) -> None:
    """No finished marker and no dataset anywhere under `root`."""
    assert not list(root.rglob(MARKER)), list(root.rglob("*"))


@pytest.mark.parametrize("archive", [make_tar([]), make_tar([("file", "README.md", b"hi")]),
                                     make_tar([("dir", "yes", b"")]), bytes(4 << 10)],
                         ids=["empty_tar", "no_word_folder", "no_clips", "zeros"])
def test_an_archive_that_is_not_a_dataset_is_refused(tmp_path, archive):
    """Issue 22, case 1: an empty tar, a tar of zeros (which tar reads as an empty archive)
    or one without word folders of clips was reported as `downloaded (0 files)` with a
    finished marker, so every later run said `already downloaded`."""
    with Server({"/x.tar": archive}) as srv:
        with pytest.raises(DownloadError, match="not a dataset"):
            download_dataset(tmp_path / "sc", url=srv.url + "/x.tar")
    assert list(tmp_path.iterdir()) == []  # no DEST, no marker, no archive
    _nothing_finished(tmp_path)


def test_endless_answer_is_cut_at_the_cap(tmp_path):
    """Issue 22, cases 1-2: a server streaming zeros with no Content-Length was written to
    disk in full (400 MB); the download is now capped (here 1 MiB) and deleted."""
    with Server({"/x.tar.gz": b"x"}, mode="endless") as srv:
        with pytest.raises(DownloadError, match="larger than 1,048,576 bytes"):
            download_dataset(tmp_path / "sc", url=srv.url + "/x.tar.gz", limits=FAST)
        with pytest.raises(DownloadError, match="larger than"):  # the default: the extracted cap
            download_dataset(tmp_path / "sc", url=srv.url + "/x.tar.gz", max_bytes=200_000)
    assert list(tmp_path.iterdir()) == []
    _nothing_finished(tmp_path)


def test_known_archive_is_checked_against_its_published_size_and_checksum(tmp_path, monkeypatch):
    """Issue 22, cases 1-2: the official URL's archive may not grow past its known size,
    and its SHA-256 is checked without --sha256."""
    from tinykws.data import download

    with Server({"/sc.tar.gz": GOOD}) as srv:
        url = srv.url + "/sc.tar.gz"
        monkeypatch.setitem(download.KNOWN_ARCHIVES, url, ("0" * 64, len(GOOD)))
        with pytest.raises(DownloadError, match="SHA-256"):
            download_dataset(tmp_path / "sc", url=url)
        monkeypatch.setitem(download.KNOWN_ARCHIVES, url, (hashlib.sha256(GOOD).hexdigest(), len(GOOD) - 1))
        with pytest.raises(DownloadError, match=f"larger than {len(GOOD) - 1:,} bytes"):
            download_dataset(tmp_path / "sc", url=url)
        monkeypatch.setitem(download.KNOWN_ARCHIVES, url, (hashlib.sha256(GOOD).hexdigest(), len(GOOD)))
        download_dataset(tmp_path / "sc", url=url)
    assert download_info(tmp_path / "sc")["sha256"] == hashlib.sha256(GOOD).hexdigest()
    assert download.KNOWN_ARCHIVES[download.DEFAULT_URL][1] == 2_428_923_189


def test_trickling_server_is_cut_as_stalled_and_the_deadline_holds(tmp_path):
    """Issue 22, case 3: one byte every 20 ms never trips a per-read timeout; fewer than
    `stall_bytes` in `stall_seconds` is a stall (retried, then reported), and a deadline
    bounds the whole fetch."""
    with Server({"/x.tar.gz": GOOD}, mode="trickle") as srv:
        with pytest.raises(DownloadError, match="stalled"):
            fetch(srv.url + "/x.tar.gz", tmp_path / "x.tar.gz", retries=1, limits=FAST)
        slow_ok = FetchLimits(stall_seconds=0.3, stall_bytes=1, deadline_seconds=0.5)
        with pytest.raises(DownloadError, match="not done within 0.5 s"):
            fetch(srv.url + "/x.tar.gz", tmp_path / "y.tar.gz", retries=100, limits=slow_ok)
        assert len(srv.requests) <= 4  # the deadline stopped the retries
    assert not (tmp_path / "x.tar.gz").exists() and not (tmp_path / "y.tar.gz").exists()


def test_range_answered_from_byte_zero_restarts_instead_of_sticking(tmp_path):
    """Issue 22, case 13: a 206 from byte 0 to a Range request left the .part stuck (each
    re-run failed the same way); it is now taken as the whole file."""
    part = tmp_path / "sc.tar.gz.part"
    part.write_bytes(GOOD[:100])
    with Server({"/sc.tar.gz": GOOD}, mode="range_from_zero") as srv:
        fetch(srv.url + "/sc.tar.gz", tmp_path / "sc.tar.gz", hashlib.sha256(GOOD).hexdigest(), retries=0)
    assert (tmp_path / "sc.tar.gz").read_bytes() == GOOD


def test_range_answered_elsewhere_starts_over(tmp_path):
    """Issue 22, case 13: a 206 at another byte than asked deletes the part and the next
    attempt downloads from zero."""
    part = tmp_path / "sc.tar.gz.part"
    part.write_bytes(GOOD[:100])
    with Server({"/sc.tar.gz": GOOD}, mode="range_elsewhere") as srv:
        fetch(srv.url + "/sc.tar.gz", tmp_path / "sc.tar.gz", hashlib.sha256(GOOD).hexdigest(), retries=1)
        assert [r for _, r in srv.requests] == ["bytes=100-", None]
    assert (tmp_path / "sc.tar.gz").read_bytes() == GOOD


def test_wrong_content_lengths(tmp_path):
    """Issue 22, case 11 and siblings: `Content-Length: abc` is one clean error (was
    `invalid literal for int()`); a length longer than the body is retried and reported;
    a shorter one delivers a wrong file that the checksum or layout check refuses."""
    with Server({"/x.tar.gz": GOOD}, mode="bad_length") as srv:
        with pytest.raises(DownloadError, match="bad Content-Length .'abc'"):
            download_dataset(tmp_path / "a", url=srv.url + "/x.tar.gz")
        assert len(srv.requests) == 1  # not retried
    with Server({"/x.tar.gz": GOOD}, mode="long_length") as srv:
        with pytest.raises(DownloadError, match="failed after 3 attempts"):
            fetch(srv.url + "/x.tar.gz", tmp_path / "b.tar.gz", retries=2)
    with Server({"/x.tar.gz": GOOD}, mode="short_length") as srv:
        with pytest.raises(DownloadError, match="corrupt or truncated|not a dataset"):
            download_dataset(tmp_path / "c", url=srv.url + "/x.tar.gz")
        with pytest.raises(DownloadError, match="SHA-256"):
            download_dataset(tmp_path / "c", url=srv.url + "/x.tar.gz", sha256=hashlib.sha256(GOOD).hexdigest())
    _nothing_finished(tmp_path)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize("url, match", [
    ("", "--url is empty"), ("notaurl", "not an http"), ("gopher://127.0.0.1:9/x", "not an http"),
    ("http://", "not an http"), ("file:///nonexistent/x.tar.gz", "No such file"),
])  # fmt: skip
def test_bad_urls_fail_at_once(tmp_path, url, match, monkeypatch):
    """Issue 22, cases 10 and 14: `notaurl` raised `unknown url type`, `--url ""` fell back
    to the default URL, and a non-retryable error was retried 6 times."""
    calls = []
    monkeypatch.setattr("tinykws.data.download._fetch_once", lambda *a: calls.append(a) or
                        (_ for _ in ()).throw(__import__("urllib.error").error.URLError(FileNotFoundError(2, "No such file"))))
    with pytest.raises(DownloadError, match=match):
        download_dataset(tmp_path / "sc", url=url)
    assert len(calls) <= 1
    assert list(tmp_path.iterdir()) == []


def test_destination_checked_before_downloading(tmp_path):
    """Issue 22, case 15: a DEST that is a symlink (to a file, a folder, nowhere), or under a
    file or a read-only folder, is refused before any byte is fetched (a symlinked DEST
    used to download, fail with `Not a directory` and leave the archive behind)."""
    import os

    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "to_file").symlink_to(tmp_path / "file")
    (tmp_path / "to_folder").symlink_to(tmp_path / "folder")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with Server({"/sc.tar.gz": GOOD}) as srv:
            for dest, match in [("to_file", "symlink"), ("to_folder", "symlink"), ("dangling", "symlink"),
                                ("file/sc", "not a folder"), ("file/a/b", "not a folder")]:
                with pytest.raises(DownloadError, match=match):
                    download_dataset(tmp_path / dest, url=srv.url + "/sc.tar.gz")
            if os.geteuid() != 0:  # root writes anywhere
                with pytest.raises(DownloadError, match="read-only"):
                    download_dataset(ro / "sc", url=srv.url + "/sc.tar.gz")
            assert srv.requests == []
    finally:
        ro.chmod(0o755)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "file", "folder", "ro", "to_file", "to_folder"]


def test_torn_marker_is_an_error_not_a_finished_download(tmp_path):
    """Sibling of case 12: a torn `.tinykws-download.json` raised JSONDecodeError."""
    (tmp_path / "sc").mkdir()
    (tmp_path / "sc" / MARKER).write_text('{"url": "http://x", "sha')
    with pytest.raises(DownloadError, match="damaged"):
        download_dataset(tmp_path / "sc", url="http://127.0.0.1:9/x.tar.gz")


@pytest.mark.parametrize("argv, match", [
    (["--url", ""], "--url is empty"), (["--url", "notaurl"], "not an http"),
    (["--url", "URL/x.tar", "--max-extracted-gb", "0.0001"], "larger than"),
    (["--url", "URL/x.tar", "--max-extracted-gb", "nan"], "positive number"),
])  # fmt: skip
def test_cli_download_errors_are_one_line(tmp_path, argv, match):
    """Issue 22, cases 1, 2, 10, 14 through the CLI: one `error:` line, exit 2, no marker."""
    from tinykws import cli

    with Server({"/x.tar": b"x"}, mode="endless") as srv:
        argv = [a.replace("URL", srv.url) for a in argv]
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = cli.run(["data", "download", "--dest", str(tmp_path / "sc"), *argv])
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["truncated", *sorted(HOSTILE_ANSWERS)])
def test_every_hostile_answer_ends_in_a_dataset_or_an_error(tmp_path, mode):
    """Issue 22: the loopback server's truncated, endless, trickling, wrong-range and
    wrong-length answers, each through the whole `download_dataset` with small limits:
    a finished marker only ever stands beside the real dataset."""
    cut = 1 if mode == "truncated" else 0
    with Server({"/sc.tar.gz": GOOD}, cut_first=cut, mode="" if cut else mode) as srv:
        try:
            download_dataset(tmp_path / "sc", url=srv.url + "/sc.tar.gz", limits=FAST)
        except DownloadError as e:
            assert "\n" not in str(e)
            _nothing_finished(tmp_path)
            return
    assert (tmp_path / "sc" / "yes" / "a_nohash_0.wav").read_bytes() == b"RIFF" + bytes(5000)
    assert download_info(tmp_path / "sc")["files"] == 3
