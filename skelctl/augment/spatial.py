"""Spatial augmentations of batched clips `(N, C, T, V, M)`, one random draw per sample.

Shear, joint masking and joint jitter are all linear maps of each joint's coordinates, so each
is expressed as one `C x C` matrix per sample and joint and applied by a single einsum. That
lets `isc_one_of` pick a different augmentation per sample without computing three outputs,
and it keeps absent (all-zero) bodies at zero.
"""

from __future__ import annotations

import math

import torch

from skelctl.errors import SkelctlError


def shear(x: torch.Tensor, gen: torch.Generator, magnitude: float = 0.5) -> torch.Tensor:
    """Shear (SPEC 4/5): unit diagonal, off-diagonals ~ U(-magnitude, magnitude), per sample."""
    n, c, _, v, _ = x.shape
    return _apply(x, _shear_matrices(n, c, gen, magnitude, x.device)[:, None].expand(n, v, c, c))


def rotate(x: torch.Tensor, gen: torch.Generator, max_degrees: float, axis: int = 1) -> torch.Tensor:
    """Rotate each sample about coordinate `axis` (1 = y, the camera's vertical) by an angle
    ~ U(-max_degrees, max_degrees): a change of viewpoint. Not in either paper; skelctl's
    short CPU presets add it because view is the nuisance a cross-view benchmark tests, and
    a few minutes of training do not learn that invariance from shear alone."""
    n, c, _, v, _ = x.shape
    if c != 3:
        raise SkelctlError(f"rotate needs 3-D coordinates, got {c} channels")
    angle = (2 * torch.rand(n, generator=gen, device=x.device) - 1) * math.radians(max_degrees)
    cos, sin = angle.cos(), angle.sin()
    a, b = [i for i in range(3) if i != axis]
    maps = torch.eye(3, device=x.device).repeat(n, 1, 1)
    maps[:, a, a], maps[:, a, b], maps[:, b, a], maps[:, b, b] = cos, sin, -sin, cos
    return _apply(x, maps[:, None].expand(n, v, c, c))


ISC_JOINT_SHARE = 15 / 25


def joint_mask(x: torch.Tensor, gen: torch.Generator, count: int | None = None) -> torch.Tensor:
    """Zero `count` random joints of each sample in every frame and body (ISC; default: 15 of
    NTU's 25 joints, the same share of other layouts)."""
    n, c, _, v, _ = x.shape
    return _apply(x, _mask_maps(_random_joints(n, v, count, gen, x.device), c))


def joint_jitter(x: torch.Tensor, gen: torch.Generator, count: int | None = None) -> torch.Tensor:
    """Apply one random matrix (entries ~ U(-1, 1)) to `count` random joints per sample (ISC)."""
    n, c, _, v, _ = x.shape
    chosen = _random_joints(n, v, count, gen, x.device)
    return _apply(x, _jitter_maps(chosen, _uniform(n, c, gen, 1.0, x.device)))


def isc_one_of(
    x: torch.Tensor,
    gen: torch.Generator,
    p: tuple[float, float, float] = (0.5, 0.25, 0.25),
    shear_magnitude: float = 1.0,
    count: int | None = None,
) -> torch.Tensor:
    """ISC's spatial step (SPEC 5): exactly one of shear / joint mask / joint jitter per sample,
    chosen with probabilities `p`."""
    if len(p) != 3 or min(p) < 0 or sum(p) <= 0:
        raise SkelctlError(f"isc_one_of needs 3 non-negative probabilities, got {tuple(p)}")
    n, c, _, v, _ = x.shape
    chosen = _random_joints(n, v, count, gen, x.device)
    sheared = _shear_matrices(n, c, gen, shear_magnitude, x.device)[:, None].expand(n, v, c, c)
    jittered = _jitter_maps(chosen, _uniform(n, c, gen, 1.0, x.device))
    u = torch.rand(n, generator=gen, device=x.device, dtype=torch.float64) * sum(p)
    kind = (u >= p[0]).long() + (u >= p[0] + p[1]).long()  # 0 shear, 1 mask, 2 jitter
    kind = kind[:, None, None, None]
    maps = torch.where(kind == 0, sheared, torch.where(kind == 1, _mask_maps(chosen, c), jittered))
    return _apply(x, maps)


def _apply(x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Per sample and joint matrices (N, V, C, C) applied to the coordinates of x (N, C, T, V, M)."""
    return torch.einsum("nvij,njtvm->nitvm", maps.to(x.dtype), x)


def _uniform(
    n: int, c: int, gen: torch.Generator, magnitude: float, device: torch.device
) -> torch.Tensor:
    """(N, C, C) entries ~ U(-magnitude, magnitude)."""
    return (2 * torch.rand(n, c, c, generator=gen, device=device) - 1) * magnitude


def _shear_matrices(
    n: int, c: int, gen: torch.Generator, magnitude: float, device: torch.device
) -> torch.Tensor:
    eye = torch.eye(c, device=device)
    return eye + _uniform(n, c, gen, magnitude, device) * (1 - eye)


def _random_joints(
    n: int, v: int, count: int | None, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(N, V) bool: `count` distinct joints per sample, uniformly at random. ISC masks or jitters
    15 of NTU's 25 joints; `None` keeps that share (60 %) on any layout."""
    if count is None:
        count = round(ISC_JOINT_SHARE * v)
    if not 0 <= count <= v:
        raise SkelctlError(f"cannot pick {count} joints of a {v}-joint skeleton")
    keys = torch.rand(n, v, generator=gen, device=device)
    chosen = torch.zeros(n, v, dtype=torch.bool, device=device)
    return chosen.scatter_(1, keys.topk(count, dim=1).indices, True)


def _mask_maps(chosen: torch.Tensor, c: int) -> torch.Tensor:
    """(N, V, C, C): zero at the chosen joints, identity elsewhere."""
    eye = torch.eye(c, device=chosen.device)
    return torch.where(chosen[..., None, None], torch.zeros_like(eye), eye)


def _jitter_maps(chosen: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """(N, V, C, C): the sample's matrix at the chosen joints, identity elsewhere."""
    eye = torch.eye(matrices.shape[-1], device=chosen.device)
    return torch.where(chosen[..., None, None], matrices[:, None], eye)
