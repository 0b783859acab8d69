"""List or run the benchmarks.

    python -m bench                 list them
    python -m bench NAME [ARGS...]  run one (NAME as listed, e.g. micro.mime)

A benchmark is any module under ``bench/micro`` or ``bench/macro`` with a ``main(argv)``
function; the first line of its docstring is its description.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench

GROUPS = ("micro", "macro")


def discover() -> dict[str, str]:
    """{"group.module": first docstring line} for every benchmark module."""
    found = {}
    for group in GROUPS:
        package = importlib.import_module(f"bench.{group}")
        for info in pkgutil.iter_modules(package.__path__):
            if info.ispkg or info.name.startswith("_"):
                continue
            name = f"{group}.{info.name}"
            module = importlib.import_module(f"bench.{name}")
            if callable(getattr(module, "main", None)):
                found[name] = ((module.__doc__ or "").strip().splitlines() or [""])[0]
    return found


def main(argv: list[str]) -> int:
    benchmarks = discover()
    if not argv or argv[0] in ("-h", "--help", "list"):
        print(bench.__doc__.strip().splitlines()[0])
        for name, doc in sorted(benchmarks.items()):
            print(f"  {name:<24} {doc}")
        print("run one with: python -m bench NAME [ARGS...]")
        return 0
    name = argv[0].removeprefix("bench.")
    if name not in benchmarks:
        print(f"unknown benchmark {argv[0]!r}; known: {', '.join(sorted(benchmarks))}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
