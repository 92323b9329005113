"""Write-only secrets inside connector configs (broker passwords and the like).

A stored secret is never shown again: API responses and the admin form show ``MASK`` in its
place. An update that leaves the key out, or sends the mask back unchanged, keeps the stored
value; ``null`` removes it; any other value replaces it. So an engineer can edit a connector's
topics without knowing (or retyping) its password, and an operator reading the connector list
never sees it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

MASK = "********"
#: Config keys whose values are secrets, wherever they sit in the nested config.
SECRET_KEYS = frozenset({"password", "passwd", "secret", "client_secret", "token", "api_key", "apikey", "private_key", "passphrase"})


class SecretError(ValueError):
    """A config that sends the mask for a secret that is not stored; the text names the key."""


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and (key.lower() in SECRET_KEYS or key.lower().endswith(("_password", "_secret", "_token")))


def masked(config: Any) -> Any:
    """A copy of ``config`` with every non-empty secret value replaced by MASK."""
    if isinstance(config, Mapping):
        return {key: (MASK if is_secret_key(key) and value not in (None, "") else masked(value)) for key, value in config.items()}
    if isinstance(config, list):
        return [masked(item) for item in config]
    return config


def keep_secrets(new: Any, old: Any, *, path: str = "config") -> Any:
    """``new`` with each secret that is left out or sent back as MASK taken from ``old``."""
    if isinstance(new, list):
        old_items = old if isinstance(old, list) else []
        return [keep_secrets(item, old_items[i] if i < len(old_items) else None, path=f"{path}[{i}]") for i, item in enumerate(new)]
    if not isinstance(new, Mapping):
        return new
    old_map = old if isinstance(old, Mapping) else {}
    merged = {}
    for key, value in new.items():
        if is_secret_key(key) and value == MASK:
            if key not in old_map or old_map[key] in (None, ""):
                raise SecretError(f"{path}.{key}: {MASK!r} stands for a stored secret, but none is stored; send the value")
            merged[key] = old_map[key]
        else:
            merged[key] = keep_secrets(value, old_map.get(key), path=f"{path}.{key}")
    for key, value in old_map.items():
        if is_secret_key(key) and key not in new and value not in (None, ""):
            merged[key] = copy.deepcopy(value)  # left out: keep it
    return merged
