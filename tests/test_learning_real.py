"""Pretraining learns from REAL motion: the small-data recipe (`presets/small-skelemix.yaml`,
as shipped but for a shorter step budget) on the whole of NW-UCLA (cross-view) and MSR Action3D
(cross-subject), each against the baselines measured in the same test: the raw normalised
coordinates (no learning) and a random twin of the encoder with BatchNorm fitted to the
training clips. Protocols: the preset's linear probe (standardized features) and cosine 1-NN
with the train split as gallery.

What is asserted is what the recipe holds at this budget, seed 0, fp32 (same CPU => same
numbers); the margins measured, and the issue-18 targets it does NOT reach (1-NN above the raw
coordinates, 80% linear on NW-UCLA, ISC), are in docs/bench-real.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from skelctl.demo import DemoSettings, evaluate_encoder, evaluate_raw, pretrain_method, random_twin

FIXTURES = Path(__file__).parent / "fixtures"
PRESET = Path(__file__).parents[1] / "presets" / "small-skelemix.yaml"
SEED = 0


@dataclass(frozen=True)
class Case:
    kind: str  # preprocess source
    archive: Path
    benchmark: str
    epochs: int  # pretraining epochs of batch 32 (the preset's own budget, 1,500 steps, is larger)
    warmup_epochs: int  # ~150 steps, as the preset's (2 of its 20 epochs, stretched to 1,500 steps)
    linear_over_random: float  # top-1 points the pretrained linear probe must beat the twin by
    linear_over_raw: float  # ... and the raw coordinates by (negative: may trail them by)
    knn_over_random: float


CASES = {
    "nw-ucla": Case("nwucla", FIXTURES / "nw_ucla.zip", "xview", epochs=20, warmup_epochs=5,
                    linear_over_random=10.0, linear_over_raw=0.0, knn_over_random=5.0),
    "msr-action3d": Case("msr3d", FIXTURES / "msr_action3d.zip", "xsub", epochs=75, warmup_epochs=19,
                         linear_over_random=2.0, linear_over_raw=-40.0, knn_over_random=2.0),
}


@pytest.mark.slow
@pytest.mark.ci  # make test runs it
@pytest.mark.parametrize("name", list(CASES))
def test_the_small_data_recipe_beats_its_baselines_on_real_data(name, tmp_path):
    from skelctl.data.preprocess import PreprocessOptions, preprocess
    from skelctl.engine.config import load_config_file

    case = CASES[name]
    dataset = tmp_path / f"{name}.h5"
    preprocess(case.kind, case.archive, dataset, PreprocessOptions(workers=1))
    settings = DemoSettings(seed=SEED, precision="fp32", benchmark=case.benchmark)
    trained = pretrain_method(tmp_path, dataset, str(PRESET), "skelemix", settings,
                              ["train.min_steps=0", f"train.epochs={case.epochs}", f"train.seed={SEED}",
                               f"optim.warmup_epochs={case.warmup_epochs}"])
    run = Path(trained["run_dir"])
    cfg = load_config_file(run / "config.yaml")
    evaluation = cfg.evaluation
    protocols = ("linear", "knn")
    twin = random_twin(run / "encoder.pt", tmp_path / "random" / "encoder.pt", SEED, dataset,
                       case.benchmark, cfg.method.init)
    pretrained = evaluate_encoder(run, dataset, evaluation, settings, protocols)
    random = evaluate_encoder(twin, dataset, evaluation, settings, protocols)
    raw = evaluate_raw(tmp_path / "raw", cfg, dataset, evaluation, settings, protocols)
    report = f"{name}: pretrained {pretrained}, random twin {random}, raw {raw}"
    print(report)  # the measured numbers, for the log (pytest -s / -rA)
    assert pretrained["linear"] >= random["linear"] + case.linear_over_random, report
    assert pretrained["linear"] >= raw["linear"] + case.linear_over_raw, report
    assert pretrained["knn"] >= random["knn"] + case.knn_over_random, report
