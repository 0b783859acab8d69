"""docs/configuration.md is generated from the declarations and must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stalwart.config import REGISTRY
from stalwart.config.docs import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_committed_reference_is_current():
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: run "
        "`python -m stalwart.config.docs > docs/configuration.md`")


def test_every_setting_appears_in_the_reference():
    text = render()
    for setting in REGISTRY:
        assert f"### `{setting.key}`" in text


def test_module_entry_point_prints_the_reference():
    out = subprocess.run([sys.executable, "-m", "stalwart.config.docs"], check=True,
                         capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out == render()
