"""The training engine: RNG derivation, schedule, accumulation, exact resume, NaN guard, kNN."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from helpers import REPO, run_skelctl, skelctl_command, tiny_overrides, wait_for_step
from torch import nn

from skelctl.engine import memory
from skelctl.engine.checkpoint import load_checkpoint, load_first_good
from skelctl.engine.config import load_preset
from skelctl.engine.distributed import DistContext
from skelctl.engine.knn import weighted_knn_top1
from skelctl.engine.memory import ResidentBudget, resident_bytes
from skelctl.engine.precision import Precision, resolve_precision
from skelctl.engine.rundir import RunDir
from skelctl.engine.train import StepPlan, Trainer, derive_seed, epoch_permutation, lr_at
from skelctl.methods.moco import LossSum

# --- pieces ----------------------------------------------------------------------------------


def test_derived_seeds_differ_per_epoch_step_and_rank_and_repeat():
    seeds = {derive_seed(2, 2, e, s, r, 0) for e in range(3) for s in range(3) for r in range(2)}
    assert len(seeds) == 18
    assert derive_seed(2, 2, 1, 1, 1, 0) == derive_seed(2, 2, 1, 1, 1, 0)
    assert all(0 <= s < 2**63 for s in seeds)
    assert torch.equal(epoch_permutation(5, 3, 100), epoch_permutation(5, 3, 100))
    assert not torch.equal(epoch_permutation(5, 3, 100), epoch_permutation(5, 4, 100))


def test_step_plan_shards_the_global_batch_across_ranks_and_micro_batches():
    permutation = torch.randperm(64)
    plan = StepPlan(batch_size=16, world_size=2, accumulate=2)
    parts = [idx for rank in range(2) for idx in plan.micro_batches(permutation, 1, rank)]
    assert [len(p) for p in parts] == [4, 4, 4, 4]
    assert torch.equal(torch.cat(parts), permutation[16:32])


def test_lr_schedule_warms_up_per_step_then_steps_down_at_milestones():
    cfg = load_preset("skelemix", ["optim.lr=0.4", "optim.warmup_epochs=2", "optim.milestones=[5, 8]"])
    assert lr_at(cfg, 0, 0, 10) == pytest.approx(0.4 / 20)
    assert lr_at(cfg, 1, 9, 10) == pytest.approx(0.4)
    assert lr_at(cfg, 4, 9, 10) == pytest.approx(0.4)
    assert lr_at(cfg, 5, 0, 10) == pytest.approx(0.04)
    assert lr_at(cfg, 9, 3, 10) == pytest.approx(0.004)


def test_auto_precision_on_cpu_keeps_bf16_only_when_the_trial_is_faster():
    def trial(delay_bf16: float):
        def step(p: Precision) -> None:
            time.sleep(delay_bf16 if p.name == "bf16" else 0.02)
        return step

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, trial(0.002)).name == "bf16"
    assert resolve_precision("auto", cpu, trial(0.04)).name == "fp32"
    assert resolve_precision("fp16", cpu).name == "fp16"


FIRST_CALLS = """
import sys, torch
from skelctl.engine.precision import resolve_device
resolve_device("cpu")
x = torch.linspace(-0.9, 0.9, 3000)
for name in ("cos", "sin", "exp", "tanh", "atan"):
    err = (getattr(x, name)().double() - getattr(x.double(), name)()).abs().max().item()
    if err > 1e-6:
        sys.exit(f"{name}: first call off by {err:.1e}")
"""


def test_resolving_the_device_settles_the_cpu_math_kernels_of_a_fresh_process():
    """Without `settle_cpu_kernels`, about one fresh 2-thread process in three computed its
    first float32 cos/sin/exp of 3,000 values with a low-accuracy MKL kernel (errors ~2e-4;
    pytorch/pytorch#188792). Twelve fresh processes, each checked on its very first calls."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    failures = []
    for _ in range(12):  # one after another: run side by side, the processes rarely race
        run = subprocess.run([sys.executable, "-c", FIRST_CALLS], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        if run.returncode or run.stderr:
            failures.append(run.stderr)
    assert not failures, failures


def test_weighted_knn_votes_with_similarity_weights():
    bank = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]]), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 1])
    queries = torch.nn.functional.normalize(torch.tensor([[1.0, 0.05], [0.05, 1.0]]), dim=1)
    top1 = weighted_knn_top1(bank, labels, queries, torch.tensor([0, 1]), ks=(1, 2, 5))
    assert top1 == {1: 100.0, 2: 100.0, 5: 100.0}
    # with k = all five, three far class-1 votes lose to two near class-0 votes only thanks to exp(sim/0.1)
    assert weighted_knn_top1(bank, labels, queries[:1], torch.tensor([0]), ks=(5,))[5] == 100.0


class QuadraticMethod(nn.Module):
    """No BN, no queue: a loss whose mean over a batch is the mean of its micro-batch means."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 3)

    def make_views(self, bank, idx, gen):
        return {"x": bank[idx]}

    def forward(self, views, backward=None):
        loss = LossSum(backward)
        loss.add(self.linear(views["x"]).pow(2).mean())
        return {"loss": loss.value, "loss_quadratic": loss.value.detach()}


def one_step(tmp_path, accumulate: int) -> dict[str, torch.Tensor]:
    cfg = load_preset("skelemix", ["train.batch_size=8", f"train.accumulate={accumulate}", "train.precision=fp32"])
    torch.manual_seed(0)
    method = QuadraticMethod()
    bank = torch.randn(32, 6)
    trainer = Trainer(cfg, RunDir(tmp_path), DistContext(), torch.device("cpu"), method, bank, None, None, {},
                      show_progress=False)
    trainer.choose_precision()
    trainer._step(method, method, epoch_permutation(cfg.train.seed, 0, len(bank)), 0, lr=0.5)
    return {k: v.clone() for k, v in method.state_dict().items()}


def test_accumulated_micro_batches_reproduce_the_large_batch_step(tmp_path):
    whole, accumulated = one_step(tmp_path, 1), one_step(tmp_path, 4)
    for key in whole:
        torch.testing.assert_close(whole[key], accumulated[key], rtol=1e-6, atol=1e-7)
    torch.manual_seed(0)
    assert not torch.equal(whole["linear.weight"], QuadraticMethod().linear.weight)  # the step did move


def test_the_precision_trial_leaves_the_model_as_it_found_it(tmp_path):
    from skelctl.data.clips import ClipBank
    from skelctl.data.layout import get_layout
    from skelctl.methods import build_method
    from skelctl.methods.moco import MomentumBranch

    cfg = load_preset("skelemix", [*tiny_overrides()[1::2], "train.precision=auto"])
    torch.manual_seed(0)
    method = build_method(cfg.method, get_layout("ntu25"), cfg.data.frames, cfg.data.stream)
    with torch.no_grad():  # query and key networks apart, as after some training
        for branch in (m for m in method.modules() if isinstance(m, MomentumBranch)):
            for p in branch.query.parameters():
                p.add_(0.01 * torch.randn_like(p))
    before = {k: v.clone() for k, v in method.state_dict().items()}
    lengths = torch.tensor([40, 50, 60] * 4)
    bank = ClipBank.from_arrays(torch.randn(int(lengths.sum()), 2, 25, 3),
                                torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]),
                                torch.arange(12) % 3, "cpu")
    trainer = Trainer(cfg, RunDir(tmp_path), DistContext(), torch.device("cpu"), method, bank, None, None, {},
                      show_progress=False)
    for precision in ("fp32", "bf16"):
        trainer._trial_step(Precision(precision))
    after = method.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    assert all(p.grad is None for p in method.parameters())
    assert all(m.momentum == cfg.method.moco.momentum for m in method.modules() if isinstance(m, MomentumBranch))


def test_batch_that_does_not_split_is_a_usage_error(tiny_pretrain_data, tmp_path):
    result = run_skelctl("pretrain", "--data", str(tiny_pretrain_data), "--out", str(tmp_path / "run"),
                         *tiny_overrides(**{"train.accumulate": 3}))
    assert result.returncode == 2
    assert "train.batch_size: 8 does not split into 1 rank(s) x 3 micro-batch(es)" in result.stderr


# --- whole runs ------------------------------------------------------------------------------
# One uninterrupted run (2 epochs x 3 steps, a checkpoint after every step) is the reference the
# interrupted, resumed and fallen-back runs must reproduce bit for bit.

RUN_ARGS = tiny_overrides(**{"train.checkpoint_every_steps": 1, "train.keep_every_epochs": 1})
TOTAL_STEPS = 6


@pytest.fixture(scope="module")
def straight(tiny_pretrain_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("straight") / "run"
    result = run_skelctl("pretrain", "--data", str(tiny_pretrain_data), *RUN_ARGS, "--out", str(run), "--json")
    assert result.returncode == 0, result.stderr
    return run, json.loads(result.stdout)


def training_state(run) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.pt")


def assert_same_training_state(a: dict, b: dict) -> None:
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert torch.equal(pa["momentum_buffer"], pb["momentum_buffer"])
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])


def read_records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_pretrain_writes_run_directory_and_metrics(straight):
    run, summary = straight
    assert summary["epochs"] == 2 and summary["steps"] == TOTAL_STEPS and summary["precision"] == "fp32"
    assert math.isfinite(summary["final_loss"]) and summary["samples_per_s"] > 0
    assert summary["encoder"] == str(run / "encoder.pt") and summary["resumed_from"] is None
    for name in ("config.yaml", "encoder.pt", "encoder_stgcn.pt", "checkpoints/last.pt",
                 "checkpoints/last.prev.pt", "checkpoints/epoch_1.pt", "checkpoints/epoch_2.pt"):
        assert (run / name).is_file(), name
    records = read_records(run)
    assert [r["step"] for r in records if r["kind"] == "step"] == list(range(1, TOTAL_STEPS + 1))
    assert {"epoch", "loss", "loss_ins", "loss_trimmed", "loss_truncated", "lr", "samples_per_s"} <= records[0].keys()
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2] and all(math.isfinite(r["loss"]) for r in epochs)
    assert load_checkpoint(run / "checkpoints" / "epoch_1.pt")["step"] == TOTAL_STEPS // 2


def test_resume_after_sigkill_is_bit_exact(tiny_pretrain_data, straight, tmp_path):
    run = tmp_path / "killed"
    args = ["pretrain", "--data", str(tiny_pretrain_data), *RUN_ARGS, "--out", str(run)]
    proc = subprocess.Popen(skelctl_command(*args), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_step(run / "metrics.jsonl", 2, proc)  # mid-epoch 1
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # the newest checkpoint (the kill may land between the two renames of a save, leaving no last.pt)
    kept = load_first_good([run / "checkpoints" / "last.pt", run / "checkpoints" / "last.prev.pt"])
    assert kept is not None and kept[0]["step"] < TOTAL_STEPS

    resumed = run_skelctl(*args, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["resumed_from"] == str(kept[1]) and summary["steps"] == TOTAL_STEPS
    assert_same_training_state(training_state(straight[0]), training_state(run))
    # every step logged exactly once, and the epoch means equal the straight run's
    records, reference = read_records(run), read_records(straight[0])
    assert [r["step"] for r in records if r["kind"] == "step"] == list(range(1, TOTAL_STEPS + 1))
    assert [r["loss"] for r in records if r["kind"] == "epoch"] == [r["loss"] for r in reference if r["kind"] == "epoch"]


def test_activation_checkpointing_trains_to_the_same_weights(tiny_pretrain_data, straight, tmp_path):
    run = tmp_path / "checkpointed"
    result = run_skelctl("pretrain", "--data", str(tiny_pretrain_data), *RUN_ARGS,
                         "--set", "train.activation_checkpointing=true", "--out", str(run))
    assert result.returncode == 0, result.stderr
    assert_same_training_state(training_state(straight[0]), training_state(run))


def test_corrupt_last_checkpoint_falls_back_to_the_previous_one(straight, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(straight[0], run)
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated, e.g. a full disk
    (run / "metrics.jsonl").unlink()
    result = run_skelctl("pretrain", "--out", str(run), "--json")  # the stored config; redoes the last step
    assert result.returncode == 0, result.stderr
    assert "warning: skipping checkpoint" in result.stderr and "last.pt: not a readable checkpoint" in result.stderr
    assert json.loads(result.stdout)["resumed_from"].endswith("last.prev.pt")
    assert (run / "checkpoints" / "last.broken.pt").is_file()
    assert_same_training_state(training_state(straight[0]), training_state(run))


def test_a_finished_run_extends_with_more_epochs_and_refuses_changed_settings(straight, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(straight[0], run)
    changed = run_skelctl("pretrain", "--out", str(run), "--set", "optim.lr=0.5")
    assert changed.returncode == 2
    assert "optim.lr: this run was started with 0.1, not 0.5" in changed.stderr
    more = run_skelctl("pretrain", "--out", str(run), "--epochs", "3", "--json")
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout)["steps"] == TOTAL_STEPS + 3
    assert [r["epoch"] for r in read_records(run) if r["kind"] == "epoch"] == [1, 2, 3]


def test_nan_guard_stops_with_exit_1_and_keeps_the_last_good_checkpoint(tiny_pretrain_data, tmp_path):
    run = tmp_path / "run"
    result = run_skelctl("pretrain", "--data", str(tiny_pretrain_data), "--out", str(run),
                         *tiny_overrides(**{"optim.lr": 1e30, "train.checkpoint_every_steps": 1}))
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: training diverged at epoch 1, step 2 of 3 (global step 2): the loss is nan")
    assert f"last good checkpoint is kept ({run / 'checkpoints' / 'last.pt'})" in message
    kept = load_checkpoint(run / "checkpoints" / "last.pt")
    assert kept["step"] == 1
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())
    assert not (run / "encoder.pt").exists()


def test_demo_preset_on_synthetic_ntu60_finishes_with_its_knn_monitor(tmp_path):
    """`skelctl synth` + `skelctl preprocess` data, the shipped `demo` preset (fewer epochs): the
    run finishes and the kNN monitor reports before training and every 2 epochs. Whether the
    demo learns is tests/test_learning.py's question (8 steps on 144 clips cannot answer it)."""
    for command in (("synth", "ntu60", str(tmp_path / "raw"), "--size", "test"),
                    ("preprocess", "ntu60", str(tmp_path / "raw"), "-o", str(tmp_path / "synth-ntu60.h5"))):
        made = run_skelctl(*command)
        assert made.returncode == 0, made.stderr
    result = run_skelctl("pretrain", "--preset", "demo", "--out", str(tmp_path / "run"), "--epochs", "4",
                         "--precision", "fp32", "--set", "train.knn_every=2", "--json",
                         env={"SKELCTL_DATA": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["epochs"] == 4 and math.isfinite(summary["final_loss"])
    knn = summary["knn"]
    assert knn["protocol"].startswith("weighted-knn")
    assert all(0.0 <= knn[f"top1@{k}"] <= 100.0 for k in (10, 20, 40)), knn
    records = read_records(tmp_path / "run")
    assert records[0]["kind"] == "knn" and records[0]["epoch"] == 0  # the untrained baseline
    assert [r["epoch"] for r in records if r.get("knn")] == [0, 2, 4]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; glibc's malloc_trim")
def test_resident_budget_trims_a_fragmented_heap_only_above_the_budget():
    """Freed activations interleaved with live ones are heap holes glibc keeps resident; above
    the budget the check gives them back, under it it does nothing."""
    chunks = [np.ones(64 * 1024 // 8) for _ in range(8000)]  # 500 MiB of 64 KiB heap chunks
    del chunks[::2]  # 250 MiB of holes between live chunks
    before = resident_bytes()
    assert not ResidentBudget(before + 2**30)()
    assert resident_bytes() > before - 50 * 2**20
    assert ResidentBudget(before - 100 * 2**20)()
    assert before - resident_bytes() > 150 * 2**20
    del chunks


def test_a_preset_is_fitted_to_a_small_training_split():
    from skelctl.engine.config import load_preset
    from skelctl.engine.train import fit_to_dataset

    cfg = load_preset("skelemix", ["train.batch_size=32", "train.epochs=10", "train.min_steps=400",
                                   "optim.warmup_epochs=2", "optim.milestones=[8]",
                                   "method.moco.queue_size=256", "method.moco.queue_fraction=0.25"])
    small = fit_to_dataset(cfg, clips=284)  # 8 steps an epoch
    assert small.train.epochs == 50 and small.optim.warmup_epochs == 10 and small.optim.milestones == (40,)
    assert small.method.moco.queue_size == 64  # a quarter of 284 clips, in whole batches of 32
    large = fit_to_dataset(cfg, clips=20_000)  # 625 steps an epoch: nothing to stretch
    assert large.train.epochs == 10 and large.method.moco.queue_size == 256
    assert fit_to_dataset(cfg, clips=40).method.moco.queue_size == 32  # at least one batch


def test_resident_budget_backs_off_from_trims_that_cannot_keep_the_run_within_it(monkeypatch):
    """A trim counts as useful when the next check finds the resident size within the budget;
    when the memory comes back above it (it is live, or needed again) the tries get
    exponentially rarer, and they resume whenever one helps."""
    level = {"rss": 3 * 2**30}
    trims = []
    now = {"check": 0}
    monkeypatch.setattr(memory, "resident_bytes", lambda: level["rss"])
    monkeypatch.setattr(memory, "trim_heap", lambda: trims.append(now["check"]) or True)
    guard = ResidentBudget(2 * 2**30)
    for check in range(40):  # the level never falls: tries at checks 0, 2, 5, 10, 19, 36
        now["check"] = check
        guard()
    assert trims == [0, 2, 5, 10, 19, 36]
    trims.clear()

    def helpful_trim():  # fragmentation: +0.5 GiB per term, back to 1 GiB when trimmed
        trims.append(now["check"])
        level["rss"] = 2**30
        return True

    monkeypatch.setattr(memory, "trim_heap", helpful_trim)
    for check in range(40, 100):  # after the skips still due: a trim whenever above, every 3rd check
        now["check"] = check
        level["rss"] += 2**29
        guard()
    assert 40 < trims[0] <= 70 and trims == list(range(trims[0], 100, 3))


def test_the_trim_level_is_the_memory_budget_unless_set(tmp_path):
    def trainer(*overrides):
        cfg = load_preset("skelemix", ["train.batch_size=8", "train.precision=fp32", *overrides])
        return Trainer(cfg, RunDir(tmp_path), DistContext(), torch.device("cpu"), QuadraticMethod(),
                       torch.randn(32, 6), None, None, {}, show_progress=False)

    assert trainer("train.memory_budget_mib=3000").release_memory.budget == 3000 * 2**20
    assert trainer("train.memory_budget_mib=3000", "train.release_memory_above_mib=700").release_memory.budget == 700 * 2**20
    assert trainer("train.release_memory_above_mib=0").release_memory is None
    default = trainer().release_memory.budget  # what the process holds plus half the available RAM
    assert default == memory.memory_budget(None) or abs(default - memory.memory_budget(None)) < 2**28
    assert default > resident_bytes()
