"""Two-process data-parallel pretraining (torchrun, gloo on CPU): one queue fed by both ranks."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from helpers import REPO, tiny_overrides, write_tiny_dataset

from skelctl.data.clips import ClipBank
from skelctl.data.store import open_dataset
from skelctl.engine.checkpoint import load_checkpoint
from skelctl.engine.config import load_config_file
from skelctl.engine.train import StepPlan, epoch_permutation, seed_micro_batch
from skelctl.methods import build_method

WORLD, BATCH, STEPS = 2, 8, 3


def replay_keys(run: Path, data: Path, step: int, rank: int) -> torch.Tensor:
    """Rank `rank`'s keys of (0-based) `step`, recomputed single-process from the state before it."""
    cfg = load_config_file(run / "config.yaml")
    with open_dataset(data) as ds:
        bank = ClipBank.from_dataset(ds, ds.split("xsub", "train"), "cpu", cfg.data.normalize)
        method = build_method(cfg.method, ds.layout, cfg.data.frames, cfg.data.stream,
                              normalize=cfg.data.normalize)
    before = load_checkpoint(run / "checkpoints" / "last.prev.pt")
    assert before["step"] == step
    method.load_state_dict(before["model"])
    method = copy.deepcopy(method).train()
    pointer = int(method.branch.queue.pointer)
    permutation = epoch_permutation(cfg.train.seed, 0, len(bank))
    (idx,) = StepPlan(BATCH, WORLD, 1).micro_batches(permutation, step, rank)
    gen = seed_micro_batch(cfg.train.seed, 0, step, rank, 0, torch.device("cpu"))
    method(method.make_views(bank, idx, gen))  # outside torch.distributed: enqueues this rank's keys only
    return method.branch.queue.keys[:, pointer : pointer + BATCH // WORLD].T.clone()


def test_two_process_gloo_run_enqueues_the_keys_of_both_ranks(tmp_path):
    data = write_tiny_dataset(tmp_path / "tiny.h5", per_class_train=6, per_class_test=2)
    run = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", f"--nproc-per-node={WORLD}", "-m", "skelctl", "pretrain",
               "--data", str(data), "--out", str(run), "--json",
               *tiny_overrides(**{"train.epochs": 1, "train.batch_size": BATCH, "train.checkpoint_every_steps": 1})]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two ranks on the shared cores
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)  # rank 0 alone prints
    assert (summary["world_size"], summary["steps"]) == (WORLD, STEPS)
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "step"]
    assert steps == list(range(1, STEPS + 1))  # rank 0 alone writes

    after = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    queue, pointer = after["branch.queue.keys"], int(after["branch.queue.pointer"])
    assert pointer == STEPS * BATCH  # every step enqueued the GLOBAL batch, not one rank's half
    expected = torch.cat([replay_keys(run, data, STEPS - 1, rank) for rank in range(WORLD)])
    torch.testing.assert_close(queue[:, pointer - BATCH : pointer].T, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(expected[: BATCH // WORLD], expected[BATCH // WORLD :])
