"""Connector file access stays inside the configured roots and each folder connector inside its
own folder: ``/etc/passwd``, ``..`` and symlinks out are refused, nothing outside is read or moved."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from connectors.file_folder import HistorianFolderSource
from connectors.files import FileSpec
from connectors.images import WatchedFolderSource
from connectors.logs import LogFileFollower, MemoryOffsetStore
from connectors.paths import PathNotAllowed, confine
from connectors.sink import MemorySink


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_confine_accepts_a_path_inside_a_root(tmp_path):
    assert confine(tmp_path / "plc.log", [tmp_path], field="path") == (tmp_path / "plc.log").resolve()


@pytest.mark.parametrize("path", ["/etc/passwd", "{root}/../secret_key", "{root}/sub/../../secret_key", "relative/plc.log"])
def test_confine_refuses_paths_outside_naming_the_field_and_roots(tmp_path, path):
    root = tmp_path / "connectors"
    root.mkdir()
    with pytest.raises(PathNotAllowed) as error:
        confine(path.format(root=root), [root], field="path")
    assert str(error.value).startswith("path: ") and str(root) in str(error.value)


def test_confine_refuses_a_symlink_that_points_out_of_the_root(tmp_path):
    root, outside = tmp_path / "connectors", tmp_path / "secret_key"
    root.mkdir()
    outside.write_text("s3cr3t")
    (root / "plc.log").symlink_to(outside)
    with pytest.raises(PathNotAllowed, match="resolves to"):
        confine(root / "plc.log", [root], field="path")


def test_log_follower_checks_the_file_again_when_it_opens_it(tmp_path):
    """Saved while it was a plain file inside the root, replaced by a link to a secret later."""
    root, secret = tmp_path / "logs", tmp_path / "secret_key"
    root.mkdir()
    secret.write_text("2026-03-01T00:00:00Z ERROR the secret\n")
    (root / "plc.log").symlink_to(secret)
    sink = MemorySink()
    follower = LogFileFollower("plc", sink, path=root / "plc.log", offsets=MemoryOffsetStore(), roots=[root])
    with pytest.raises(PathNotAllowed):
        follower.read_available()
    assert sink.logs == []


def test_image_folder_neither_reads_nor_moves_a_link_out_of_its_folder(tmp_path):
    inbox, outside = tmp_path / "inbox", tmp_path / "elsewhere"
    (inbox / "P-101").mkdir(parents=True)
    outside.mkdir()
    (outside / "photo.jpg").write_bytes(jpeg())
    (outside / "passwd").write_text("root:x:0:0\n")
    (inbox / "P-101" / "photo.jpg").symlink_to(outside / "photo.jpg")
    (inbox / "P-101" / "passwd").symlink_to(outside / "passwd")
    sink = MemorySink()
    folder = WatchedFolderSource("img", sink, directory=inbox, roots=[tmp_path], settle_s=0)
    assert folder.scan() == 0
    assert (outside / "photo.jpg").exists() and (outside / "passwd").exists()
    assert (inbox / "P-101" / "photo.jpg").is_symlink() and not (inbox / "rejected").exists()
    assert not sink.images and not folder.quarantined
    assert "outside the folder" in folder.status().last_error


def test_image_folder_never_moves_a_refused_file_out_through_a_linked_rejected_folder(tmp_path):
    inbox, outside = tmp_path / "inbox", tmp_path / "elsewhere"
    (inbox / "P-101").mkdir(parents=True)
    outside.mkdir()
    (inbox / "rejected").symlink_to(outside, target_is_directory=True)
    (inbox / "P-101" / "bad.png").write_bytes(b"not a png")
    folder = WatchedFolderSource("img", MemorySink(), directory=inbox, roots=[tmp_path], settle_s=0)
    with pytest.raises(PathNotAllowed, match="outside the connector's folder"):
        folder.scan()
    assert (inbox / "P-101" / "bad.png").exists() and os.listdir(outside) == []


def test_image_folder_outside_the_roots_does_not_scan(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "P-101").mkdir(parents=True)
    (inbox / "P-101" / "photo.jpg").write_bytes(jpeg())
    folder = WatchedFolderSource("img", MemorySink(), directory=inbox, roots=[tmp_path / "connectors"], settle_s=0)
    with pytest.raises(PathNotAllowed, match="directory: "):
        folder.scan()
    assert (inbox / "P-101" / "photo.jpg").exists()


def test_historian_folder_ignores_a_link_out_of_its_folder(tmp_path):
    inbox, outside = tmp_path / "historian", tmp_path / "elsewhere"
    inbox.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text("ts,v\n2024-01-01T00:00:00Z,1\n")
    (inbox / "secret.csv").symlink_to(outside / "secret.csv")
    sink = MemorySink()
    folder = HistorianFolderSource("hist", sink, directory=inbox, spec=FileSpec(), roots=[tmp_path], settle_s=0)
    assert folder.scan() == 0
    assert not sink.readings and (outside / "secret.csv").exists() and not (inbox / "done").exists()
    assert "outside the folder" in folder.status().last_error
