"""Pretraining learns: on synthetic NTU-60 data with held-out performers (xsub), SkeleMixCLR+
(`demo`) and ISC (`demo-isc`) pretraining beat randomly initialised encoders of the same
architecture on linear evaluation AND on 1-NN retrieval, by MIN_MARGIN top-1 points over the
random encoders' mean.

Set-up: exactly the demo's (`skelctl demo`): `skelctl synth ntu60 --size demo` (40 performers,
20 classes, one take each: 2,393 clips, 1,197 for training), the presets as shipped (592 and
1,184 steps, precision `auto`: bf16 on the 2-core AMX reference CPU), then the demo's protocols
(`skelctl.demo.evaluate_encoder`: standardized linear probe, cosine 1-NN with the train split as
gallery). The random encoders are twins of the pretrained one (init seeds TWIN_SEEDS) with the
BatchNorm statistics of the training clips (`random_twin(..., dataset)`), as the pretrained
encoder has them: without them the features are ~1e-7 and a linear probe sits at chance.

Why the mean of several twins: a random ST-GCN's accuracy depends a lot on its draw. Twins of
init seeds 0-4 scored (linear with `demo`'s probe / 1-NN) 76.3 / 71.6, 77.9 / 74.2,
60.8 / 55.0, 61.4 / 57.4 and 72.1 / 66.3: mean 69.7 / 64.9 (`demo-isc`'s probe: mean 69.0).
Measured, pretraining seeds 0-2 (linear / 1-NN, top-1 %):
  SkeleMixCLR+ `demo` (bf16, as here)     89.5 / 77.5   79.3 / 71.8   85.6 / 74.9
               (fp32)                     88.2 / 73.6   83.3 / 72.2   87.4 / 73.2
  ISC `demo-isc` (bf16, as here)          79.8 / 76.8   82.4 / 73.9   82.2 / 77.0
               (fp32)                     86.3 / 78.8   82.8 / 75.6
Smallest margins over the twins' mean: SkeleMixCLR+ +9.6 linear / +6.9 1-NN, ISC +10.8 /
+9.0. The test asserts 3 points: the same seed on the same CPU repeats its numbers exactly, the
room is for another CPU's rounding. Not every run beats the luckiest twin on 1-NN: twin 1's 74.2
is above SkeleMixCLR+ seed 1 (71.8) and ISC seed 1 (73.9).
Run length (seed 0, fp32): SkeleMixCLR+ 88.2 / 73.6 after 592 steps, 88.9 / 79.2 after 1,184;
ISC 80.2 / 77.2 after 888 steps, 86.3 / 78.8 after 1,184.

What made it hold (earlier sessions' data and figures in the git history of this file):
- The synthetic sensor now fits each recording's skeleton with its own bone lengths (sd 6% per
  bone, as a real performer's takes differ: tests/test_synth.py). Before, every performer's
  proportions were exact and named the performer of 95% of the training clips (real NW-UCLA:
  56%); pretraining learnt who performs (a clip's nearest neighbour was the same performer 70-75%
  of the time, a twin's 19-23%) and SkeleMixCLR+'s 1-NN spread from 8 below to 6 above the twins.
  With the variation: 47-51% for SkeleMixCLR+, and its 1-NN no longer spreads (72-78).
- For SkeleMixCLR+: the paper's shear on every view (ISC's one-of shear / mask / jitter leaves
  the proportions intact in half the views); a 30-100% crop and a 60-degree rotation (the
  papers' pad-crop + shear scored 24.5 / 40.0 after 148 steps against 70.3 / 75.4).
- For ISC: the paper's graph + image pair with SkeleMixCLR+'s recipe (the shear on every view,
  T = 0.2, a 128-d BatchNorm projection head, lr 0.1). The paper's default sequence (bi-GRU)
  + graph never beat a twin in a CPU budget: with ISC's own recipe 71.5 / 68.3, with this one
  70.2 / 65.5 (592 steps), with 4x the steps 60.7 / 57.9, against a twin's 76.6 / 74.1 (on the
  earlier data). Its keys sat in a narrow cone (mean cosine between queued keys 0.61-0.86,
  SkeleMixCLR+'s 0.01-0.04): the graph query is only compared with sequence keys, so nothing
  pushes their common direction away, and the graph encoder moved away from the random geometry
  without learning (kNN monitor 47.7 at initialisation, 30-47 after). Single-encoder MoCo on the
  same ST-GCN with the same recipe learnt (83.9 / 76.1 against 77.1 / 74.1): the
  cross-representation contrast with the GRU was what failed, not the graph encoder.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from skelctl.demo import BENCHMARK, DemoSettings, evaluate_encoder, pretrain_method, random_twin

MIN_MARGIN = 3.0  # top-1 points over the random encoders' mean, on each protocol
TWIN_SEEDS = (0, 1, 2, 3, 4)
PROTOCOLS = ("linear", "knn")


def make_dataset(root: Path) -> Path:
    from skelctl.data.preprocess import PreprocessOptions, preprocess
    from skelctl.synth import synth_size, synthesize

    synthesize("ntu60", root / "raw", 0, synth_size("ntu60", "demo"))
    preprocess("ntu60", root / "raw", root / "synth.h5", PreprocessOptions(workers=1))
    return root / "synth.h5"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("learning"))


@pytest.fixture(scope="module")
def twins() -> dict[str, list[tuple[Path, float]]]:
    """Random twins by architecture, with their 1-NN top-1: both demos pretrain the same ST-GCN,
    so their twins are the same encoders, drawn, calibrated and searched once."""
    return {}


def random_encoders(run: Path, cfg, dataset: Path, settings: DemoSettings, out: Path,
                    cache: dict[str, list[tuple[Path, float]]]) -> list[tuple[Path, float]]:
    """(twin encoder.pt, its 1-NN top-1) for each of TWIN_SEEDS, of `run`'s architecture."""
    from skelctl.engine.checkpoint import load_encoder

    init = cfg.method.init
    architecture = json.dumps([load_encoder(run / "encoder.pt")[0].config, init], sort_keys=True)
    if architecture not in cache:
        cache[architecture] = []
        for seed in TWIN_SEEDS:
            twin = random_twin(run / "encoder.pt", out / f"random-{seed}" / "encoder.pt", seed=seed,
                               dataset=dataset, init=init)
            knn = evaluate_encoder(twin, dataset, cfg.evaluation, settings, ("knn",))["knn"]
            cache[architecture].append((twin, knn))
    return cache[architecture]


def pretrained_and_random(preset: str, dataset: Path, out: Path, cache: dict[str, list[tuple[Path, float]]]
                          ) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Top-1 on linear and 1-NN of the pretrained encoder and of its random twins (TWIN_SEEDS),
    as the demo computes them (each linear probe with the preset's schedule)."""
    from skelctl.engine.config import load_config_file

    settings = DemoSettings(seed=0)
    run = Path(pretrain_method(out, dataset, preset, preset, settings)["run_dir"])
    cfg = load_config_file(run / "config.yaml")
    pretrained = evaluate_encoder(run, dataset, cfg.evaluation, settings, PROTOCOLS)
    random = [{**evaluate_encoder(twin, dataset, cfg.evaluation, settings, ("linear",)), "knn": knn}
              for twin, knn in random_encoders(run, cfg, dataset, settings, out, cache)]
    return pretrained, random


@pytest.mark.slow  # make test-all: CI's time goes to the real-data proof (tests/test_learning_real.py)
@pytest.mark.parametrize("preset", ["demo", "demo-isc"])
def test_pretraining_beats_random_encoders_on_linear_evaluation_and_1nn(preset, dataset, twins, tmp_path):
    assert BENCHMARK == "xsub"  # held-out performers
    pretrained, random_scores = pretrained_and_random(preset, dataset, tmp_path, twins)
    report = []
    for protocol in PROTOCOLS:
        random = [scores[protocol] for scores in random_scores]
        margin = pretrained[protocol] - statistics.fmean(random)
        report.append(f"{protocol}: pretrained {pretrained[protocol]:.1f}, random "
                      f"{' / '.join(f'{r:.1f}' for r in random)} (margin over their mean {margin:.1f})")
        assert margin >= MIN_MARGIN, f"{preset}: " + "; ".join(report) + f"; need {MIN_MARGIN}"
    print(f"{preset}: " + "; ".join(report))
