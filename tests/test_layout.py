"""Layouts as data: the shipped ones and the docs example give sound graphs; bad YAML is named."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from skelctl.augment.skelemix import mix, sample_region
from skelctl.augment.streams import to_stream
from skelctl.data.layout import PART_NAMES, Layout, get_layout
from skelctl.errors import SkelctlError
from skelctl.models.graph import adjacency

DOCS_EXAMPLE = Path(__file__).parents[1] / "docs" / "coco17.yaml"
LAYOUTS = ("ntu25", "kinect20", "msr20", str(DOCS_EXAMPLE))

# The NTU RGB+D bone list as the ST-GCN / 2s-AGCN graphs give it, (joint, parent), 1-based.
NTU_BONES = {
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
}
# The Kinect v1 skeleton (NW-UCLA), by joint names.
KINECT_BONES = {
    ("spine", "hip_center"), ("shoulder_center", "spine"), ("head", "shoulder_center"),
    ("left_shoulder", "shoulder_center"), ("left_elbow", "left_shoulder"),
    ("left_wrist", "left_elbow"), ("left_hand", "left_wrist"),
    ("right_shoulder", "shoulder_center"), ("right_elbow", "right_shoulder"),
    ("right_wrist", "right_elbow"), ("right_hand", "right_wrist"),
    ("left_hip", "hip_center"), ("left_knee", "left_hip"), ("left_ankle", "left_knee"),
    ("left_foot", "left_ankle"), ("right_hip", "hip_center"), ("right_knee", "right_hip"),
    ("right_ankle", "right_knee"), ("right_foot", "right_ankle"),
}


def reachable(layout: Layout, start: int) -> set[int]:
    """Joints reachable from `start` along bones, in either direction."""
    neighbours: dict[int, set[int]] = {j: set() for j in range(layout.num_joints)}
    for joint, parent in layout.bones:
        neighbours[joint].add(parent)
        neighbours[parent].add(joint)
    seen, todo = {start}, [start]
    while todo:
        for k in neighbours[todo.pop()] - seen:
            seen.add(k)
            todo.append(k)
    return seen


@pytest.mark.parametrize("name", LAYOUTS)
def test_layout_graph_is_a_connected_tree_and_parts_partition_the_joints(name):
    layout = get_layout(name)
    v = layout.num_joints
    assert len(layout.joints) == len(set(layout.joints)) == v
    assert len(layout.bones) == v - 1  # a tree: one bone per non-root joint
    for joint, parent in layout.bones:
        assert 0 <= joint < v and 0 <= parent < v and joint != parent
    assert reachable(layout, 0) == set(range(v))
    members = sorted(j for part in PART_NAMES for j in layout.parts[part])
    assert members == list(range(v))  # every joint in exactly one part
    assert all(layout.parts[part] for part in PART_NAMES)
    assert 0 <= layout.center < v
    assert layout.align["base"] != layout.align["spine"]
    assert layout.align["left_shoulder"] != layout.align["right_shoulder"]


@pytest.mark.parametrize("name", LAYOUTS)
def test_adjacency_follows_the_bones(name):
    layout = get_layout(name)
    a = adjacency(layout)
    v = layout.num_joints
    assert a.shape == (3, v, v)
    np.testing.assert_array_equal(a[0], np.eye(v))
    linked = {(int(p), int(j)) for p, j in zip(*np.nonzero(a[1]), strict=True)}
    assert linked == {(p, j) for j, p in layout.bones}
    np.testing.assert_array_equal(a[2] > 0, a[1].T > 0)
    for subset in a[1:]:
        sums = subset.sum(axis=0)
        assert np.allclose(sums[sums > 0], 1.0)  # columns normalised


@pytest.mark.parametrize("name", LAYOUTS)
def test_layout_round_trips_through_json_and_yaml(name, tmp_path):
    layout = get_layout(name)
    assert Layout.from_json(layout.to_json()) == layout
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(layout.to_dict()))
    assert get_layout(path) == layout


def test_ntu25_bones_are_the_published_ntu_graph():
    layout = get_layout("ntu25")
    assert {(j + 1, p + 1) for j, p in layout.bones} == NTU_BONES
    assert layout.joints[layout.center] == "spine_mid"


def test_kinect20_bones_are_the_kinect_v1_skeleton():
    layout = get_layout("kinect20")
    names = {(layout.joints[j], layout.joints[p]) for j, p in layout.bones}
    assert names == KINECT_BONES
    assert layout.joints[layout.center] == "spine"
    for part, side in (("arm_left", "left"), ("leg_right", "right")):
        assert all(layout.joints[j].startswith(side) for j in layout.parts[part])


def test_docs_example_is_coco17():
    layout = get_layout(DOCS_EXAMPLE)
    assert layout.name == "coco17" and layout.num_joints == 17
    assert layout.joints[:3] == ("nose", "left_eye", "right_eye")
    assert layout.joints[layout.center] == "left_hip"


@pytest.mark.parametrize("name", LAYOUTS)
def test_bone_stream_and_skelemix_follow_any_layout(name):
    layout = get_layout(name)
    v = layout.num_joints
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 8, v, 2, generator=gen)
    bone = to_stream(x, "bone", layout)
    for joint, parent in layout.bones:
        torch.testing.assert_close(bone[:, :, :, joint], x[:, :, :, joint] - x[:, :, :, parent])
    root = layout.parents.index(-1)
    assert torch.all(bone[:, :, :, root] == 0)
    region = sample_region(4, layout, gen, frames=8, stride=4, feature_frames=(1, 2))
    pasted = region.joints.nonzero().flatten().tolist()
    parts = [set(layout.parts[p]) for p in PART_NAMES]
    assert set(pasted) == set().union(*(p for p in parts if p & set(pasted)))  # whole parts
    assert mix(x, region).shape == x.shape


# ---------------------------------------------------------------- invalid layout files


def kinect_dict() -> dict:
    return copy.deepcopy(get_layout("kinect20").to_dict())


def edit(path: tuple[str, ...], value) -> dict:
    raw = kinect_dict()
    target = raw
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return raw


DELETE = object()
BAD_LAYOUTS = {
    "unknown key": ({**kinect_dict(), "bonez": []}, "'bonez': unknown key"),
    "no joints": (edit(("joints",), DELETE), "'joints'"),
    "repeated joint name": (edit(("joints",), ["spine"] * 20), "'joints': joint name 'spine' appears twice"),
    "parents length": (edit(("parents",), [0, 1, 2]), "'parents': expected 20 parent numbers"),
    "parent out of range": (edit(("parents",), [0] + [21] * 19), "'parents': expected a joint number in 1..20, got 21"),
    "two roots": (edit(("parents",), [0, 0] + list(range(2, 20))), "'parents': expected exactly one root"),
    "cycle": (edit(("parents",), [0, 3, 2] + list(range(3, 20))), "'parents': cycle through joint"),
    "missing part": (edit(("parts", "leg_right"), DELETE), "'parts': expected exactly the parts"),
    "part not a list": (edit(("parts", "trunk"), 3), "'parts.trunk': expected a non-empty list"),
    "joint in two parts": (edit(("parts", "trunk"), [1, 2, 3, 4, 5]), "joint 5 (left_shoulder) is in trunk and arm_left"),
    "joint in no part": (edit(("parts", "trunk"), [1, 2, 3]), "joint 4 (head) is in no part"),
    "center zero": (edit(("center",), 0), "'center': expected a joint number in 1..20, got 0"),
    "center by name": (edit(("center",), "spine"), "'center': expected a joint number"),
    "align key missing": (edit(("align", "base"), DELETE), "'align': expected the joints"),
    "align degenerate": (edit(("align", "spine"), 1), "'align.spine': must differ from align.base"),
    "align out of range": (edit(("align", "left_shoulder"), 99), "'align.left_shoulder'"),
    "name not a string": (edit(("name",), 5), "'name': expected a string"),
}


@pytest.mark.parametrize("case", sorted(BAD_LAYOUTS))
def test_invalid_layout_yaml_gives_one_line_naming_the_key(case, tmp_path):
    raw, expected = BAD_LAYOUTS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SkelctlError) as info:
        get_layout(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: layout key ")
    assert expected in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[1, 2, 3]\n", "a layout must be a mapping"), ("joints: [a, b\n", "not a valid YAML layout"), ("", "a layout must be a mapping")],
)
def test_layout_file_that_is_not_a_layout(text, expected, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SkelctlError, match=expected) as info:
        get_layout(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_unknown_layout_name_lists_the_builtins():
    with pytest.raises(SkelctlError, match=r"coco18: unknown layout \(expected one of ntu25, kinect20, msr20 or a YAML file\)"):
        get_layout("coco18")
