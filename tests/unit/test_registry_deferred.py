"""Pool kinds started on demand are looked up in the master but imported by the worker."""

from __future__ import annotations

import subprocess
import sys

from stalwart.worker import registry


def test_deferred_kinds_are_found_not_imported_and_missing_ones_reported():
    code = """
import sys
from stalwart.worker import registry
registry.KINDS["ghost"] = "stalwart.protocols.ghost.server:serve"
kinds = registry.preload(["store", "imap", "ghost"], deferred=("imap", "ghost"))
print(sorted(kinds))
print(type(kinds["imap"]).__name__)
print("stalwart.protocols.imap.server" in sys.modules)
fn = kinds["imap"]
print(callable(fn))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["['imap',", "'store']", "Deferred", "False", "True"]
    assert "ghost" in out.stderr                      # reported as not in this build


def test_deferred_serve_imports_and_calls_the_real_one(monkeypatch):
    calls = []

    async def fake(ctx):
        calls.append(ctx)

    monkeypatch.setitem(registry.KINDS, "fake", "tests_fake_kind:serve")
    module = type(sys)("tests_fake_kind")
    module.serve = fake
    monkeypatch.setitem(sys.modules, "tests_fake_kind", module)
    deferred = registry.Deferred("fake")
    import asyncio
    asyncio.run(deferred("ctx"))
    assert calls == ["ctx"]
