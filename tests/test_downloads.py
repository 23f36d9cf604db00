"""Tests for srkit.downloads: a tiny BSDS300 archive served over HTTP on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import shutil
import socket
import tarfile
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from srkit import downloads, images

SERVER_TIMEOUT_S = 10  # bound on every socket and on the server thread's shutdown


def build_bsds_tgz(folder: Path, extra_members=()) -> tuple[Path, str]:
    """A tiny BSDS300-shaped .tgz (3 train, 2 test 32x32 JPEGs) and its sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / downloads.BSDS300_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        files = [("train", index) for index in range(3)] + [
            ("test", index) for index in range(2)
        ]
        for split, index in files:
            pixels = np.full((32, 32, 3), 40 * index + 10, np.uint8)
            ok, encoded = cv2.imencode(".jpg", pixels)
            assert ok
            payload = encoded.tobytes()
            member = tarfile.TarInfo(f"BSDS300/images/{split}/{split}{index}.jpg")
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
        note = tarfile.TarInfo("BSDS300/iids_train.txt")
        note.size = 4
        tar.addfile(note, io.BytesIO(b"0 1\n"))
        for member in extra_members:
            payload = b"" if member.issym() else b"evil"
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
    return archive, "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and counts GET requests on the server object."""

    timeout = SERVER_TIMEOUT_S

    def do_GET(self):  # noqa: N802 (http.server's method name)
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass  # keep pytest output clean


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 (free port) serving ``tmp_path/www``."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(CountingHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.requests = []
    httpd.root = root
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=SERVER_TIMEOUT_S)
    assert not thread.is_alive()


def staging_left(cache: Path) -> list[Path]:
    return list((cache / "bsds300").glob(".extract-*"))


def test_fetch_bsds300_downloads_once_and_extracts(server, tmp_path):
    archive, known_hash = build_bsds_tgz(server.root)
    cache = tmp_path / "cache"
    url = f"{server.url}/{archive.name}"
    root = downloads.fetch_bsds300(
        cache, url=url, known_hash=known_hash, progress=False
    )
    assert root == cache / "bsds300" / "BSDS300"
    train, test = (
        downloads.bsds300_train_folder(root),
        downloads.bsds300_test_folder(root),
    )
    assert sorted(p.name for p in train.iterdir()) == [
        "train0.jpg",
        "train1.jpg",
        "train2.jpg",
    ]
    assert sorted(p.name for p in test.iterdir()) == ["test0.jpg", "test1.jpg"]
    assert images.read_image(train / "train1.jpg").shape == (32, 32, 3)
    assert (root / "iids_train.txt").is_file()
    assert server.requests == [f"/{archive.name}"]
    assert not staging_left(cache)
    # Second call: already extracted, no request at all.
    assert downloads.fetch_bsds300(cache, url=url, known_hash=known_hash) == root
    assert len(server.requests) == 1
    # Extraction lost but archive kept: re-extract from the verified archive.
    shutil.rmtree(root)
    again = downloads.fetch_bsds300(
        cache, url=url, known_hash=known_hash, progress=False
    )
    assert len(list(downloads.bsds300_train_folder(again).glob("*.jpg"))) == 3
    assert len(server.requests) == 1


def test_fetch_bsds300_interrupted_extraction_is_not_complete(server, tmp_path):
    # A crash during extraction leaves a staging folder and no marker: the next call
    # extracts again instead of trusting a half-written folder.
    archive, known_hash = build_bsds_tgz(server.root)
    cache = tmp_path / "cache"
    url = f"{server.url}/{archive.name}"
    partial = cache / "bsds300" / "BSDS300" / "images" / "train"
    partial.mkdir(parents=True)
    (cache / "bsds300" / ".extract-crashed").mkdir()
    root = downloads.fetch_bsds300(
        cache, url=url, known_hash=known_hash, progress=False
    )
    assert len(list(downloads.bsds300_train_folder(root).glob("*.jpg"))) == 3
    assert len(list(downloads.bsds300_test_folder(root).glob("*.jpg"))) == 2


def test_fetch_bsds300_wrong_hash_is_refused(server, tmp_path):
    archive, actual = build_bsds_tgz(server.root)
    cache = tmp_path / "cache"
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ValueError, match="checksum mismatch") as info:
        downloads.fetch_bsds300(
            cache, url=f"{server.url}/{archive.name}", known_hash=wrong, progress=False
        )
    message = str(info.value)
    assert "\n" not in message
    assert downloads.BSDS300_ARCHIVE in message
    assert wrong in message and actual in message
    assert "check the network" in message and "by hand" in message
    # The bad file is not kept and nothing is extracted.
    assert not (cache / "bsds300" / downloads.BSDS300_ARCHIVE).exists()
    assert not (cache / "bsds300" / "BSDS300").exists()
    assert not (cache / "bsds300" / ".extracted").exists()
    assert not staging_left(cache)


@pytest.mark.parametrize(
    "name", ["../evil.jpg", "BSDS300/images/train/../../../../evil.jpg", "/tmp/x.jpg"]
)
def test_fetch_bsds300_refuses_unsafe_members(server, tmp_path, name):
    archive, known_hash = build_bsds_tgz(server.root, [tarfile.TarInfo(name)])
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="unsafe path"):
        downloads.fetch_bsds300(
            cache,
            url=f"{server.url}/{archive.name}",
            known_hash=known_hash,
            progress=False,
        )
    assert not (cache / "bsds300" / "BSDS300").exists()
    assert not (cache / "bsds300" / ".extracted").exists()
    assert not staging_left(cache)
    assert not list(tmp_path.rglob("evil.jpg"))


def test_fetch_bsds300_skips_links(server, tmp_path):
    link = tarfile.TarInfo("BSDS300/images/train/link.jpg")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    archive, known_hash = build_bsds_tgz(server.root, [link])
    root = downloads.fetch_bsds300(
        tmp_path / "cache",
        url=f"{server.url}/{archive.name}",
        known_hash=known_hash,
        progress=False,
    )
    assert not (root / "images" / "train" / "link.jpg").is_symlink()
    assert not (root / "images" / "train" / "link.jpg").exists()


def test_fetch_bsds300_offline_says_where_to_put_the_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    # A port that was just free: connecting to it is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="could not download") as info:
        downloads.fetch_bsds300(
            cache, url=f"http://127.0.0.1:{port}/x.tgz", progress=False
        )
    message = str(info.value)
    assert "\n" not in message
    assert "by hand" in message
    assert str(cache / "bsds300" / downloads.BSDS300_ARCHIVE) in message
    assert downloads.BSDS300_HASH in message


def test_fetch_bsds300_uses_a_manually_placed_archive(tmp_path):
    archive, known_hash = build_bsds_tgz(tmp_path / "download")
    target = tmp_path / "cache" / "bsds300"
    target.mkdir(parents=True)
    (target / downloads.BSDS300_ARCHIVE).write_bytes(archive.read_bytes())
    # Port 9 (discard) on 127.0.0.1 is never contacted: the placed file verifies.
    root = downloads.fetch_bsds300(
        tmp_path / "cache", url="http://127.0.0.1:9/x.tgz", known_hash=known_hash
    )
    assert len(list(downloads.bsds300_test_folder(root).glob("*.jpg"))) == 2


def test_fetch_bsds300_file_url_and_bad_hash_string(tmp_path):
    archive, known_hash = build_bsds_tgz(tmp_path / "download")
    root = downloads.fetch_bsds300(
        tmp_path / "cache", url=archive.as_uri(), known_hash=known_hash
    )
    assert len(list(downloads.bsds300_train_folder(root).glob("*.jpg"))) == 3
    with pytest.raises(ValueError, match="'nohash:12'"):
        downloads.fetch_bsds300(
            tmp_path / "c2", url=archive.as_uri(), known_hash="nohash:12"
        )


def test_bsds300_folders_need_the_extracted_layout(tmp_path):
    with pytest.raises(ValueError, match="fetch_bsds300"):
        downloads.bsds300_train_folder(tmp_path)
    with pytest.raises(ValueError, match="test"):
        downloads.bsds300_test_folder(tmp_path)


def test_bsds300_constants_pin_the_berkeley_archive():
    assert downloads.BSDS300_URL.endswith("/" + downloads.BSDS300_ARCHIVE)
    assert downloads.BSDS300_URL.startswith("https://www2.eecs.berkeley.edu/")
    algorithm, digest = downloads.BSDS300_HASH.split(":")
    assert algorithm == "sha256" and len(digest) == 64


def test_fetch_trusts_an_extraction_of_the_same_checksum_only(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    archive, known_hash = build_bsds_tgz(tmp_path / "download")
    cache = tmp_path / "cache"
    root = downloads.fetch_bsds300(cache, url=archive.as_uri(), known_hash=known_hash)
    assert (cache / "bsds300" / ".extracted").read_text().strip() == known_hash
    # Another checksum is another archive: the extraction is not taken for it.
    (cache / "bsds300" / downloads.BSDS300_ARCHIVE).unlink()
    other = "sha256:" + "1" * 64
    with pytest.raises(ValueError, match="could not download"):
        downloads.fetch_bsds300(
            cache, url="http://127.0.0.1:9/x.tgz", known_hash=other, progress=False
        )
    assert root.is_dir()


@pytest.mark.parametrize("fetch", [downloads.fetch_voc2007, downloads.fetch_bsds300])
def test_an_unreadable_tar_file_is_one_line(tmp_path, fetch):
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"this is not a tar file" * 100)
    known_hash = "sha256:" + hashlib.sha256(broken.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="not a readable tar file") as info:
        fetch(tmp_path / "cache", url=broken.as_uri(), known_hash=known_hash)
    message = str(info.value)
    assert "\n" not in message and "download it again" in message
    assert not list((tmp_path / "cache").rglob(".extract-*"))
    assert not list((tmp_path / "cache").rglob(".extracted"))


def test_both_data_sets_name_the_received_digest(tmp_path):
    payload = tmp_path / "archive.tar"
    payload.write_bytes(b"not the data set")
    received = hashlib.md5(payload.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="checksum mismatch") as info:
        downloads.fetch_voc2007(
            tmp_path / "cache", url=payload.as_uri(), known_hash="md5:" + "0" * 32
        )
    message = str(info.value)
    assert f"md5:{received}" in message and "\n" not in message
    assert downloads.VOC2007_ARCHIVE in message
