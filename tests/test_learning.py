"""Pretraining learns: on synthetic NTU-60 data with held-out performers (xsub), SkeleMixCLR+
and ISC pretraining must beat a randomly initialised encoder of the same architecture on linear
evaluation AND on 1-NN retrieval, by MIN_MARGIN top-1 points.

Set-up: exactly the demo's (`skelctl demo`): `skelctl synth ntu60 --size demo` (40 performers,
20 classes, 1 replication: 2,393 clips, 1,197 for training), the `demo` / `demo-isc` presets as
shipped (592 and 296 steps), then the demo's protocols (`skelctl.demo.evaluate_encoder`:
standardized linear probe and cosine 1-NN, train split as gallery). The random twin gets the
BatchNorm statistics of the training clips (`random_twin(..., dataset)`), as the pretrained
encoder has: without them its features are ~1e-7 and a plain linear probe sits at chance.

STATUS: an open problem, so the test is a strict xfail (it reports XPASS, and fails, the day it
passes). Measured on this data (helper scripts, top-1 %, linear / 1-NN):
  random twins, init seeds 0 / 1 / 2        77.1 / 74.1   78.5 / 75.7   61.5 / 57.5
  SkeleMixCLR+ `demo`, 592 steps, seeds 0 / 1 / 2
                                            78.3 / 67.6   77.2 / 69.7   81.4 / 76.3
                                            (1 thread; `make demo`, 2 threads, seed 0: 79.0 / 68.7)
  ISC `demo-isc`, 296 steps, seed 0         71.0 / 73.3 (`make demo`; its twin 76.6 / 74.1)
  ISC, the same preset, seed 2, probe lr 3.0: 76.6 / 66.7 (592 steps: 69.4 / 65.9)
  1-NN on the raw centred clips, no encoder: 89.3
Pretraining matches the good random twins on linear and stays below them on 1-NN. Why the bar is
high: the synthetic actions are easy in input space (raw 1-NN 89.3% here and 82.8% on the older
954-clip demo data, against 66.7% on real NW-UCLA xview), and a random network with fitted
BatchNorm keeps most of that geometry. On real NW-UCLA, SkeleMixCLR+ does beat its random twin
(tests/test_learning_real.py, in CI).
Earlier set-ups that also failed: 239 clips of 8 performers (SkeleMixCLR+ 46 / 59 against twins
46-70 / 48-62); the 954-clip data of 8 performers x 2 replications (600 steps: 73.2 / 61.6
against 66.2-73.4 / 64.6-69.0); the papers' pad-crop + shear views (148 steps on the
40-performer data, plain linear probe: 24.5 / 40.0 against 70.3 / 75.4). ISC's GRU encoder is
no better (61.3 / 45.2 against its twin's 64.1 / 45.7). Re-fitting the pretrained encoder's
BatchNorm statistics on clean clips, as the twin's are, changes little (77.8 / 68.6 for seed
1).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skelctl.demo import BENCHMARK, DemoSettings, evaluate_encoder, pretrain_method, random_twin

MIN_MARGIN = 3.0  # top-1 points, on each protocol


def make_dataset(root: Path) -> Path:
    from skelctl.data.preprocess import PreprocessOptions, preprocess
    from skelctl.data.synth import synth_size, synthesize

    synthesize("ntu60", root / "raw", 0, synth_size("ntu60", "demo"))
    preprocess("ntu60", root / "raw", root / "synth.h5", PreprocessOptions(workers=1))
    return root / "synth.h5"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("learning"))


def pretrained_and_random(preset: str, dataset: Path, out: Path) -> tuple[dict[str, float], dict[str, float]]:
    """(pretrained, random twin) top-1 on linear and 1-NN, as the demo computes them."""
    from skelctl.engine.config import load_config_file

    settings = DemoSettings(seed=0)
    run = pretrain_method(out, dataset, preset, preset, settings)
    cfg = load_config_file(run / "config.yaml")
    twin = random_twin(run / "encoder.pt", out / "random" / "encoder.pt", seed=0, dataset=dataset,
                       init=cfg.method.init)
    evaluation = cfg.evaluation
    protocols = ("linear", "knn")
    return (evaluate_encoder(run, dataset, evaluation, settings, protocols),
            evaluate_encoder(twin, dataset, evaluation, settings, protocols))


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="open problem: on synthetic data pretraining does not yet "
                   "beat a random encoder with fitted BatchNorm statistics (see the module docstring)")
@pytest.mark.parametrize("preset", ["demo", "demo-isc"])
def test_pretraining_beats_a_random_encoder(preset, dataset, tmp_path):
    assert BENCHMARK == "xsub"  # held-out performers
    pretrained, random = pretrained_and_random(preset, dataset, tmp_path)
    for protocol in ("linear", "knn"):
        margin = pretrained[protocol] - random[protocol]
        assert margin >= MIN_MARGIN, (
            f"{preset} {protocol}: pretrained {pretrained[protocol]:.1f} vs random "
            f"{random[protocol]:.1f} (margin {margin:.1f}, need {MIN_MARGIN})")
