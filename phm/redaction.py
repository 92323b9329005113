"""Error texts without the server's file layout.

Job errors (file ingestion, detector and diagnoser training, diagnoses) are shown to users in the
API and on pages; an exception text such as ``No such file or directory:
'/srv/phm/var/media/uploads/2026/03/export.csv'`` would tell them where the server keeps its data
(and its keys). Paths under the data, media and code folders become relative names; any other
absolute path becomes its file name. A password inside a webhook URL is shown masked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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


#: What a password inside a URL (``https://user:password@host/``) is shown as.
URL_PASSWORD_MASK = "********"


def redact_url(url: str) -> str:
    """``url`` with the password of its user-info part replaced by URL_PASSWORD_MASK."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{URL_PASSWORD_MASK}@{hostport}"))


def restore_url_password(new: str, old: str | None) -> str:
    """``new`` with a masked password taken from ``old`` (an update that sends the shown URL back)."""
    parts = urlsplit(new)
    if parts.password != URL_PASSWORD_MASK:
        return new
    old_password = urlsplit(old).password if old else None
    if old_password is None:
        raise ValueError(f"the URL's password {URL_PASSWORD_MASK!r} stands for a stored one, but none is stored; send the value")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:{old_password}@{hostport}"))
