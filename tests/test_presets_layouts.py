"""Every shipped preset trains on a layout other than NTU's: its method builds on kinect20 (20
joints, NW-UCLA) and one optimiser step on real NW-UCLA clips gives a finite loss and moves the
query encoder. The graph, bone stream, SkeleMix parts and views all derive from the layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from skelctl.data.clips import ClipBank
from skelctl.data.layout import get_layout
from skelctl.data.preprocess import PreprocessOptions, preprocess
from skelctl.data.store import open_dataset
from skelctl.engine.config import load_preset, preset_names
from skelctl.methods import build_method

SUBSET = Path(__file__).parent / "fixtures" / "nw_ucla"  # 62 real NW-UCLA files


@pytest.fixture(scope="module")
def ucla_bank(tmp_path_factory) -> ClipBank:
    out = tmp_path_factory.mktemp("ucla") / "ucla.h5"
    preprocess("nwucla", SUBSET, out, PreprocessOptions(workers=1))
    with open_dataset(out) as ds:
        assert ds.layout.name == "kinect20"
        return ClipBank.from_dataset(ds, ds.split("xview", "train"), torch.device("cpu"))


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_takes_a_training_step_on_kinect20_clips(name, ucla_bank):
    cfg = load_preset(name)
    torch.manual_seed(0)
    method = build_method(cfg.method, get_layout("kinect20"), cfg.data.frames, cfg.data.stream).train()
    encoder = method.query_encoder
    before = [p.detach().clone() for p in encoder.parameters()]
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.optim.lr, momentum=cfg.optim.momentum)
    views = method.make_views(ucla_bank, torch.arange(4), torch.Generator().manual_seed(0))
    out = method(views)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, encoder.parameters(), strict=True))
