"""`data download` against a local HTTP server on loopback, with archives the test builds."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tinykws.data.download import MARKER, download_dataset, download_info, fetch, safe_extract
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

    def __init__(self, files: dict[str, bytes], cut_first: int = 0, ranges: bool = True):
        self.files, self.cut_left, self.ranges = files, cut_first, ranges
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
    big = make_tar([("file", "a.bin", bytes(3000)), ("file", "b.bin", bytes(3000))])
    with Server({"/big.tar.gz": big}) as srv:
        with pytest.raises(DownloadError, match="unpacks to more than"):
            download_dataset(tmp_path / "sc", url=srv.url + "/big.tar.gz", max_bytes=5000)
        assert list(tmp_path.iterdir()) == []
        download_dataset(tmp_path / "sc", url=srv.url + "/big.tar.gz", max_bytes=6000)
    assert (tmp_path / "sc" / "b.bin").stat().st_size == 3000
