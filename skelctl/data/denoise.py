"""Which bodies of a raw NTU sequence are the two actors (SPEC 2.1).

Kinect reports noise objects (chairs, reflections) as extra short-lived or wide bodies and gives
a person a new body ID after tracking loss, so "the first two bodies of each frame" mixes people
and noise. The default follows the SGN/CTR-GCN denoising used by most recent papers, without the
reference's bookkeeping bug: bodies are tracked by ID and by real frame index, so a body that
re-appears is placed at its own frames and never glued to its old interval.
"""

from __future__ import annotations

import numpy as np

from skelctl.data.formats import NtuSkeletonFile
from skelctl.errors import SkelctlError

BODY_METHODS = ("denoise", "energy", "first")
NUM_ACTORS = 2
NOISE_MAX_FRAMES = 11  # a body ID seen in this many frames or fewer is noise
SPREAD_RATIO = 0.8  # a frame of a body is noisy when its x spread > 0.8 * its y spread
NOISY_FRACTION = 0.69754  # a body is noise when this share of its frames (or more) is noisy


def select_bodies(f: NtuSkeletonFile, method: str = "denoise") -> np.ndarray:
    """(T', 2, 25, 3) float32 joints of actor 1 and actor 2 (zeros when absent), frames where
    both are absent removed: the clip skelctl stores for a raw sequence.

    `method`: "denoise" (SPEC 2.1), "energy" (the two file-order body slots with the largest
    std(x) + std(y) + std(z), as the 2s-AGCN family's gendata) or "first" (the first two bodies
    of each frame, as ST-GCN).
    """
    if method == "denoise":
        slot = _denoised_slots(f)
    elif method == "energy":
        slot = _energy_slots(f)
    elif method == "first":
        rank = _rank_in_frame(f)
        slot = np.where(rank < NUM_ACTORS, rank, -1)
    else:
        raise SkelctlError(f"unknown body selection {method!r} (expected {', '.join(BODY_METHODS)})")
    return _assemble(f, slot)


def _assemble(f: NtuSkeletonFile, slot: np.ndarray) -> np.ndarray:
    """Place every record with a slot (-1: dropped) at its frame; drop frames with no actor."""
    xyz = f.xyz
    clip = np.zeros((f.frame_count, NUM_ACTORS) + xyz.shape[1:], dtype=np.float32)
    chosen = np.flatnonzero(slot >= 0)
    clip[f.body_frame[chosen], slot[chosen]] = xyz[chosen]
    present = clip.reshape(len(clip), -1).any(axis=1)  # an all-zero body is like none
    if not present.any():
        raise SkelctlError("no body left after denoising", f.path)
    return clip if present.all() else clip[present]


def _denoised_slots(f: NtuSkeletonFile) -> np.ndarray:
    """Actor slot (0, 1, or -1 for dropped) of every record, by SPEC 2.1.

    Most files hold one body ID: a check that costs one comparison. The per-body statistics of
    the others are computed for all records at once; only the short walk over bodies is Python.
    """
    ids = f.body_id
    if len(ids) == 0 or (ids == ids[0]).all():  # a single body is taken as is
        return np.zeros(len(ids), dtype=np.int64)
    slot = np.full(len(ids), -1, dtype=np.int64)
    _, first_seen, which = np.unique(ids, return_index=True, return_inverse=True)
    # 1. Length: a body ID seen in few frames is noise (frames counted once per ID).
    seen = np.zeros((len(first_seen), f.frame_count), dtype=bool)
    seen[which, f.body_frame] = True
    frames_seen = seen.sum(axis=1)
    # 2. Spread: a record is noisy when its x spread > 0.8 * its y spread. Joints are laid out
    #    first, (joint, record, xyz), so that numpy reduces over them row by row.
    joints = np.ascontiguousarray(f.xyz.transpose(1, 0, 2))
    spread = joints.max(axis=0).astype(np.float64) - joints.min(axis=0)
    noisy = spread[:, 0] > SPREAD_RATIO * spread[:, 1]
    noisy_share = np.bincount(which, weights=noisy) / np.bincount(which)
    bodies = [k for k in np.argsort(first_seen) if frames_seen[k] > NOISE_MAX_FRAMES]
    # A body mostly noisy is dropped, but never the last one (the reference stops there too).
    # 3. Motion: the summed variance of x, y and z over its non-noisy records.
    coordinates = np.ascontiguousarray(f.xyz.transpose(2, 0, 1), dtype=np.float64)
    kept, motion = [], []
    remaining = len(bodies)
    for k in bodies:
        if remaining > 1 and noisy_share[k] >= NOISY_FRACTION:
            remaining -= 1
            continue
        records = np.flatnonzero(which == k)
        clean = records[~noisy[records]] if not noisy[records].all() else records
        kept.append(records)
        motion.append(float(coordinates[:, clean].reshape(3, -1).var(axis=1).sum()))

    # 4. Actors: by decreasing motion (ties: first seen first), a body joins actor 1 if it
    #    shares no frame with actor 1's bodies, else actor 2 on the same terms, else it is dropped.
    occupied = np.zeros((NUM_ACTORS, f.frame_count), dtype=bool)
    for k in sorted(range(len(kept)), key=lambda k: -motion[k]):
        frames = f.body_frame[kept[k]]
        for actor in range(NUM_ACTORS):
            if not occupied[actor, frames].any():
                occupied[actor, frames] = True
                slot[kept[k]] = actor
                break
    return slot


def _rank_in_frame(f: NtuSkeletonFile) -> np.ndarray:
    """Position of every record among the bodies of its frame, in file order."""
    frame_start = np.cumsum(f.body_counts) - f.body_counts
    return np.arange(len(f.body_id)) - np.repeat(frame_start, f.body_counts)


def _energy_slots(f: NtuSkeletonFile) -> np.ndarray:
    """Keep the two file-order slots with the most spatial variation: noise objects barely move
    and are small, people are neither."""
    rank = _rank_in_frame(f)
    slots = int(rank.max()) + 1 if len(rank) else 0
    energy = np.zeros(slots)
    for m in range(slots):
        points = f.xyz[rank == m].astype(np.float64)
        points = points[points.any(axis=(1, 2))]  # records with data
        if len(points):
            energy[m] = points.reshape(-1, 3).std(axis=0).sum()
    best = np.argsort(-energy, kind="stable")[:NUM_ACTORS]
    slot = np.full(len(rank), -1, dtype=np.int64)
    for actor, m in enumerate(best):
        slot[rank == m] = actor
    return slot
