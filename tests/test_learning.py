"""Pretraining learns: on synthetic NTU-60 data with held-out performers (xsub), SkeleMixCLR+
and ISC pretraining must beat a randomly initialised encoder of the same architecture on linear
evaluation AND on 1-NN retrieval, by MIN_MARGIN top-1 points.

Set-up: `skelctl synth ntu60` with 8 performers, 10 classes, 1 replication (239 clips: 119 train
from performers 1, 2, 4, 5, 120 test from 3, 6, 7, 10), the `demo` / `demo-isc` presets for
EPOCHS epochs with a QUEUE_SIZE-key queue (the presets' 256 keys would hold every one of the 119
training clips twice), then the demo's protocols (`skelctl.demo.evaluate_encoder`: linear probe
and cosine 1-NN, train split as gallery). The random twin gets the BatchNorm statistics of the
training clips (`random_twin(..., dataset)`), as the pretrained encoder has: without them its
features are ~1e-7 and its linear probe sits at chance, which made an earlier version of this
test compare against a degenerate baseline.

STATUS: an open problem, so the test is a strict xfail (it reports XPASS, and fails, the day it
passes). Measured on this synthetic data (helper script, seed 0, top-1 %): random twins
(BN fitted) score 48-62 on 1-NN and 46-70 linear over init seeds 0-2; SkeleMixCLR+ after 300
steps scores 46 / 59 (paper views) and 38 / 48 (the stronger views of `ucla-skelemix`). On the
954-clip demo data: random 63-72 / 66-76, SkeleMixCLR+ 600 steps 48 / 51.
Session 9 probes (helper scripts, one run each): the synthetic actions are easy in input space
(1-NN on the raw centred 32-frame clips: 82.8% on the demo data, 89.3% with 40 performers,
against 66.7% on real NW-UCLA xview), so a random encoder is a high bar. The papers' SGD linear
probe at lr 3.0 oscillated on pretrained features (train loss 113 at epoch 10); the demo presets
now standardize them (`evaluation.linear.standardize`). With 40 performers x 1 replication
(2,393 clips, 1,197 for training) and the `ucla-skelemix` recipe for 592 steps, pretraining
beat the twin: standardized linear 81.4 vs 76.5, 1-NN 76.3 vs 74.1 (after 148 steps: 80.2 vs
76.5 and 67.9 vs 74.1). On the 954-clip demo data (4 training performers) the same 600 steps
did not: linear 73.2 vs 66.2 / 73.4, 1-NN 61.6 vs 64.6 / 69.0 (twin seeds 0, 1). Next: a
demo dataset with more performers and the stronger recipe, re-measured over seeds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skelctl.demo import BENCHMARK, DemoSettings, evaluate_encoder, pretrain_method, random_twin

EPOCHS = 30
QUEUE_SIZE = 64
SEED = 0
MIN_MARGIN = 3.0  # top-1 points, on each protocol


def make_dataset(root: Path) -> Path:
    from skelctl.data.preprocess import PreprocessOptions, preprocess
    from skelctl.data.synth import synth_size, synthesize

    size = synth_size("ntu60", "test", performers=8, classes=10, replications=1)
    synthesize("ntu60", root / "raw", 0, size)
    preprocess("ntu60", root / "raw", root / "synth.h5", PreprocessOptions(workers=1))
    return root / "synth.h5"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("learning"))


def pretrained_and_random(preset: str, dataset: Path, out: Path, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """(pretrained, random twin) top-1 on linear and 1-NN."""
    from skelctl.engine.config import load_config_file

    settings = DemoSettings(seed=0, epochs=EPOCHS)
    run = pretrain_method(out, dataset, preset, preset, settings,
                          [f"method.moco.queue_size={QUEUE_SIZE}", f"train.seed={seed}"])
    twin = random_twin(run / "encoder.pt", out / "random" / "encoder.pt", seed=0, dataset=dataset)
    evaluation = load_config_file(run / "config.yaml").evaluation
    protocols = ("linear", "knn")
    return (evaluate_encoder(run, dataset, evaluation, settings, protocols),
            evaluate_encoder(twin, dataset, evaluation, settings, protocols))


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="open problem: on synthetic data pretraining does not yet "
                   "beat a random encoder with fitted BatchNorm statistics (see the module docstring)")
@pytest.mark.parametrize("preset", ["demo", "demo-isc"])
def test_pretraining_beats_a_random_encoder(preset, dataset, tmp_path):
    assert BENCHMARK == "xsub"  # held-out performers
    pretrained, random = pretrained_and_random(preset, dataset, tmp_path, SEED)
    for protocol in ("linear", "knn"):
        margin = pretrained[protocol] - random[protocol]
        assert margin >= MIN_MARGIN, (
            f"{preset} {protocol}: pretrained {pretrained[protocol]:.1f} vs random "
            f"{random[protocol]:.1f} (margin {margin:.1f}, need {MIN_MARGIN})")
