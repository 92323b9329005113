"""Dispatch ``python -m models.evaluate <harness> [options]`` to ``models.evaluate.<harness>``."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import models.evaluate as package


def available_harnesses() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    harnesses = available_harnesses()
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: python -m models.evaluate {" + ",".join(harnesses) + "} [options]")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in harnesses:
        print(f"unknown harness {name!r}; choose one of: {', '.join(harnesses)}", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"models.evaluate.{name}").main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
