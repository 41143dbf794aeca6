"""ARCHITECTURE.md is the map of the tree: it names every module under skelctl/, and every module
path it names exists, so neither can change without the other."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAP = (REPO / "ARCHITECTURE.md").read_text()
NAMED = set(re.findall(r"`(skelctl/[\w/]+\.py)[`:(]", MAP))


def test_every_module_is_named_in_the_architecture_map() -> None:
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "skelctl").rglob("*.py")}
    assert len(modules) > 90
    assert sorted(modules - NAMED) == []


def test_every_module_the_map_names_exists() -> None:
    assert len(NAMED) > 90
    assert sorted(p for p in NAMED if not (REPO / p).is_file()) == []


def test_the_map_points_at_nothing_outside_the_repository() -> None:
    assert "../" not in MAP
