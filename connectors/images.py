"""Inspection images: validation by a real decode (Pillow), size/type limits, thumbnails, and a
watched folder that turns dropped JPEG/PNG files into :class:`ImageRecord` s.

Validation never trusts the file name or the declared type: the bytes are opened and fully
decoded, so a truncated upload or a renamed PDF is refused with the reason. Pixel count is
checked from the header before decoding, so a decompression bomb is refused cheaply.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from connectors.base import Connector
from connectors.paths import FolderGuard, PathNotAllowed
from connectors.records import ImageRecord
from connectors.sink import Sink

MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
SUFFIXES = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; the text says why."""


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 60_000_000  # about 8K x 7K; bigger is a camera dump or a decompression bomb
    min_side: int = 8
    media_types: tuple[str, ...] = ("image/jpeg", "image/png")

    @classmethod
    def from_dict(cls, config: Mapping) -> ImageLimits:
        values = dict(config)
        if "media_types" in values:
            values["media_types"] = tuple(values["media_types"])
        return cls(**values)


@dataclass(frozen=True)
class ImageInfo:
    media_type: str
    width: int
    height: int
    taken_at: datetime | None  # EXIF DateTimeOriginal, when the camera wrote one


def validate_image(content: bytes, limits: ImageLimits = ImageLimits(), *, exif_timezone: str = "UTC") -> ImageInfo:
    """Decode ``content`` completely and check it against ``limits``; raises ImageRejected."""
    if not content:
        raise ImageRejected("empty file")
    if len(content) > limits.max_bytes:
        raise ImageRejected(f"{len(content)} bytes exceeds the limit of {limits.max_bytes}")
    try:
        with Image.open(io.BytesIO(content)) as image:
            media_type = MEDIA_TYPES.get(image.format or "")
            if media_type is None or media_type not in limits.media_types:
                raise ImageRejected(f"type {image.format} is not allowed; allowed: {', '.join(limits.media_types)}")
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageRejected(f"{width}x{height} pixels exceeds the limit of {limits.max_pixels}")
            if min(width, height) < limits.min_side:
                raise ImageRejected(f"{width}x{height} is smaller than {limits.min_side} pixels on a side")
            taken_at = _exif_time(image, exif_timezone)
            image.load()  # the real decode: truncated or corrupt data fails here
    except ImageRejected:
        raise
    except UnidentifiedImageError as exc:
        raise ImageRejected("not an image Pillow can identify (JPEG or PNG expected)") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRejected(f"image data is corrupt or truncated: {exc}") from exc
    return ImageInfo(media_type, width, height, taken_at)


def _exif_time(image: Image.Image, zone: str) -> datetime | None:
    try:
        exif = image.getexif()
        text = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
        if not text:
            return None
        return datetime.strptime(str(text).strip("\x00 "), "%Y:%m:%d %H:%M:%S").replace(tzinfo=ZoneInfo(zone))
    except (ValueError, KeyError, TypeError, OSError):
        return None  # a broken EXIF block does not make the picture unusable


def make_thumbnail(content: bytes, *, max_side: int = 256, fmt: str = "JPEG", quality: int = 85) -> bytes:
    """A thumbnail of at most ``max_side`` pixels on the long side, rotated upright by EXIF."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    if fmt not in ("JPEG", "PNG", "WEBP"):
        raise ValueError(f"thumbnail format {fmt!r} not supported")
    with Image.open(io.BytesIO(content)) as image:
        image = ImageOps.exif_transpose(image)
        image.thumbnail((max_side, max_side))
        if fmt == "JPEG" and image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        out = io.BytesIO()
        image.save(out, format=fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
        return out.getvalue()


def image_record(
    content: bytes,
    *,
    source: str,
    ts: datetime | None = None,
    filename: str | None = None,
    metadata: Mapping | None = None,
    limits: ImageLimits = ImageLimits(),
) -> ImageRecord:
    """Validate and build the record. ``ts`` defaults to the EXIF capture time, else now."""
    info = validate_image(content, limits)
    when = ts or info.taken_at or datetime.now(timezone.utc)
    if when.tzinfo is None:
        raise ImageRejected("timestamp has no time zone")
    meta = {"width": info.width, "height": info.height, **(metadata or {})}
    return ImageRecord(source=source, ts=when, content=content, media_type=info.media_type, metadata=meta, filename=filename)


class WatchedFolderSource(Connector):
    """Picks up JPEG/PNG files dropped in ``directory``.

    The equipment is the name of the first-level subfolder (``inbox/P-101/img.jpg`` -> ``P-101``)
    or ``source`` for files at the top. A file is taken once its size has not changed for
    ``settle_s`` (so half-copied files wait). Stored files move to ``done/``, refused ones to
    ``rejected/`` next to a ``<name>.reason.txt``; when the sink is down the file stays and is
    retried on the next scan. With ``roots`` the folder must lie inside one of them; either way a
    file that resolves outside the folder (a symlink) is neither read nor moved.
    """

    kind = "image_folder"

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        directory: str | Path,
        source: str | None = None,
        limits: ImageLimits = ImageLimits(),
        poll_interval_s: float = 2.0,
        settle_s: float = 1.0,
        roots: Sequence[str | Path] | None = None,
        **kwargs,
    ):
        super().__init__(name, sink, **kwargs)
        self.directory = Path(directory)
        self.guard = FolderGuard(self.directory, roots)
        self._refused: set[Path] = set()
        self.source = source
        self.limits = limits
        self.poll_interval_s = poll_interval_s
        self.settle_s = settle_s
        self.done_dir = self.directory / "done"
        self.rejected_dir = self.directory / "rejected"
        self._sizes: dict[Path, tuple[int, float]] = {}

    def run(self, stop: threading.Event) -> None:
        self.set_state("running", connected=True)
        try:
            while not stop.is_set():
                try:
                    self.scan()
                except (OSError, PathNotAllowed) as exc:
                    self.note_error(exc)
                stop.wait(self.poll_interval_s)
        finally:
            self.set_state("stopped", connected=False)

    def scan(self) -> int:
        """Process every settled file once; returns how many were stored."""
        self.guard.check_folder()
        self.directory.mkdir(parents=True, exist_ok=True)
        stored = 0
        for path in sorted(self._candidates()):
            if not self.guard.owns(path):
                self._refuse_foreign(path)
                continue
            if not self._settled(path):
                continue
            stored += self._process(path)
        return stored

    def _candidates(self):
        for path in self.directory.rglob("*"):
            if not path.is_file() or path.name.endswith(".reason.txt"):
                continue
            relative = path.relative_to(self.directory)
            if relative.parts[0] in ("done", "rejected") or len(relative.parts) > 2:
                continue
            yield path

    def _refuse_foreign(self, path: Path) -> None:
        """A link out of the folder: report it once, leave it where it is (moving it could move
        the file it points to, reading it would ingest a file from elsewhere)."""
        if path not in self._refused:
            self._refused.add(path)
            self.note_error(f"{path.relative_to(self.directory)}: links outside the folder {self.directory}; left alone")

    def _settled(self, path: Path) -> bool:
        stat = path.stat()
        previous = self._sizes.get(path)
        now = time.monotonic()
        if previous is None or previous[0] != stat.st_size:
            self._sizes[path] = (stat.st_size, now)
            return self.settle_s <= 0
        return now - previous[1] >= self.settle_s

    def _source_for(self, path: Path) -> str | None:
        relative = path.relative_to(self.directory)
        return relative.parts[0] if len(relative.parts) == 2 else self.source

    def _process(self, path: Path) -> int:
        self.note_messages()
        relative = path.relative_to(self.directory)
        source = self._source_for(path)
        try:
            if path.suffix.lower() not in SUFFIXES:
                raise ImageRejected(f"suffix {path.suffix!r} is not .jpg/.jpeg/.png")
            if source is None:
                raise ImageRejected("file is not in an equipment subfolder and no default source is set")
            content = path.read_bytes()
            mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
            info = validate_image(content, self.limits)
            record = ImageRecord(
                source=source,
                ts=info.taken_at or mtime,
                content=content,
                media_type=info.media_type,
                metadata={"width": info.width, "height": info.height, "path": str(relative)},
                filename=path.name,
            )
        except ImageRejected as exc:
            self.quarantine(str(relative), str(exc))
            self._move(path, self.rejected_dir / relative, reason=str(exc))
            return 0
        try:
            result = self.deliver_images([record], origin=str(relative))
        except Exception as exc:  # sink down (and no spool): leave the file for the next scan
            self.note_error(exc)
            return 0
        self._move(path, self.done_dir / relative)
        return result.accepted

    def _move(self, path: Path, target: Path, *, reason: str | None = None) -> None:
        self.guard.target(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target = target.with_name(f"{target.stem}-{int(time.time() * 1000)}{target.suffix}")
        shutil.move(str(path), target)
        if reason is not None:
            target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
        self._sizes.pop(path, None)
