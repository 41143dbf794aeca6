"""Pretraining learns: on synthetic NTU-60 data with held-out performers (xsub), SkeleMixCLR+
and ISC pretraining must beat a randomly initialised encoder of the same architecture on linear
evaluation AND on 1-NN retrieval, by MIN_MARGIN top-1 points.

Set-up: exactly the demo's (`skelctl demo`): `skelctl synth ntu60 --size demo` (40 performers,
20 classes, 1 replication: 2,393 clips, 1,197 for training), the `demo` / `demo-isc` presets as
shipped (592 and 296 steps), then the demo's protocols (`skelctl.demo.evaluate_encoder`:
standardized linear probe and cosine 1-NN, train split as gallery). The random twin gets the
BatchNorm statistics of the training clips (`random_twin(..., dataset)`), as the pretrained
encoder has: without them its features are ~1e-7 and a plain linear probe sits at chance.

STATUS: held for SkeleMixCLR+ on linear evaluation (asserted); open for SkeleMixCLR+ on 1-NN (not
asserted: no clear margin over seeds) and for ISC on both (a strict xfail: it fails the day it
passes). Measured on this data (top-1 %, linear / 1-NN):
  random twins, init seeds 0 / 1 / 2        77.1 / 74.1   78.5 / 75.7   61.5 / 57.5
  SkeleMixCLR+ `demo`, 592 steps, pretraining seeds 0-3, 1 thread (helper scripts):
                                            84.5 / 75.9   84.7 / 66.4   87.5 / 70.2   90.8 / 76.3
                                            seed 0 as here (`make demo`, 2 threads): 90.2 / 81.5
  ISC `demo-isc`, 296 steps, seed 0         71.5 / 68.3 (`make demo`; its twin 76.6 / 74.1; 71.0 / 73.3
                                            before the GRU's CPU backward was rewritten)
So SkeleMixCLR+ beats every twin on linear evaluation by 6.0 points or more in every run, while
its 1-NN spreads from 8 below to 6 above the good twins. Twice the pretraining (1,184 steps,
2 threads) raises linear but not 1-NN: seed 1 83.4 / 75.3 after 592 steps, 88.8 / 72.3 after
1,184; seed 2 90.3 / 75.3 after 1,184.
What moved linear evaluation: the paper's shear on every view. With ISC's one-of shear / mask /
jitter (shear on half the views) the same runs scored 78.3 / 67.6, 77.2 / 69.7 and 81.4 / 76.3
(seeds 0-2), and the encoder learnt who performs: a training clip's nearest neighbour was the
same performer 54% of the time (the twin's: 19%), and among other performers only 63% shared
its action (the twin's: 76%; with the shear on every view: 76%).
Why the bar is high: the synthetic actions are easy in input space (1-NN on the raw centred
clips: 89.3% here, against 66.7% on real NW-UCLA xview), and a random network with fitted
BatchNorm keeps most of that geometry. On real NW-UCLA, SkeleMixCLR+ beats its random twin on
both protocols (tests/test_learning_real.py, in CI).
Earlier set-ups that also failed: 239 clips of 8 performers (SkeleMixCLR+ 46 / 59 against twins
46-70 / 48-62); the 954-clip data of 8 performers x 2 replications (600 steps: 73.2 / 61.6
against 66.2-73.4 / 64.6-69.0); the papers' pad-crop + shear views (148 steps on the
40-performer data, plain linear probe: 24.5 / 40.0 against 70.3 / 75.4). ISC: its paper
crop 10-100% at lr 0.01, T = 0.2, 592 steps and the shear on every view (67.9 / 57.6) all
stayed below the twin; its GRU encoder is no better (61.3 / 45.2 against its twin's 64.1 /
45.7); a stronger sequence partner (2 x 512 GRU units instead of 2 x 128) made the ST-GCN worse
(62.0 / 59.4, 296 steps); twice the steps (592) scored 61.1 / 61.2, and its kNN monitor
(128-d projections) went from 47.7 at initialisation and 49.1 after epoch 1 to 30-45 for the
rest of the run: the graph encoder moves away from the random geometry and does not come back.
Four times the steps (1,184, the shipped preset otherwise) scored 60.7 / 57.9: the kNN monitor
fell to 33.5 by epoch 4 and climbed back to 44-47 by epochs 24-32, never above its start, while
the loss stayed at 8.4-8.9 (2 ln 257 = 11.1) and the positive's top-1 among the keys fell from
0.41 (epoch 3) to 0.11. Training the projection heads alone for the first 2 epochs (74 steps,
backbone gradients dropped) so that the two spaces align before the encoders move: 65.5 / 58.9.
With `demo`'s recipe the cross-representation contrast is what fails: with it (shear on every
view, T = 0.2, a 128-d BatchNorm head, lr 0.1) single-encoder MoCo on the same ST-GCN
(SkeletonCLR, no SkeleMix, 592 steps) scores 83.9 / 76.1 against its twin's 77.1 / 74.1, while
ISC with that recipe scores 69.4 / 62.8 (296 steps) and 70.2 / 65.5 (592); with a 64-channel
CNN partner instead of the GRU (graph + image, a pair of the paper) 72.4 / 70.2 after 296 steps,
73.5 / 74.7 after 592 and 78.8 / 79.3 after 888 (7.7 minutes on 2 cores): the first ISC above
this twin on both protocols (+2.2 / +5.2), too slow for the demo and short of the 3-point linear
margin. A 32-channel CNN partner: 79.8 / 69.4 after 592 steps; after 1,184 (~6 minutes)
85.0 / 72.2, 84.6 / 72.8 and 83.2 / 80.1 (pretraining seeds 0-2): like SkeleMixCLR+, a clear
linear margin over every twin and none on 1-NN. And ISC's own recipe
fails in single-encoder MoCo too (ISC-intra on a full-width ST-GCN: 67.6 / 59.1 against its
twin's 81.8 / 80.4).
Also below the twin at 296 steps: lr 0.2 and 0.5 (62.5 / 58.9, 56.1 / 49.0: a higher rate moves it
further from the random geometry), no rotation (57.0 / 47.1; with the shear on every view:
60.7 / 56.0; the loss falls lower without it, the features get worse), lr 0.01 (67.8 / 67.5), a 1,024-key queue (70.1 / 66.5) and
key momentum 0.999 (66.4 / 64.4), and the graph + image pair (a 32-channel CNN partner: 38.4 /
55.9). Re-fitting the pretrained encoder's BatchNorm statistics on clean clips, as the twin's
are, changes little (77.8 / 68.6 for seed 1 with the one-of views; ISC 62.7 / 56.0 -> 66.3 /
58.4). Also below the twin: a BatchNorm layer in ISC's projection heads (66.2 / 60.5), and that
with T = 0.2 (62.3 / 53.3); a parameter-free BatchNorm on the 128-d projections, which centres
the keys (61.8 / 58.4; with T = 0.2: 63.5 / 54.4; the positive's top-1 among the keys fell to
1.5%).
What ISC's runs share: their keys sit in a narrow cone. The mean cosine between two keys of a
queue at the end of a run is 0.61-0.86 for every sequence + graph run above (graph + image:
0.99), against 0.01-0.04 for SkeleMixCLR+ after 592 steps (0.25 after 148). A common direction
costs nothing in a cross-representation loss: the graph query is only ever compared with
sequence keys, so nothing pushes its own mean away, as the negatives of single-encoder MoCo
do. The encoders' gradients are 5-10x smaller than SkeleMixCLR+'s over the first 150 steps
(ST-GCN: 0.1-0.6 against 0.7-2.8), and the weights barely move (norm 141.4 -> 139.7, mostly
weight decay).
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


@pytest.fixture(scope="module")
def skelemix_scores(dataset, tmp_path_factory) -> tuple[dict[str, float], dict[str, float]]:
    return pretrained_and_random("demo", dataset, tmp_path_factory.mktemp("demo"))


def assert_margin(preset: str, protocol: str, pretrained: dict[str, float], random: dict[str, float]) -> None:
    margin = pretrained[protocol] - random[protocol]
    assert margin >= MIN_MARGIN, (
        f"{preset} {protocol}: pretrained {pretrained[protocol]:.1f} vs random "
        f"{random[protocol]:.1f} (margin {margin:.1f}, need {MIN_MARGIN})")


@pytest.mark.slow
def test_skelemix_pretraining_beats_a_random_encoder_on_linear_evaluation(skelemix_scores):
    assert BENCHMARK == "xsub"  # held-out performers
    assert_margin("demo", "linear", *skelemix_scores)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="open problem: on synthetic data ISC pretraining does not "
                   "yet beat a random encoder with fitted BatchNorm statistics (see the module docstring)")
def test_isc_pretraining_beats_a_random_encoder(dataset, tmp_path):
    pretrained, random = pretrained_and_random("demo-isc", dataset, tmp_path)
    for protocol in ("linear", "knn"):
        assert_margin("demo-isc", protocol, pretrained, random)
