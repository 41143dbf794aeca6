"""The dataset sources `skelctl preprocess KIND` knows, one module each: KIND -> a function
`(raw, options) -> SourcePlan` (see `base.py` for the contract). A new kind is a module here
and one line in `SOURCES`."""

from __future__ import annotations

from skelctl.data.sources.base import SourceBuilder
from skelctl.data.sources.custom import custom_plan
from skelctl.data.sources.msr3d import msr3d_plan
from skelctl.data.sources.ntu import ntu60_plan, ntu120_plan
from skelctl.data.sources.nwucla import nwucla_plan
from skelctl.data.sources.pku import pku1_plan, pku2_plan
from skelctl.errors import SkelctlError

SOURCES: dict[str, SourceBuilder] = {
    "ntu60": ntu60_plan,
    "ntu120": ntu120_plan,
    "pku1": pku1_plan,
    "pku2": pku2_plan,
    "nwucla": nwucla_plan,
    "msr3d": msr3d_plan,
    "custom": custom_plan,
}


def source_for(kind: str) -> SourceBuilder:
    """The plan builder of dataset kind `kind`."""
    if kind not in SOURCES:
        raise SkelctlError(f"unknown dataset kind '{kind}' (expected one of {', '.join(SOURCES)})")
    return SOURCES[kind]
