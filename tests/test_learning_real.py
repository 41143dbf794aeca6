"""Pretraining learns from REAL motion: the small-data recipe (`presets/small-skelemix.yaml`,
as shipped but for a shorter budget: 620 steps instead of 1,500) on the whole of NW-UCLA
(cross-view), against a random twin of its encoder (BatchNorm fitted to the normalised training
clips) and the raw normalised coordinates, both measured in the same test. Protocols: the
preset's linear probe (standardized features) and cosine 1-NN, train split as gallery.

Asserted: linear evaluation beats the twin by MIN_LINEAR_MARGIN points. Measured at this budget
(fp32; top-1 % linear / 1-NN): seed 0 (this test) 55.9 / 57.9 on 2 threads, 55.9 / 50.1 on 1,
against the twin's 41.9 / 47.1 and raw 66.1 / 75.8 (62.0 / 75.8 on 1 thread); the preset's seed 2 (queue 256, 2 warm-up epochs) 69.8 / 60.0
against 41.9 / 47.1. So at this budget the encoder is NOT above the raw coordinates, its 1-NN
margin over the twin is small (+3.0 for seed 0), and on MSR Action3D seed 0 does not leave
chance in 600 steps (27.1 / 12.5 against the twin's 25.3 / 19.0): neither is asserted here.
The full-budget figures and the targets met and missed are in docs/bench-real.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skelctl.demo import DemoSettings, evaluate_encoder, evaluate_raw, pretrain_method, random_twin

ZIP = Path(__file__).parent / "fixtures" / "nw_ucla.zip"
PRESET = Path(__file__).parents[1] / "presets" / "small-skelemix.yaml"
BENCHMARK = "xview"
SEED = 0
EPOCHS = 20  # 31 steps each
WARMUP_EPOCHS = 5  # ~150 steps, as the preset's warm-up once stretched to its 1,500 steps
MIN_LINEAR_MARGIN = 5.0  # top-1 points over the twin (measured +14.0 for seed 0, +27.9 seed 2)


@pytest.mark.slow
@pytest.mark.ci  # make test runs it
def test_the_small_data_recipe_beats_a_random_encoder_on_nw_ucla(tmp_path):
    from skelctl.data.preprocess import PreprocessOptions, preprocess
    from skelctl.engine.config import load_config_file

    dataset = tmp_path / "nw-ucla.h5"
    preprocess("nwucla", ZIP, dataset, PreprocessOptions(workers=1))
    settings = DemoSettings(seed=SEED, precision="fp32", benchmark=BENCHMARK)
    trained = pretrain_method(tmp_path, dataset, str(PRESET), "skelemix", settings, [
        "train.min_steps=0", f"train.epochs={EPOCHS}", f"train.seed={SEED}",
        f"optim.warmup_epochs={WARMUP_EPOCHS}"])
    run = Path(trained["run_dir"])
    cfg = load_config_file(run / "config.yaml")
    protocols = ("linear", "knn")
    twin = random_twin(run / "encoder.pt", tmp_path / "random" / "encoder.pt", SEED, dataset,
                       BENCHMARK, cfg.method.init)
    pretrained = evaluate_encoder(run, dataset, cfg.evaluation, settings, protocols)
    random = evaluate_encoder(twin, dataset, cfg.evaluation, settings, protocols)
    raw = evaluate_raw(tmp_path / "raw", cfg, dataset, cfg.evaluation, settings, protocols)
    report = f"pretrained {pretrained}, random twin {random}, raw {raw}"
    print(report)  # the measured numbers, for the log (pytest -s / -rA)
    assert pretrained["linear"] >= random["linear"] + MIN_LINEAR_MARGIN, report
