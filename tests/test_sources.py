"""What every dataset source shares, checked once per kind: the registry and the refusal of a
`--layout` that the kind's files do not hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli

from skelctl.data.sources import SOURCES, source_for
from skelctl.errors import SkelctlError

FIXTURES = Path(__file__).parent / "fixtures"
FIXED_LAYOUT = {  # kind: (raw fixture files, the layout they hold, another layout)
    "ntu60": (FIXTURES / "ntu", "ntu25", "kinect20"),
    "nwucla": (FIXTURES / "nw_ucla", "kinect20", "ntu25"),
    "msr3d": (FIXTURES / "msr3d", "msr20", "kinect20"),
}


def test_every_kind_is_registered_and_an_unknown_one_is_named():
    assert list(SOURCES) == ["ntu60", "ntu120", "pku1", "pku2", "nwucla", "msr3d", "custom"]
    assert all(source_for(kind) is SOURCES[kind] for kind in SOURCES)
    with pytest.raises(SkelctlError, match="unknown dataset kind 'kinetics' \\(expected one of ntu60"):
        source_for("kinetics")


@pytest.mark.parametrize("kind", sorted(FIXED_LAYOUT))
def test_a_layout_the_files_do_not_hold_is_a_usage_error(kind, tmp_path):
    raw, held, other = FIXED_LAYOUT[kind]
    out = tmp_path / "out.h5"
    code, stdout, stderr = run_cli(["preprocess", kind, str(raw), "-o", str(out), "--json",
                                    "--workers", "1", "--layout", other])
    message = f"{kind} files hold the {held} layout; drop --layout {other}"
    error = json.loads(stdout)["error"]  # the failure document is the only output
    assert code == 2 and error["exit_code"] == 2 and error["reason"] == message
    assert stderr.strip() == f"error: {message}" and not out.exists()
