"""Batched augmentations: distributions, reference equality, no cross-clip leaks, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skelctl.augment import (
    crop_resize,
    isc_one_of,
    joint_jitter,
    joint_mask,
    mix,
    pad_crop,
    rotate,
    sample_region,
    shear,
    to_stream,
)
from skelctl.data.clips import ClipBank
from skelctl.data.layout import PART_NAMES, Layout, get_layout
from skelctl.errors import SkelctlError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
NTU = get_layout("ntu25")


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def random_bank(lengths: list[int], seed: int = 0, device: str = "cpu") -> ClipBank:
    """Random clips (T, 2, 25, 3) with the second body absent (zeros) in every other clip."""
    rng = np.random.default_rng(seed)
    clips = [rng.standard_normal((t, 2, 25, 3)).astype(np.float32) for t in lengths]
    for c in clips[1::2]:
        c[:, 1] = 0
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return ClipBank.from_arrays(np.concatenate(clips), offsets, device=device)


def tagged_bank(lengths: list[int], joints: int = 1, bodies: int = 1, device: str = "cpu"):
    """Channel 0 = the clip's id, channel 1 = the frame's position in its clip, channel 2 noise."""
    rng = np.random.default_rng(1)
    clips = []
    for i, t in enumerate(lengths):
        c = rng.standard_normal((t, bodies, joints, 3)).astype(np.float32)
        c[..., 0] = i
        c[..., 1] = np.arange(t)[:, None, None]
        clips.append(c)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return ClipBank.from_arrays(np.concatenate(clips), offsets, device=device)


def as_clip(x: torch.Tensor) -> np.ndarray:
    """(C, T, V, M) -> the stored (T, M, V, C) order."""
    return x.permute(1, 3, 2, 0).cpu().numpy()


def stored(bank: ClipBank, i: int) -> np.ndarray:
    return bank.frames[bank.offsets[i] : bank.offsets[i + 1]].cpu().numpy()


def reference_resize(clip: np.ndarray, frames: int) -> np.ndarray:
    """Naive half-pixel linear resize of one clip (T, ...), one coordinate at a time."""
    t = len(clip)
    source = np.clip((np.arange(frames) + 0.5) * t / frames - 0.5, 0, None)
    flat = clip.reshape(t, -1).astype(np.float64)
    out = np.stack([np.interp(source, np.arange(t), flat[:, k]) for k in range(flat.shape[1])], 1)
    return out.reshape(frames, *clip.shape[1:])


def window_of(out: torch.Tensor, frames: int) -> tuple[int, int]:
    """(start, crop length) of the window a crop_resize output came from, read off channel 1
    of a tagged bank (crops of at least `frames` frames are never clamped at the ends)."""
    pos = out[1, :, 0, 0].double()
    step = float(pos[-1] - pos[0]) / (frames - 1)
    return round(float(pos[0]) - (0.5 * step - 0.5)), round(step * frames)


# ---------------------------------------------------------------- temporal


def whole_clips(bank, idx, frames):
    """The un-augmented input: each whole valid clip resized (`ClipView`'s evaluation crop)."""
    return crop_resize(bank, idx, frames, scale=(1.0, 1.0))


@pytest.mark.parametrize("frames", [64, 50])
def test_the_whole_clip_resize_equals_the_naive_reference_and_f_interpolate(frames):
    lengths = [1, 2, 13, 50, 64, 97, 300]
    bank = random_bank(lengths)
    out = whole_clips(bank, torch.arange(len(lengths)), frames)
    assert out.shape == (len(lengths), 3, frames, 25, 2)
    for i in range(len(lengths)):
        np.testing.assert_allclose(
            as_clip(out[i]), reference_resize(stored(bank, i), frames), atol=1e-4
        )
        # the reference feeders' resize: F.interpolate over (C*V*M, T)
        c = torch.from_numpy(stored(bank, i)).permute(3, 2, 1, 0).reshape(1, 150, -1)
        ref = F.interpolate(c, size=frames, mode="linear", align_corners=False)
        np.testing.assert_allclose(
            out[i].permute(0, 2, 3, 1).reshape(150, frames).numpy(), ref[0].numpy(), atol=1e-5
        )


def test_crop_resize_is_a_reference_resize_of_a_valid_window():
    lengths = [40, 64, 65, 120, 300]
    bank = tagged_bank(lengths, joints=25, bodies=2)
    idx = torch.tensor([0, 1, 2, 3, 4] * 8)
    out = crop_resize(bank, idx, 64, scale=(0.1, 1.0), gen=gen(3))
    assert out.shape == (40, 3, 64, 25, 2)
    for row, i in enumerate(idx.tolist()):
        length = lengths[i]
        start, crop = (0, length) if length <= 64 else window_of(out[row], 64)
        assert min(64, length) <= crop <= length and 0 <= start <= length - crop
        window = stored(bank, i)[start : start + crop]
        np.testing.assert_allclose(as_clip(out[row]), reference_resize(window, 64), atol=1e-4)


def test_crop_lengths_and_starts_follow_the_isc_distribution():
    length, frames, n = 300, 64, 4000
    bank = tagged_bank([length])
    out = crop_resize(bank, torch.zeros(n, dtype=torch.long), frames, (0.1, 1.0), gen(5))
    starts, crops = map(np.array, zip(*(window_of(o, frames) for o in out), strict=True))
    assert crops.min() == frames and crops.max() <= length
    assert (starts >= 0).all() and (starts + crops <= length).all()
    # crop = max(floor(U(0.1, 1) * 300), 64): mass at 64 is P(U * 300 < 65) = (65/300 - 0.1) / 0.9
    assert abs((crops == frames).mean() - (65 / 300 - 0.1) / 0.9) < 0.025
    # above the floor the crop length is uniform on 65..300
    counts = np.histogram(crops[crops > frames], bins=4, range=(65, 301))[0]
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()
    # the start is uniform in [0, length - crop]
    relative = starts / (length - crops + 1)
    assert abs(relative.mean() - 0.5) < 0.03
    assert np.histogram(relative, bins=4, range=(0, 1))[0].min() > 0.2 * n


def test_short_clips_are_kept_whole():
    bank = tagged_bank([10, 63])
    out = crop_resize(bank, torch.tensor([0, 1] * 50), 64, (0.1, 0.5), gen(0))
    for row in range(100):
        i = row % 2
        expected = reference_resize(stored(bank, i), 64)
        np.testing.assert_allclose(as_clip(out[row]), expected, atol=1e-4)


def test_centre_crop_is_deterministic_and_takes_the_middle_fraction():
    lengths = [7, 64, 100, 257]
    bank = random_bank(lengths)
    idx = torch.arange(4)
    out = crop_resize(bank, idx, 64, scale=(0.5, 0.95))
    assert torch.equal(out, crop_resize(bank, idx, 64, scale=(0.5, 0.95)))
    for i, length in enumerate(lengths):
        bias = int((1 - 0.95) * length / 2)
        window = stored(bank, i)[bias : length - bias]
        np.testing.assert_allclose(as_clip(out[i]), reference_resize(window, 64), atol=1e-5)


def test_no_frame_of_a_neighbouring_clip_ever_leaks():
    lengths = list(range(1, 90, 4))
    bank = tagged_bank(lengths, joints=2, bodies=2)
    g = gen(11)
    idx = torch.randint(0, len(lengths), (400,), generator=g)
    ids = idx.double()[:, None]
    valid = torch.tensor(lengths, dtype=torch.float64)[idx][:, None]
    outputs = {
        "crop_resize": crop_resize(bank, idx, 64, (0.1, 1.0), g),
        "centre": crop_resize(bank, idx, 50, (0.5, 0.9)),
        "pad_crop": pad_crop(bank, idx, 64, gen=g),
        "whole": whole_clips(bank, idx, 32),
    }
    for name, out in outputs.items():
        clip_id = out[:, 0].reshape(len(idx), -1).double()
        position = out[:, 1].reshape(len(idx), -1).double()
        assert torch.equal(clip_id, ids.expand_as(clip_id)), name
        assert (position >= 0).all() and (position <= valid - 1).all(), name


def test_pad_crop_is_a_window_of_the_mirror_padded_resized_clip():
    frames, pad, n = 64, 10, 2100
    lengths = [64, 71, 150, 299]
    bank = tagged_bank(lengths)
    idx = torch.arange(n) % len(lengths)
    out = pad_crop(bank, idx, frames, gen=gen(2))
    assert out.shape == (n, 3, frames, 1, 1)
    resized = whole_clips(bank, torch.arange(len(lengths)), frames).numpy()
    padded = np.pad(resized, ((0, 0), (0, 0), (pad, pad), (0, 0), (0, 0)), mode="symmetric")
    shifts = []
    for row in range(n):
        candidates = padded[idx[row]]
        matches = [
            s
            for s in range(2 * pad + 1)
            if np.allclose(out[row].numpy(), candidates[:, s : s + frames], atol=1e-5)
        ]
        assert len(matches) == 1, f"sample {row} is not exactly one padded window: {matches}"
        shifts.append(matches[0])
    counts = np.bincount(shifts, minlength=2 * pad + 1)
    assert len(counts) == 2 * pad + 1
    assert counts.min() > 0.6 * n / 21 and counts.max() < 1.4 * n / 21


def test_pad_crop_of_short_clips_mirrors_the_resized_clip():
    bank = random_bank([5, 30])
    out = pad_crop(bank, torch.tensor([0, 1] * 20), 64, gen=gen(9))
    resized = whole_clips(bank, torch.arange(2), 64).numpy()
    padded = np.pad(resized, ((0, 0), (0, 0), (10, 10), (0, 0), (0, 0)), mode="symmetric")
    for row in range(40):
        windows = [padded[row % 2][:, s : s + 64] for s in range(21)]
        assert any(np.allclose(out[row].numpy(), w, atol=1e-6) for w in windows)


def test_crop_scale_is_validated():
    bank = random_bank([10])
    with pytest.raises(SkelctlError, match="crop scale"):
        crop_resize(bank, [0], 64, scale=(0.0, 1.0), gen=gen())
    with pytest.raises(SkelctlError, match="crop scale"):
        crop_resize(bank, [0], 64, scale=(0.9, 0.5))


# ---------------------------------------------------------------- spatial


def basis_batch(n: int, joints: int = 1) -> torch.Tensor:
    """(N, 3, 3, V, 1): frame t of every joint holds the unit vector e_t, so a linear map's
    output at frame t is the map's column t."""
    eye = torch.eye(3)[:, :, None, None]  # (C, T, 1, 1)
    return eye.expand(3, 3, joints, 1).repeat(n, 1, 1, 1, 1).reshape(n, 3, 3, joints, 1)


@pytest.mark.parametrize("magnitude", [0.5, 1.0])
def test_shear_has_a_unit_diagonal_and_uniform_off_diagonals(magnitude):
    n = 3000
    matrices = shear(basis_batch(n), gen(4), magnitude)[..., 0, 0]  # (N, 3, 3) = the shear matrix
    eye = torch.eye(3, dtype=torch.bool)
    assert torch.equal(matrices[:, eye], torch.ones(n, 3))
    off = matrices[:, ~eye]  # (N, 6)
    assert off.abs().max() <= magnitude
    assert off.abs().max() > 0.95 * magnitude
    assert abs(off.mean()) < 0.02 * magnitude
    assert abs(off.var() - magnitude**2 / 3) < 0.05 * magnitude**2 / 3
    quarter = np.histogram(off.numpy(), bins=4, range=(-magnitude, magnitude))[0]
    assert quarter.min() > 0.9 * off.numel() / 4
    # per sample, not per batch: the six entries are independent draws
    assert torch.unique(off[:, 0]).numel() > 0.99 * n


def test_linear_augmentations_keep_absent_bodies_at_zero():
    x = random_bank([64, 64], seed=3).frames.reshape(2, 64, 2, 25, 3).permute(0, 4, 1, 3, 2)
    assert (x[1, ..., 1] == 0).all() and (x[0, ..., 1] != 0).any()
    g = gen(1)
    for out in (shear(x, g, 1.0), joint_mask(x, g), joint_jitter(x, g), isc_one_of(x, g)):
        assert (out[1, ..., 1] == 0).all()
        assert (out[0, ..., 1] != 0).any()


def joint_changed(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """(N, V) bool: which joints differ anywhere (any coordinate, frame, body)."""
    return (out != x).permute(0, 3, 1, 2, 4).reshape(x.shape[0], x.shape[3], -1).any(-1)


def joint_zero(out: torch.Tensor) -> torch.Tensor:
    return (out == 0).permute(0, 3, 1, 2, 4).reshape(out.shape[0], out.shape[3], -1).all(-1)


def test_joint_mask_zeroes_exactly_count_joints_per_sample():
    n = 2000
    x = torch.rand(n, 3, 4, 25, 2, generator=gen(0)) + 0.5  # nothing is zero before
    out = joint_mask(x, gen(6), count=15)
    zero = joint_zero(out)
    assert (zero.sum(1) == 15).all()
    assert torch.equal(joint_changed(x, out), zero)  # the other joints are untouched
    frequency = zero.double().mean(0)
    assert (frequency - 15 / 25).abs().max() < 0.05  # every joint equally likely
    assert torch.unique(zero, dim=0).shape[0] > n // 2  # a fresh choice per sample


def test_joint_jitter_applies_one_matrix_to_exactly_count_joints():
    n = 300
    x = torch.rand(n, 3, 6, 25, 2, generator=gen(0)) + 0.5
    out = joint_jitter(x, gen(7), count=15)
    changed = joint_changed(x, out)
    assert (changed.sum(1) == 15).all()
    for row in range(n):
        joints = changed[row].nonzero()[:, 0]
        source = x[row][:, :, joints].reshape(3, -1).double()
        target = out[row][:, :, joints].reshape(3, -1).double()
        matrix = target @ torch.linalg.pinv(source)  # the one map behind all chosen joints
        torch.testing.assert_close(matrix @ source, target, atol=1e-4, rtol=1e-4)
        assert matrix.abs().max() <= 1 + 1e-4


def classify_isc(x: torch.Tensor, out: torch.Tensor) -> np.ndarray:
    """0 shear (every joint changed), 1 mask (15 zeroed), 2 jitter (15 changed, not zeroed)."""
    changed, zero = joint_changed(x, out), joint_zero(out)
    kind = np.full(x.shape[0], -1)
    kind[(changed.sum(1) == 25).numpy()] = 0
    kind[((changed == zero).all(1) & (zero.sum(1) == 15)).numpy()] = 1
    kind[((changed.sum(1) == 15) & (zero.sum(1) == 0)).numpy()] = 2
    return kind


def test_isc_one_of_applies_exactly_one_augmentation_with_the_isc_frequencies():
    n = 4000
    x = torch.rand(n, 3, 3, 25, 1, generator=gen(0)) + 0.5
    out = isc_one_of(x, gen(8))
    kind = classify_isc(x, out)
    assert (kind >= 0).all(), "a sample got none or several of the augmentations"
    frequency = np.bincount(kind, minlength=3) / n
    np.testing.assert_allclose(frequency, [0.5, 0.25, 0.25], atol=0.03)
    # the shear is ISC's (m = 1), not SkeleMix's (m = 0.5)
    sheared = torch.from_numpy(kind == 0)
    probe = isc_one_of(basis_batch(n, joints=25), gen(8))[sheared][
        ..., 0, 0
    ]  # same draws: same choices
    off = probe[:, ~torch.eye(3, dtype=torch.bool)]
    assert off.abs().max() <= 1.0 and off.abs().max() > 0.9


def test_isc_one_of_follows_other_probabilities():
    x = torch.rand(2000, 3, 3, 25, 1, generator=gen(0)) + 0.5
    kind = classify_isc(x, isc_one_of(x, gen(1), p=(0.0, 1.0, 0.0)))
    assert (kind == 1).all()
    kind = classify_isc(x, isc_one_of(x, gen(1), p=(1.0, 0.0, 3.0)))
    assert abs((kind == 2).mean() - 0.75) < 0.04 and not (kind == 1).any()


def test_joint_count_is_validated():
    with pytest.raises(SkelctlError, match="cannot pick 30 joints"):
        joint_mask(torch.zeros(2, 3, 4, 25, 2), gen(), count=30)


# ---------------------------------------------------------------- SkeleMix


def part_sizes(layout: Layout) -> list[int]:
    return [len(layout.parts[name]) for name in PART_NAMES]


def test_ntu_part_combinations_span_8_to_17_joints():
    sizes = part_sizes(NTU)
    totals = [sum(c) for k in (2, 3) for c in itertools.combinations(sizes, k)]
    assert (min(totals), max(totals)) == (8, 17)


def test_skelemix_regions_follow_the_spec():
    n, draws = 8, 600
    g = gen(12)
    joint_counts, part_counts, offsets, lengths, starts = [], [], [], [], []
    for _ in range(draws):
        region = sample_region(n, NTU, g)
        assert region.joints.shape == (25,) and region.feature_mask.shape == (16, 25)
        assert region.input_mask.shape == (64, 25)
        # whole body parts only: each part is either entirely pasted or not at all
        inside = [region.joints[list(NTU.parts[p])] for p in PART_NAMES]
        assert all(bool(m.all()) or not bool(m.any()) for m in inside)
        part_counts.append(sum(bool(m.all()) for m in inside))
        joint_counts.append(int(region.joints.sum()))
        # the feature region is a contiguous block of frames at exactly the chosen joints
        frames_in = region.feature_mask.any(1).nonzero()[:, 0]
        assert torch.equal(frames_in, torch.arange(int(frames_in[0]), int(frames_in[-1]) + 1))
        assert (region.feature_mask[frames_in] == region.joints).all()
        lengths.append(len(frames_in))
        starts.append(int(frames_in[0]))
        # the input region is the feature region upsampled by the stride
        assert torch.equal(region.input_mask, region.feature_mask[torch.arange(64) // 4])
        offsets.append(int(region.offset))
    assert set(part_counts) == {2, 3}
    assert min(joint_counts) == 8 and max(joint_counts) == 17
    assert set(lengths) == set(range(7, 12))
    assert 4 * min(lengths) == 28 and 4 * max(lengths) == 44
    assert all(0 <= s <= 16 - length for s, length in zip(starts, lengths, strict=True))
    assert set(starts) == set(range(0, 10))  # uniform start: 0 .. 16 - 7 all occur
    assert set(offsets) == set(range(1, n - 1))


def test_skelemix_pastes_the_rolled_partner_into_the_region_only():
    n = 6
    x = torch.randn(n, 3, 64, 25, 2, generator=gen(0))
    region = sample_region(n, NTU, gen(13))
    mixed = mix(x, region)
    partner = x.roll(int(region.offset), dims=0)
    assert torch.equal(region.partner(x), partner)
    inside = region.input_mask[None, None, :, :, None].expand_as(x)
    assert torch.equal(mixed[inside], partner[inside])
    assert torch.equal(mixed[~inside], x[~inside])
    pasted = region.input_mask.sum()
    assert 8 * 28 <= pasted <= 17 * 44


def test_skelemix_other_layouts_and_frame_counts():
    kinect = get_layout("kinect20")
    region = sample_region(4, kinect, gen(1), frames=50, stride=4)
    assert region.feature_mask.shape == (13, 20) and region.input_mask.shape == (50, 20)
    assert 8 <= int(region.joints.sum()) <= 12
    with pytest.raises(SkelctlError, match="at least 3 clips"):
        sample_region(2, NTU, gen())
    with pytest.raises(SkelctlError, match="feature frames"):
        sample_region(8, NTU, gen(), frames=16)
    with pytest.raises(SkelctlError, match=r"\(T, V\)"):
        mix(torch.zeros(4, 3, 32, 25, 2), sample_region(4, NTU, gen()))


# ---------------------------------------------------------------- streams


def chain_layout() -> Layout:
    """Five joints in a chain 1 <- 2 <- 3 <- 4 <- 5, one joint per part."""
    return Layout.from_dict(
        {
            "name": "chain",
            "joints": ["a", "b", "c", "d", "e"],
            "parents": [0, 1, 2, 3, 4],
            "parts": {name: [i + 1] for i, name in enumerate(PART_NAMES)},
            "center": 1,
            "align": {"base": 1, "spine": 2, "right_shoulder": 3, "left_shoulder": 4},
        }
    )


def test_bone_stream_of_a_known_geometry():
    # joint j at x = j^2: the bone to its parent is j^2 - (j-1)^2 = 2j - 1, the root's is zero
    x = torch.zeros(2, 3, 4, 5, 2)
    x[:, 0] = (torch.arange(5.0) ** 2)[None, None, :, None]
    x[:, 2] = 7.0  # the same z everywhere: zero bone component
    bone = to_stream(x, "bone", chain_layout())
    expected = torch.tensor([0.0, 1, 3, 5, 7])
    assert torch.equal(bone[:, 0], expected[None, None, :, None].expand(2, 4, 5, 2))
    assert (bone[:, 1:] == 0).all()


def test_bone_stream_on_ntu_uses_the_layout_parents():
    x = torch.randn(2, 3, 5, 25, 2, generator=gen(0))
    bone = to_stream(x, "bone", NTU)
    assert (bone[:, :, :, 20] == 0).all()  # spine_shoulder (joint 21) is the root
    torch.testing.assert_close(bone[:, :, :, 0], x[:, :, :, 0] - x[:, :, :, 1])  # 1 - 2
    torch.testing.assert_close(bone[:, :, :, 23], x[:, :, :, 23] - x[:, :, :, 24])  # 24 - 25
    torch.testing.assert_close(bone[:, :, :, 24], x[:, :, :, 24] - x[:, :, :, 11])  # 25 - 12


def test_motion_and_joint_streams():
    t = torch.arange(6.0)
    x = (t**2)[None, None, :, None, None].expand(2, 3, 6, 25, 2).contiguous()
    motion = to_stream(x, "motion", NTU)
    expected = torch.tensor([1.0, 3, 5, 7, 9, 0])  # (t+1)^2 - t^2, last frame zero
    assert torch.equal(motion, expected[None, None, :, None, None].expand_as(x))
    assert to_stream(x, "joint", NTU) is x
    with pytest.raises(SkelctlError, match="unknown stream"):
        to_stream(x, "velocity", NTU)
    with pytest.raises(SkelctlError, match="25 joints"):
        to_stream(torch.zeros(1, 3, 4, 20, 2), "bone", NTU)


# ---------------------------------------------------------------- pipelines


def skelemix_views(bank: ClipBank, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    view = shear(pad_crop(bank, idx, 64, gen=g), g, 0.5)
    return mix(view, sample_region(len(idx), NTU, g))


def isc_views(bank: ClipBank, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return isc_one_of(crop_resize(bank, idx, 64, (0.1, 1.0), g), g)


@pytest.mark.parametrize("pipeline", [skelemix_views, isc_views])
def test_same_seed_same_views_other_seed_other_views(pipeline):
    bank = random_bank([30, 80, 150, 64, 200, 9])
    idx = torch.tensor([5, 0, 3, 1, 2, 4, 0, 1])
    first = pipeline(bank, idx, gen(21))
    assert torch.equal(first, pipeline(bank, idx, gen(21)))
    assert not torch.equal(first, pipeline(bank, idx, gen(22)))


@pytest.mark.parametrize("device", DEVICES)
def test_pipelines_run_on_the_bank_device(device):
    lengths = [3, 64, 90, 150, 33]
    bank = tagged_bank(lengths, joints=25, bodies=2, device=device)
    g = gen(0, device)
    idx = torch.randint(0, 5, (16,), generator=g, device=device)
    for pipeline in (skelemix_views, isc_views):
        out = pipeline(bank, idx, g)
        assert out.device == bank.device and out.shape == (16, 3, 64, 25, 2)
        assert torch.isfinite(out).all()
    plain = whole_clips(bank, idx, 64)
    assert plain.device == bank.device
    assert torch.equal(plain[:, 0], idx[:, None, None, None].float().expand(16, 64, 25, 2))
    assert to_stream(plain, "bone", NTU).device == bank.device


def test_isc_joint_count_keeps_ntu_share_on_other_layouts():
    """15 of 25 joints on NTU; the same 60 % (12 of 20) on Kinect v1, not 15 of 20."""
    gen = torch.Generator().manual_seed(0)
    for v, expected in ((25, 15), (20, 12)):
        x = torch.ones(64, 3, 4, v, 2)
        masked = joint_mask(x, gen)
        zeroed = (masked.abs().sum(dim=(1, 2, 4)) == 0).sum(dim=1)
        assert (zeroed == expected).all()


@pytest.mark.parametrize("degrees", [30.0, 90.0])
def test_rotate_turns_each_sample_about_the_vertical_by_a_uniform_angle(degrees):
    n = 3000
    matrices = rotate(basis_batch(n), gen(5), degrees)[..., 0, 0]  # (N, 3, 3) = the rotation
    eye = torch.eye(3).expand(n, 3, 3)
    assert torch.allclose(matrices @ matrices.transpose(1, 2), eye, atol=1e-5)  # orthogonal
    assert torch.allclose(torch.linalg.det(matrices), torch.ones(n), atol=1e-5)  # no mirroring
    assert torch.equal(matrices[:, 1], torch.tensor([0.0, 1.0, 0.0]).expand(n, 3))  # y stays
    angle = torch.rad2deg(torch.atan2(matrices[:, 0, 2], matrices[:, 0, 0]))
    assert angle.abs().max() <= degrees + 1e-3
    assert angle.abs().max() > 0.95 * degrees
    assert abs(angle.mean()) < 0.03 * degrees
    assert abs(angle.var() - degrees**2 / 3) < 0.06 * degrees**2 / 3


def test_rotate_keeps_absent_bodies_at_zero_and_refuses_2d_input():
    x = torch.randn(4, 3, 8, 25, 2)
    x[..., 1] = 0
    out = rotate(x, gen(6), 45.0)
    assert torch.equal(out[..., 1], torch.zeros_like(out[..., 1]))
    assert torch.allclose(out.norm(dim=1), x.norm(dim=1), atol=1e-5)  # joint distances kept
    with pytest.raises(SkelctlError, match="3-D"):
        rotate(torch.randn(2, 2, 8, 25, 2), gen(0), 45.0)
