"""The skeleton graph of the graph encoders, derived from a `Layout` (never a hard-coded joint list).

Convention (2s-AGCN's): features aggregate as `x @ A[k]`, so `A[k][v, w]` weights what joint `w`
receives from joint `v`, and every non-empty column sums to 1 (mean over the senders).
"""

from __future__ import annotations

import numpy as np

from skelctl.data.layout import Layout

NUM_SUBSETS = 3  # identity, inward, outward


def adjacency(layout: Layout) -> np.ndarray:
    """(3, V, V) float32: identity, normalised inward links, normalised outward links.

    The inward subset marks each bone (joint j, parent p) at `[p, j]`, as 2s-AGCN's `edge2mat`
    does with its (child, parent) list; the outward subset is its transpose. Both are then
    column-normalised, so a joint with several children averages over them.
    """
    v = layout.num_joints
    inward = np.zeros((v, v), dtype=np.float64)
    for joint, parent in layout.bones:
        inward[parent, joint] = 1.0
    stacked = np.stack([np.eye(v), _normalise_columns(inward), _normalise_columns(inward.T)])
    return stacked.astype(np.float32)


def _normalise_columns(a: np.ndarray) -> np.ndarray:
    """Divide each column by its sum; empty columns stay zero."""
    sums = a.sum(axis=0)
    return a / np.where(sums > 0, sums, 1.0)
