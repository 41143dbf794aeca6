"""Weighted k-NN votes, and the kNN monitor of SkeleMixCLR pretraining (a health signal, not a
published protocol).

`class_votes` / `vote_weights` are the one k-NN vote of the code base: the monitor below and the
k-NN evaluation protocol (`skelctl.evaluate.retrieval`) both count their neighbours with them.

Monitor protocol (named in metrics as `KNN_PROTOCOL`): the 128-d L2-normalised projections
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

from skelctl.augment.inputs import ClipView
from skelctl.data.clips import ClipBank
from skelctl.data.layout import Layout
from skelctl.models.layers import frozen

KNN_PROTOCOL = "weighted-knn: 128-d projections of un-augmented clips, train bank, test queries, exp(sim/0.1) votes, top-1"
KNN_TEMPERATURE = 0.1  # a neighbour's vote: exp(similarity / T)


def vote_weights(sims: torch.Tensor, temperature: float = KNN_TEMPERATURE) -> torch.Tensor:
    """exp(similarity / T): the weight of each neighbour's vote."""
    return (sims / temperature).exp()


def class_votes(neighbour_labels: torch.Tensor, weights: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(Q, num_classes) sums of `weights` (Q, k) per class of the neighbours' labels (Q, k)."""
    scores = torch.zeros(neighbour_labels.shape[0], num_classes, dtype=weights.dtype,
                         device=weights.device)
    return scores.scatter_add_(1, neighbour_labels, weights)


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
        weights = vote_weights(sims, temperature)
        votes_for = bank_labels[nearest]
        for k in ks:
            kk = min(k, k_max)
            scores = class_votes(votes_for[:, :kk], weights[:, :kk], num_classes)
            correct[k] += int((scores.argmax(dim=1) == truth).sum())
    total = max(query_features.shape[0], 1)
    return {k: 100.0 * correct[k] / total for k in ks}


def knn_monitor(
    method: nn.Module, train: ClipBank, test: ClipBank, frames: int, stream: str, layout: Layout,
    ks: Sequence[int], batch_size: int,
) -> dict[str, float | str]:
    """The monitor's record for metrics.jsonl: `{"protocol", "top1@k": ...}`.

    The method embeds in eval mode (BN running statistics, no dropout) and is switched back.
    """
    view = ClipView(frames, stream, layout)  # the banks are in the run's input coordinates already
    with frozen(method):
        bank = torch.cat([method.embed(x).float() for x in view.batches(train, 1.0, batch_size)])
        queries = torch.cat([method.embed(x).float() for x in view.batches(test, 1.0, batch_size)])
    accuracy = weighted_knn_top1(bank, train.labels, queries, test.labels, ks)
    return {"protocol": KNN_PROTOCOL, **{f"top1@{k}": round(v, 3) for k, v in accuracy.items()}}
