"""Skeleton encoders behind a registry; they know nothing of contrastive learning.

Importing the package registers every encoder: `stgcn`, `agcn`, `gru`, `cnn`.
"""

from skelctl.models import agcn, cnn, gru, stgcn  # noqa: F401  (registration side effect)
from skelctl.models.graph import adjacency
from skelctl.models.heads import MLPHead
from skelctl.models.registry import build_encoder, encoder_names, register_encoder

__all__ = ["MLPHead", "adjacency", "build_encoder", "encoder_names", "register_encoder"]
