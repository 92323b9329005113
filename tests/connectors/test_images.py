from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from PIL import Image

from connectors.images import (
    ImageLimits,
    ImageRejected,
    WatchedFolderSource,
    image_record,
    make_thumbnail,
    validate_image,
)
from connectors.sink import MemorySink


def picture(fmt: str = "JPEG", size=(640, 480), exif_time: str | None = None) -> bytes:
    image = Image.new("RGB", size, (120, 60, 30))
    out = io.BytesIO()
    kwargs = {}
    if exif_time:
        exif = Image.Exif()
        exif[0x0132] = exif_time  # DateTime
        kwargs["exif"] = exif
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def test_valid_jpeg_and_png_are_decoded_and_typed_by_content():
    assert validate_image(picture("JPEG")).media_type == "image/jpeg"
    info = validate_image(picture("PNG", (100, 50)))
    assert (info.media_type, info.width, info.height) == ("image/png", 100, 50)


def test_truncated_image_is_rejected_by_the_real_decode():
    data = picture("PNG", (300, 300))
    with pytest.raises(ImageRejected, match="corrupt or truncated"):
        validate_image(data[: len(data) // 2])


def test_non_image_and_disallowed_type_are_rejected():
    with pytest.raises(ImageRejected, match="not an image"):
        validate_image(b"%PDF-1.4 not a picture")
    gif = io.BytesIO()
    Image.new("RGB", (20, 20)).save(gif, format="GIF")
    with pytest.raises(ImageRejected, match="GIF is not allowed"):
        validate_image(gif.getvalue())


def test_size_and_pixel_limits():
    with pytest.raises(ImageRejected, match="bytes exceeds"):
        validate_image(picture(), ImageLimits(max_bytes=100))
    with pytest.raises(ImageRejected, match="pixels exceeds"):
        validate_image(picture(size=(400, 400)), ImageLimits(max_pixels=100_000))


def test_thumbnail_keeps_aspect_ratio_within_the_bound():
    thumb = make_thumbnail(picture(size=(1000, 500)), max_side=128)
    with Image.open(io.BytesIO(thumb)) as image:
        assert image.format == "JPEG" and image.size == (128, 64)


def test_record_takes_the_exif_time_when_no_time_is_given():
    record = image_record(picture(exif_time="2024:05:01 10:00:00"), source="P-101")
    assert record.ts == datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
    assert record.metadata["width"] == 640


def test_watched_folder_stores_settled_images_and_rejects_bad_ones_with_reason(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "P-101").mkdir(parents=True)
    (inbox / "P-101" / "a.jpg").write_bytes(picture())
    (inbox / "P-101" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    sink = MemorySink()
    folder = WatchedFolderSource("imgs", sink, directory=inbox, settle_s=0)
    assert folder.scan() == 1
    assert [(r.source, r.filename, r.media_type) for r in sink.images] == [("P-101", "a.jpg", "image/jpeg")]
    assert (inbox / "done" / "P-101" / "a.jpg").exists()
    assert (inbox / "rejected" / "P-101" / "broken.png").exists()
    assert "corrupt or truncated" in (inbox / "rejected" / "P-101" / "broken.png.reason.txt").read_text()
    assert folder.status().rejected == 1
    assert folder.scan() == 0  # nothing is taken twice


def test_watched_folder_waits_for_a_file_to_settle(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "P-1").mkdir(parents=True)
    (inbox / "P-1" / "a.png").write_bytes(picture("PNG"))
    sink = MemorySink()
    folder = WatchedFolderSource("imgs", sink, directory=inbox, settle_s=0.2)
    assert folder.scan() == 0  # first sight: size just seen
    import time

    time.sleep(0.25)
    assert folder.scan() == 1
