"""Pretraining learns: on synthetic NTU-60 data with held-out performers (xsub), SkeleMixCLR+
(`demo`) and ISC (`demo-isc`) pretraining beat randomly initialised encoders of the same
architecture on linear evaluation AND on 1-NN retrieval, by MIN_MARGIN top-1 points over the
random encoders' mean (the mean of TWIN_SEEDS twins with the training clips' BatchNorm
statistics), with exactly the demo's set-up. The measurements behind the margin, and what made
pretraining learn on this data, are in docs/learning-synthetic.md.
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
