"""The API's JSON parser: DRF's, plus two checks on what it returns.

- **Nesting depth.** Python's decoder recurses once per level: 50,000 nested ``[`` raised
  RecursionError, which DRF does not catch (500). Deeper than ``PHM_API_MAX_JSON_DEPTH`` is a 400;
  no payload of this API nests more than a few levels.
- **Lone surrogates.** ``"\\ud800"`` is valid JSON but not valid Unicode; the string reached the
  database driver, which cannot encode it (500). Such a string is a 400 naming where it was.
  Only ``\\uD800``-``\\uDFFF`` escapes can produce one (raw bytes are decoded as UTF-8, which
  rejects surrogates), so the tree is searched only when the body contains such an escape.
"""

from __future__ import annotations

import codecs
import re


from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings
from rest_framework.utils import json  # DRF's wrapper: strict_constant refuses NaN / Infinity

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_CONTAINERS = (dict, list)


def too_deep(data: object, max_depth: int) -> bool:
    """Whether parsed JSON nests deeper than ``max_depth``: level by level over containers only
    (scalars are skipped by one type test each), iterative so it cannot run out of stack."""
    level, depth = [data], 1
    while level:
        if depth > max_depth:
            return True
        deeper: list = []
        for node in level:
            values = node.values() if type(node) is dict else node if type(node) is list else ()
            deeper += [value for value in values if type(value) in _CONTAINERS]
        level, depth = deeper, depth + 1
    return False


def _lone_surrogate_at(text: str) -> int | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def check_tree(data: object, *, max_depth: int, strings: bool) -> None:
    """Raise ParseError if ``data`` nests deeper than ``max_depth`` or (``strings``) holds a
    string that is not valid Unicode. Iterative, so it cannot itself run out of stack."""
    stack: list[tuple[object, int, str]] = [(data, 1, "$")]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, dict):
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            if strings and isinstance(node, str) and (at := _lone_surrogate_at(node)) is not None:
                raise ParseError(f"JSON string at {where} holds a lone surrogate (\\u{ord(node[at]):04x}) at character {at}: not valid Unicode")
            continue
        if depth > max_depth:
            raise ParseError(f"JSON nests deeper than {max_depth} levels at {where} (PHM_API_MAX_JSON_DEPTH)")
        for key, value in items:
            if strings and isinstance(key, str) and _lone_surrogate_at(key) is not None:
                raise ParseError(f"JSON key at {where} holds a lone surrogate: not valid Unicode")
            if isinstance(value, dict | list) or (strings and isinstance(value, str)):
                stack.append((value, depth + 1, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]"))


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        limit = settings.PHM_API_MAX_JSON_DEPTH
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(text, parse_constant=json.strict_constant if api_settings.STRICT_JSON else None)
        except RecursionError:
            raise ParseError(f"JSON nests too deeply (more than {limit} levels are refused)") from None
        except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
            raise ParseError(f"JSON parse error - {exc}") from None
        if too_deep(data, limit):
            raise ParseError(f"JSON nests deeper than {limit} levels (PHM_API_MAX_JSON_DEPTH)")
        if _SURROGATE_ESCAPE.search(text):
            check_tree(data, max_depth=limit, strings=True)
        return data
