"""Skeleton layouts as data: joint names, bones, SkeleMix parts, centre and alignment joints.

Files use 1-based joint numbers (as dataset docs do); the `Layout` object is 0-based.
Everything that depends on the skeleton (model graphs, the bone stream, SkeleMix parts,
view alignment) derives from a `Layout`, so every preset trains on every layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from skelctl.errors import SkelctlError

BUILTIN_LAYOUTS = ("ntu25", "kinect20", "msr20")
PART_NAMES = ("trunk", "arm_left", "arm_right", "leg_left", "leg_right")
ALIGN_KEYS = ("base", "spine", "right_shoulder", "left_shoulder")
# optional: the joint between the shoulders (NTU's spine shoulder, Kinect v1's shoulder centre),
# the per-frame centre of SkeleMixCLR's input normalisation
OPTIONAL_ALIGN_KEYS = ("neck",)


@dataclass(frozen=True)
class Layout:
    name: str
    joints: tuple[str, ...]
    parents: tuple[int, ...]  # 0-based parent per joint, -1 for the root
    parts: dict[str, tuple[int, ...]]  # 0-based joints per body part
    center: int
    align: dict[str, int]

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def bones(self) -> list[tuple[int, int]]:
        """(joint, parent) pairs, one per non-root joint."""
        return [(j, p) for j, p in enumerate(self.parents) if p >= 0]

    @property
    def bone_parents(self) -> list[int]:
        """Parent per joint for the bone stream; the root is its own parent (a zero bone)."""
        return [p if p >= 0 else j for j, p in enumerate(self.parents)]

    def to_dict(self) -> dict[str, Any]:
        """The 1-based YAML/JSON form (what files and HDF5 attrs hold)."""
        return {
            "name": self.name,
            "joints": list(self.joints),
            "parents": [p + 1 for p in self.parents],
            "parts": {k: [j + 1 for j in v] for k, v in self.parts.items()},
            "center": self.center + 1,
            "align": {k: v + 1 for k, v in self.align.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, raw: Any, source: str = "layout") -> Layout:
        return _parse_layout(raw, source)

    @classmethod
    def from_json(cls, text: str) -> Layout:
        return _parse_layout(json.loads(text), "layout json")


def get_layout(name_or_path: str | Path) -> Layout:
    """A built-in layout by name (`ntu25`, `kinect20`) or one read from a YAML file."""
    name = str(name_or_path)
    if name in BUILTIN_LAYOUTS:
        text = resources.files("skelctl.resources").joinpath(f"layouts/{name}.yaml").read_text()
        return _parse_layout(yaml.safe_load(text), name)
    path = Path(name)
    if not path.is_file():
        raise SkelctlError(
            f"unknown layout (expected one of {', '.join(BUILTIN_LAYOUTS)} or a YAML file)", name
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except UnicodeDecodeError as exc:
        raise SkelctlError(f"not a valid YAML layout (not UTF-8 text: {exc.reason})", path) from exc
    except yaml.YAMLError as exc:  # its str() spans several lines: keep the problem and its line
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = None if mark is None else mark.line + 1
        raise SkelctlError(f"not a valid YAML layout ({problem})", path, line) from exc
    return _parse_layout(raw, str(path))


def _parse_layout(raw: Any, source: str) -> Layout:
    def fail(key: str, what: str) -> SkelctlError:
        return SkelctlError(f"layout key '{key}': {what}", source)

    if not isinstance(raw, dict):
        raise SkelctlError("a layout must be a mapping", source)
    unknown = set(raw) - {"name", "joints", "parents", "parts", "center", "align"}
    if unknown:
        raise fail(sorted(unknown)[0], "unknown key")
    joints = raw.get("joints")
    if not isinstance(joints, list) or len(joints) < 2 or not all(isinstance(j, str) for j in joints):
        raise fail("joints", "expected a list of at least 2 joint names")
    repeated = sorted({j for j in joints if joints.count(j) > 1})
    if repeated:
        raise fail("joints", f"joint name '{repeated[0]}' appears twice")
    v = len(joints)

    def joint_index(value: Any, key: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= v:
            raise fail(key, f"expected a joint number in 1..{v}, got {value!r}")
        return value - 1

    parents_raw = raw.get("parents")
    if not isinstance(parents_raw, list) or len(parents_raw) != v:
        raise fail("parents", f"expected {v} parent numbers (0 for the root)")
    parents = tuple(-1 if p == 0 else joint_index(p, "parents") for p in parents_raw)
    roots = [j for j, p in enumerate(parents) if p < 0]
    if len(roots) != 1:
        raise fail("parents", f"expected exactly one root (parent 0), got {len(roots)}")
    for j in range(v):  # every joint must reach the root: the graph is a connected tree
        seen, k = set(), j
        while parents[k] >= 0:
            if k in seen:
                raise fail("parents", f"cycle through joint {j + 1}")
            seen.add(k)
            k = parents[k]

    parts_raw = raw.get("parts")
    if not isinstance(parts_raw, dict) or set(parts_raw) != set(PART_NAMES):
        raise fail("parts", f"expected exactly the parts {', '.join(PART_NAMES)}")
    for k in PART_NAMES:
        if not isinstance(parts_raw[k], list) or not parts_raw[k]:
            raise fail(f"parts.{k}", "expected a non-empty list of joint numbers")
    parts = {k: tuple(joint_index(j, f"parts.{k}") for j in parts_raw[k]) for k in PART_NAMES}
    owners: dict[int, list[str]] = {}
    for k, members in parts.items():
        for j in members:
            owners.setdefault(j, []).append(k)
    for j in range(v):  # SkeleMix swaps whole parts: a joint in two parts, or in none, breaks it
        if len(owners.get(j, [])) != 1:
            where = " and ".join(owners.get(j, [])) or "no part"
            raise fail("parts", f"every joint must belong to exactly one part; joint {j + 1} "
                       f"({joints[j]}) is in {where}")

    align_raw = raw.get("align")
    if (not isinstance(align_raw, dict) or not set(ALIGN_KEYS) <= set(align_raw)
            or not set(align_raw) <= set(ALIGN_KEYS + OPTIONAL_ALIGN_KEYS)):
        raise fail("align", f"expected the joints {', '.join(ALIGN_KEYS)} "
                   f"(optional: {', '.join(OPTIONAL_ALIGN_KEYS)})")
    align = {k: joint_index(align_raw[k], f"align.{k}") for k in ALIGN_KEYS + OPTIONAL_ALIGN_KEYS
             if k in align_raw}
    for a, b in (("base", "spine"), ("right_shoulder", "left_shoulder")):
        if align[a] == align[b]:  # the alignment rotation is built from these two vectors
            raise fail(f"align.{b}", f"must differ from align.{a} (they define an axis)")
    name = raw.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise fail("name", "expected a string")
    return Layout(
        name=name,
        joints=tuple(joints),
        parents=parents,
        parts=parts,
        center=joint_index(raw.get("center"), "center"),
        align=align,
    )
