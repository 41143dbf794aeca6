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
    present = clip.any(axis=(1, 2, 3))  # an all-zero body is indistinguishable from none
    if not present.any():
        raise SkelctlError("no body left after denoising", f.path)
    return clip[present]


def _denoised_slots(f: NtuSkeletonFile) -> np.ndarray:
    """Actor slot (0, 1, or -1 for dropped) of every record, by SPEC 2.1."""
    slot = np.full(len(f.body_id), -1, dtype=np.int64)
    ids, first_seen, which = np.unique(f.body_id, return_index=True, return_inverse=True)
    if len(ids) <= 1:  # a single body is taken as is
        slot[:] = 0
        return slot
    bodies = [np.flatnonzero(which == k) for k in np.argsort(first_seen)]  # by first appearance

    # 1. Length: a body ID seen in few frames is noise.
    bodies = [b for b in bodies if len(np.unique(f.body_frame[b])) > NOISE_MAX_FRAMES]
    # 2. Spread: drop a body whose frames are mostly wider than tall, but never the last one
    #    (the reference stops there too). 3. Motion over its non-noisy frames.
    kept, motion = [], []
    remaining = len(bodies)
    for body in bodies:
        points = f.xyz[body].astype(np.float64)
        spread = points.max(axis=1) - points.min(axis=1)  # (frames, xyz)
        noisy = spread[:, 0] > SPREAD_RATIO * spread[:, 1]
        if remaining > 1 and noisy.mean() >= NOISY_FRACTION:
            remaining -= 1
            continue
        clean = points[~noisy] if not noisy.all() else points
        kept.append(body)
        motion.append(float(np.var(clean.reshape(-1, 3), axis=0).sum()))

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
