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


@pytest.fixture(scope="session", autouse=True)
def settled_cpu_kernels() -> None:
    """Tests call augmentations and models directly, without the `resolve_device` every command
    starts with, so the session settles PyTorch's CPU math kernels itself (see
    `skelctl.engine.precision.settle_cpu_kernels`: without it, the first `cos` of a fresh
    process broke rotate's 1e-5 orthogonality check in about one CI run in ten)."""
    from skelctl.engine.precision import settle_cpu_kernels

    settle_cpu_kernels()
