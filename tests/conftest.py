"""Shared pytest fixtures (shared functions are in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_tiny_dataset

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """Folder of real raw files (`ntu/*.skeleton`, `pku/*.txt`): the only real data tests have.

    Byte-exact copies of /work/shared/fixtures (see fixtures/README.md); read-only by convention,
    tests copy what they modify into `tmp_path`.
    """
    return FIXTURES


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 4-class ntu25 dataset (`write_tiny_dataset`) for evaluation tests: 32 training
    clips, 16 test clips. Read-only by convention."""
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny.h5", per_class_train=8,
                              per_class_test=4)


@pytest.fixture(scope="module")
def tiny_pretrain_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of dataset for pretraining tests: 24 training clips (3 steps per epoch at
    batch 8), 24 test clips. Read-only by convention."""
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny.h5", per_class_train=6,
                              per_class_test=6)


@pytest.fixture(scope="session", autouse=True)
def settled_cpu_kernels() -> None:
    """Tests call augmentations and models directly, without the `resolve_device` every command
    starts with, so the session settles PyTorch's CPU math kernels itself (see
    `skelctl.engine.precision.settle_cpu_kernels`: without it, the first `cos` of a fresh
    process broke rotate's 1e-5 orthogonality check in about one CI run in ten)."""
    from skelctl.engine.precision import settle_cpu_kernels

    settle_cpu_kernels()
