"""Permissions of the files the server keeps under ``PHM_DATA_ROOT`` (``var/``).

The folder holds the secret key, the SQLite database (password hashes, API tokens, webhook
secrets), uploads and the task queue: nobody but the server's own user needs to read it. It is
created 0700 and the database file kept 0600 (SQLite creates it with the process umask,
usually 0644, and its -wal/-shm companions follow the database's mode).
"""

from __future__ import annotations

import os
from pathlib import Path


def private_folder(path: Path) -> Path:
    """Create ``path`` (and parents) and make it owner-only (0700)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(path, 0o700)
    except PermissionError:  # a folder owned by someone else (a mounted volume): leave it, it is theirs to set
        pass
    return path


def secure_sqlite_file(path: Path) -> None:
    """Make the database file and its WAL companions owner-only (0600); missing files are skipped."""
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            os.chmod(candidate, 0o600)
        except (FileNotFoundError, PermissionError):
            pass


def _on_connection_created(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        name = str(connection.settings_dict.get("NAME") or "")
        if name and name != ":memory:" and not name.startswith("file:"):
            secure_sqlite_file(Path(name))


def keep_sqlite_private() -> None:
    """Chmod the SQLite files on every new connection: the first one creates the file, and a
    copy restored from a backup may come back 0644."""
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection_created, dispatch_uid="phm.files.keep_sqlite_private")
