"""Confining connector file access to configured folders.

A connector definition names a file or a folder; whoever may save a definition would otherwise
be able to read (and, for folder connectors, move) any file the server can. These helpers resolve
a path the way the operating system will open it (symlinks followed, ``..`` collapsed) and check
it against allowed roots, so ``/etc/passwd``, ``var/secret_key``, ``roots/../x`` and a symlink
that points out of a root are all refused with the same clear reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path


class PathNotAllowed(ValueError):
    """A path outside the allowed roots; the text names the field, the path and the roots."""


def resolve(path: str | os.PathLike) -> Path:
    """Absolute path with every symlink and ``..`` resolved; missing tails are kept as written
    (a log file or inbox that does not exist yet is still checked against its real parent)."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def resolve_roots(roots: Iterable[str | os.PathLike]) -> tuple[Path, ...]:
    return tuple(resolve(root) for root in roots)


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path`` (resolved) is ``root`` (resolved) or lies below it."""
    return resolve(path).is_relative_to(resolve(root))


def confine(path: str | os.PathLike, roots: Sequence[str | os.PathLike], *, field: str) -> Path:
    """The resolved ``path`` when it lies inside one of ``roots``; otherwise PathNotAllowed
    naming ``field``. An empty ``roots`` allows nothing."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise PathNotAllowed(f"{field}: a path is required")
    if "\x00" in os.fspath(path):
        raise PathNotAllowed(f"{field}: the path contains a NUL character")
    resolved = resolve(path)
    allowed = resolve_roots(roots)
    if any(resolved.is_relative_to(root) for root in allowed):
        return resolved
    where = ", ".join(str(root) for root in allowed) or "none configured"
    shown = str(resolved) if os.fspath(path) == str(resolved) else f"{os.fspath(path)} (resolves to {resolved})"
    raise PathNotAllowed(f"{field}: {shown} is outside the allowed connector roots ({where}); set PHM_CONNECTOR_ROOTS to allow a folder")


class FolderGuard:
    """Keeps a folder connector (images, historian files) inside its own folder: the folder must
    lie inside the roots, every file it reads and every place it moves or writes a file to must
    resolve inside the folder. A symlink dropped in the inbox (to ``/etc/passwd``, or a
    ``rejected`` link to ``/etc``) is left alone instead of being read or moved through."""

    def __init__(self, directory: str | os.PathLike, roots: Sequence[str | os.PathLike] | None = None, *, field: str = "directory"):
        self.directory = Path(directory)
        self.roots = tuple(roots) if roots is not None else None
        self.field = field

    def check_folder(self) -> Path:
        """The resolved folder; PathNotAllowed when it (no longer) lies inside the roots."""
        if self.roots is None:
            return resolve(self.directory)
        return confine(self.directory, self.roots, field=self.field)

    def owns(self, path: str | os.PathLike) -> bool:
        """Whether ``path``, with symlinks followed, lies inside the folder."""
        return is_inside(path, self.directory)

    def target(self, path: str | os.PathLike) -> Path:
        """``path`` when it is a place inside the folder to move or write to; otherwise PathNotAllowed."""
        if not self.owns(Path(path).parent):
            raise PathNotAllowed(f"{self.field}: {path} resolves to {resolve(Path(path).parent)}, outside the connector's folder {resolve(self.directory)}")
        return Path(path)
