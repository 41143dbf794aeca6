"""What several test modules share: running `skelctl` (in-process and as a subprocess), tiny
datasets, copies of the real raw fixtures, small encoder settings, tiny encoders and the run
directories evaluation tests start from (`make_run`). Fixtures are in conftest.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skelctl.cli.app import main
from skelctl.data.layout import get_layout
from skelctl.data.store import DatasetWriter, open_dataset
from skelctl.engine.checkpoint import EncoderInfo, save_encoder
from skelctl.engine.config import PretrainConfig, StageConfig, to_yaml
from skelctl.models.registry import build_encoder

REPO = Path(__file__).resolve().parents[1]
SMALL_FRAMES = {"stgcn": 16, "agcn": 16, "gru": 6, "cnn": 16}  # a clip length each encoder takes
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


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """`skelctl ARGS` in-process through the real entry point (exit-code mapping included):
    (exit code, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    return code, stdout.getvalue(), stderr.getvalue()


def skelctl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "skelctl", *args]


def run_skelctl(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
                cwd: Path | None = REPO, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`skelctl ARGS` as a subprocess (its environment: ours plus `env`), output captured."""
    return subprocess.run(
        skelctl_command(*args), capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env={**os.environ, **(env or {})}, input=stdin,
    )


def wait_for_step(metrics: Path, step: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until the running pretraining `proc` has logged step `step` in `metrics`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        if metrics.exists():
            steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if line.endswith("}")]
            if steps and max(steps) >= step:
                return
        time.sleep(0.01)
    raise AssertionError("the run did not reach the step in time")


def ntu_raw(shared_fixtures: Path, folder: Path) -> Path:
    """A writable copy of the real NTU fixture files in `folder`."""
    shutil.copytree(shared_fixtures / "ntu", folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def assert_encoders_run(dataset: Path, name: str, layout: str) -> None:
    """Encoder `name` builds from the layout stored in `dataset` and gives finite features for
    its first three clips (evenly spaced frames: the simplest temporal resize)."""
    frames = SMALL_FRAMES[name]
    with open_dataset(dataset) as ds:
        stored = ds.layout
        clips = [ds.clip(i) for i in range(3)]
    x = np.stack([c[np.linspace(0, len(c) - 1, frames).round().astype(int)] for c in clips])
    x = torch.from_numpy(x).permute(0, 4, 1, 3, 2)  # (N, T, M, V, C) -> (N, C, T, V, M)
    encoder = build_encoder(name, stored, in_channels=3, num_persons=2, frames=frames).eval()
    assert encoder.config["layout"]["name"] == layout
    with torch.no_grad():
        features = encoder(x)
    assert features.shape == (3, encoder.feature_dim)
    assert torch.isfinite(features).all()


TINY_ENCODERS = {"stgcn": {"base_channels": 4, "feature_dim": 16},
                 "gru": {"hidden_size": 16, "num_layers": 1}}
FRAMES = 16  # the clip length of the evaluation tests' run directories (`make_run`)


def tiny_encoder(seed: int = 0, arch: str = "stgcn") -> nn.Module:
    """A narrow encoder. The ST-GCN gets PyTorch's default init: the reference N(0, 0.02) init
    makes features ~1e-8, useless for testing what a classifier does with them. (Its features
    all point almost the same way, though: retrieval tests use the GRU, whose cosine
    similarities are well spread.)"""
    torch.manual_seed(seed)
    encoder = build_encoder(arch, get_layout("ntu25"), frames=FRAMES, **TINY_ENCODERS[arch])
    if arch == "stgcn":
        for module in encoder.modules():
            if module is not encoder and hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return encoder


def make_run(
    root: Path,
    dataset: Path,
    name: str = "run",
    stream: str = "joint",
    seed: int = 0,
    arch: str = "stgcn",
    linear: StageConfig | None = None,
    semisup: StageConfig | None = None,
) -> Path:
    """A run directory as `skelctl pretrain` leaves it: encoder.pt (+ info) and config.yaml."""
    run = root / name
    run.mkdir(parents=True)
    layout = get_layout("ntu25")
    info = EncoderInfo(method="skelemix", preset="skelemix", dataset=str(dataset), benchmark="xsub",
                       stream=stream, frames=FRAMES, preprocess_options=open_dataset(dataset).options,
                       layout=layout.to_dict(), epoch=3, encoder=arch)
    save_encoder(run / "encoder.pt", tiny_encoder(seed, arch), info)
    cfg = PretrainConfig(preset="skelemix")
    cfg.data.frames = FRAMES
    cfg.evaluation.linear = linear or StageConfig(epochs=4, batch_size=16, lr=0.5, milestones=(3,),
                                                  weight_decay=0.0)
    tiny_semisup = semisup or StageConfig(epochs=2, batch_size=8, lr=0.05, milestones=(1,))
    cfg.evaluation.semisup_1 = cfg.evaluation.semisup_10 = cfg.evaluation.finetune = tiny_semisup
    (run / "config.yaml").write_text(to_yaml(cfg))
    return run
