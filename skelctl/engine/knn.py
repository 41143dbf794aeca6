"""The weighted-kNN monitor of SkeleMixCLR pretraining (a health signal, not a published protocol).

Protocol (named in metrics as `KNN_PROTOCOL`): the 128-d L2-normalised projections
(`method.embed`) of UN-augmented clips (whole valid clip resized to the training length, the
training stream), the training split as memory bank, the test split as queries; each query's k
most similar bank entries vote for their class with weight exp(similarity / 0.1); top-1 accuracy.
The reference monitor embedded augmented clips; skelctl does not (SPEC 4 pitfalls). This is not
the 1-NN retrieval protocol of `skelctl retrieve` (SPEC 6).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from skelctl.augment import resize, to_stream
from skelctl.data.clips import ClipBank
from skelctl.data.layout import Layout

KNN_PROTOCOL = "weighted-knn: 128-d projections of un-augmented clips, train bank, test queries, exp(sim/0.1) votes, top-1"
KNN_TEMPERATURE = 0.1


@torch.no_grad()
def embed_bank(
    embed: nn.Module | object, bank: ClipBank, frames: int, stream: str, layout: Layout, batch_size: int
) -> torch.Tensor:
    """(N, D) embeddings of every clip of `bank`, in order, by `embed(x)` (a method's `embed`)."""
    out = []
    for start in range(0, len(bank), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(bank)), device=bank.device)
        x = to_stream(resize(bank, idx, frames), stream, layout)
        out.append(embed(x).float())
    return torch.cat(out)


@torch.no_grad()
def weighted_knn_top1(
    bank_features: torch.Tensor,
    bank_labels: torch.Tensor,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    ks: Sequence[int],
    temperature: float = KNN_TEMPERATURE,
    chunk: int = 1024,
) -> dict[int, float]:
    """Top-1 accuracy (%) of the exp(sim/T)-weighted vote of the k nearest bank entries, per k.

    Features must be L2-normalised (similarity = dot product). Queries go in chunks so the
    similarity matrix never exceeds chunk x N_bank.
    """
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    k_max = min(max(ks), bank_features.shape[0])
    correct = dict.fromkeys(ks, 0)
    for start in range(0, query_features.shape[0], chunk):
        queries = query_features[start : start + chunk]
        truth = query_labels[start : start + chunk]
        sims, nearest = (queries @ bank_features.T).topk(k_max, dim=1)
        weights = (sims / temperature).exp()
        votes_for = bank_labels[nearest]
        for k in ks:
            kk = min(k, k_max)
            scores = torch.zeros(queries.shape[0], num_classes, device=queries.device)
            scores.scatter_add_(1, votes_for[:, :kk], weights[:, :kk])
            correct[k] += int((scores.argmax(dim=1) == truth).sum())
    total = max(query_features.shape[0], 1)
    return {k: 100.0 * correct[k] / total for k in ks}


def knn_monitor(
    method: nn.Module, train: ClipBank, test: ClipBank, frames: int, stream: str, layout: Layout,
    ks: Sequence[int], batch_size: int,
) -> dict[str, float | str]:
    """The monitor's record for metrics.jsonl: `{"protocol", "top1@k": ...}`.

    The method is switched to eval mode (BN running statistics, no dropout) and back.
    """
    was_training = method.training
    method.eval()
    try:
        bank = embed_bank(method.embed, train, frames, stream, layout, batch_size)
        queries = embed_bank(method.embed, test, frames, stream, layout, batch_size)
    finally:
        method.train(was_training)
    accuracy = weighted_knn_top1(bank, train.labels, queries, test.labels, ks)
    return {"protocol": KNN_PROTOCOL, **{f"top1@{k}": round(v, 3) for k, v in accuracy.items()}}
