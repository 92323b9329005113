"""Error texts without the server's file layout.

Job errors (file ingestion, detector and diagnoser training, diagnoses) are shown to users in the
API and on pages; an exception text such as ``No such file or directory:
'/srv/phm/var/media/uploads/2026/03/export.csv'`` would tell them where the server keeps its data
(and its keys). Paths under the data, media and code folders become relative names; any other
absolute path becomes its file name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings

#: An absolute path not part of a URL (``http://host/x``) or of a relative path (``a/b``).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s'\"`,;:()\[\]{}<>/]+/)*[^\s'\"`,;:()\[\]{}<>/]*")


def _roots() -> list[str]:
    roots: set[str] = set()
    for name in ("MEDIA_ROOT", "DATA_ROOT", "STATIC_ROOT", "BASE_DIR"):
        value = getattr(settings, name, None)
        if value:
            roots.update({str(Path(value)), os.path.realpath(value)})
    return sorted((root.rstrip("/") for root in roots if root not in ("", "/")), key=len, reverse=True)


def strip_server_paths(text: str) -> str:
    for root in _roots():
        text = text.replace(root + "/", "")
    return _ABSOLUTE_PATH.sub(lambda match: os.path.basename(match.group(0).rstrip("/")) or "/", text)


def job_error(exc: BaseException) -> str:
    """``"<ExceptionType>: <message>"`` with server paths stripped: what a job row stores."""
    return f"{type(exc).__name__}: {strip_server_paths(str(exc))}"
