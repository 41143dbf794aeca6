"""Batched, device-side augmentations of `(N, C, T, V, M)` clips; every draw from a Generator."""

from skelctl.augment.skelemix import MixRegion, mix, sample_region
from skelctl.augment.spatial import isc_one_of, joint_jitter, joint_mask, rotate, shear
from skelctl.augment.streams import STREAMS, to_stream
from skelctl.augment.temporal import crop_resize, pad_crop

__all__ = [
    "STREAMS",
    "MixRegion",
    "crop_resize",
    "isc_one_of",
    "joint_jitter",
    "joint_mask",
    "mix",
    "pad_crop",
    "rotate",
    "sample_region",
    "shear",
    "to_stream",
]
