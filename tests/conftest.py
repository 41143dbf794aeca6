"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """Folder of real raw files (`ntu/*.skeleton`, `pku/*.txt`): the only real data tests have.

    Byte-exact copies of /work/shared/fixtures (see fixtures/README.md); read-only by convention,
    tests copy what they modify into `tmp_path`.
    """
    return FIXTURES
