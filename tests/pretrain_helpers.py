"""Tiny datasets and CLI runners shared by the pretraining tests (engine, checkpoints, DDP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from skelctl.data.layout import get_layout
from skelctl.data.store import DatasetWriter

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES = 4
# each class moves a different body part; the pose is otherwise a fixed random skeleton
MOVING_PART = ("arm_left", "arm_right", "leg_left", "trunk")


def write_tiny_dataset(path: Path, per_class_train: int = 12, per_class_test: int = 6, seed: int = 0) -> Path:
    """An ntu25 dataset (xsub split) of 4 classes that differ in which body part oscillates."""
    layout = get_layout("ntu25")
    rng = np.random.default_rng(seed)
    rest = rng.normal(0, 0.3, (1, 2, layout.num_joints, 3)).astype(np.float32)
    rest[:, 1] = 0  # a single actor; the second body is absent (zeros)
    train, test = [], []
    with DatasetWriter(path, "ntu60", layout, [f"class {c}" for c in range(NUM_CLASSES)],
                       list(range(1, NUM_CLASSES + 1)), {"synthetic": "pretrain tests"}) as writer:
        for c in range(NUM_CLASSES):
            joints = list(layout.parts[MOVING_PART[c]])
            for i in range(per_class_train + per_class_test):
                t = int(rng.integers(20, 48))
                phase = rng.uniform(0, 2 * np.pi)
                wave = np.sin(np.linspace(0, 4 * np.pi, t) + phase).astype(np.float32)
                clip = np.repeat(rest, t, axis=0) + rng.normal(0, 0.02, (t, 2, layout.num_joints, 3)).astype(np.float32)
                clip[:, 1] = 0
                clip[:, 0, joints, 1] += 0.5 * wave[:, None]
                index = writer.add(f"c{c}_{i}", clip, c, subject=i)
                (train if i < per_class_train else test).append(index)
        writer.set_split("xsub", train, test)
    return path


def tiny_overrides(**extra: object) -> list[str]:
    """A SkeleMixCLR+ small enough for a test: a narrow ST-GCN, 32 frames, batch 8, queue 64."""
    base = {
        "method.encoder_kwargs": {"base_channels": 4, "feature_dim": 32},
        "data.frames": 32, "train.batch_size": 8, "train.epochs": 2, "train.log_every": 1,
        "train.precision": "fp32", "train.device": "cpu", "train.knn_every": 0,
        "method.moco.queue_size": 64, "method.skelemix.repeat": 1,
        "method.skelemix.feature_frames": [3, 5],
    }
    base.update(extra)
    items = []
    for key, value in base.items():
        items += ["--set", f"{key}={json.dumps(value)}"]
    return items


def skelctl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "skelctl", *args]


def run_skelctl(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        skelctl_command(*args), capture_output=True, text=True, cwd=REPO, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
