"""The contrastive methods: MoCo machinery, the three papers' losses, views and exports.

Small on purpose (CPU, 2 cores): narrow ST-GCNs (the SkeleMix stride needs 64 frames), tiny
GRU / CNN options, small queues. Every loss is checked against the paper's formula written
out here independently of skelctl.methods.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skelctl.augment import mix, sample_region
from skelctl.augment.inputs import ClipView
from skelctl.data.clips import ClipBank
from skelctl.data.layout import get_layout
from skelctl.errors import SkelctlError
from skelctl.methods import build_method, paper_defaults
from skelctl.methods.config import AugmentConfig, MethodConfig, MocoConfig
from skelctl.methods.isc import ISC
from skelctl.methods.moco import (
    KeyQueue,
    MomentumBranch,
    Projector,
    build_branch,
    gather_keys,
    momentum_update,
)
from skelctl.methods.skelemix import SkeleMixCLR
from skelctl.methods.skeletonclr import SkeletonCLR
from skelctl.methods.views import ViewMaker

LAYOUT = get_layout("ntu25")
SMALL_STGCN = {"base_channels": 4, "feature_dim": 32, "dropout": 0.0}  # deterministic, cheap
ISC_ENCODERS = {"sequence": ("gru", {"hidden_size": 16, "num_layers": 1}),
                "graph": ("agcn", {}),
                "image": ("cnn", {"channels": 16, "dropout": 0.0})}
ISC_FRAMES = 16


def make_bank(n: int = 8, seed: int = 0) -> ClipBank:
    """Random-walk skeletons of varied lengths (some shorter, some longer than 64 frames)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(30, 120, (n,), generator=gen)
    frames = torch.randn(int(lengths.sum()), 2, 25, 3, generator=gen).mul(0.05).cumsum(0)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    return ClipBank.from_arrays(frames, offsets)


def small_config(name: str, queue_size: int = 256, **changes) -> MethodConfig:
    cfg = paper_defaults(name)
    cfg.moco.queue_size = queue_size
    if name in ("skeletonclr", "skelemix"):
        cfg.encoder_kwargs = dict(SMALL_STGCN)
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def small_isc(pair: tuple[str, str], queue_size: int = 256, intra_weight: float = 0.0) -> ISC:
    moco = paper_defaults("isc").moco
    moco.queue_size = queue_size
    branches = {
        r: build_branch(ISC_ENCODERS[r][0], LAYOUT, moco, frames=ISC_FRAMES,
                        encoder_kwargs=ISC_ENCODERS[r][1])
        for r in pair
    }
    views = ViewMaker(paper_defaults("isc").augment, ClipView(ISC_FRAMES, "joint", LAYOUT))
    return ISC(branches, views, moco.temperature, "sequence" if "sequence" in pair else pair[0], intra_weight)


def views_of(method: nn.Module, n: int = 8, seed: int = 1) -> dict[str, torch.Tensor]:
    return method.make_views(make_bank(n), torch.arange(n), torch.Generator().manual_seed(seed))


def nce(logits: torch.Tensor) -> torch.Tensor:
    """-log softmax at column 0, averaged over rows (the paper's InfoNCE)."""
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


# --- configuration --------------------------------------------------------------------------


def test_paper_defaults_match_the_papers() -> None:
    mix_cfg, isc_cfg = paper_defaults("skelemix"), paper_defaults("isc")
    assert (mix_cfg.moco.queue_size, mix_cfg.moco.momentum, mix_cfg.moco.temperature) == (32768, 0.999, 0.2)
    assert mix_cfg.moco.head_batchnorm and mix_cfg.augment.temporal == "pad_crop"
    assert (mix_cfg.augment.spatial, mix_cfg.augment.shear) == ("shear", 0.5)
    assert (mix_cfg.skelemix.repeat, mix_cfg.skelemix.parts, mix_cfg.skelemix.feature_frames) == (3, (2, 3), (7, 11))
    assert (isc_cfg.moco.queue_size, isc_cfg.moco.temperature, isc_cfg.moco.head_batchnorm) == (16384, 0.07, False)
    assert (isc_cfg.augment.temporal, isc_cfg.augment.spatial) == ("crop_resize", "isc_one_of")
    with pytest.raises(ValueError, match="two different representations"):
        MethodConfig(name="isc", pair=("graph", "graph"))
    MethodConfig(name="isc-intra", pair=("graph", "graph"))  # intra only reads pair[0]
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentConfig(crop_scale=(0.6, 0.2))


# --- MoCo machinery -------------------------------------------------------------------------


def test_momentum_update_moves_keys_exactly_one_minus_m_towards_queries() -> None:
    torch.manual_seed(0)
    query, key = nn.Linear(5, 3), nn.Linear(5, 3)
    before_q = [p.detach().clone() for p in query.parameters()]
    before_k = [p.detach().clone() for p in key.parameters()]
    momentum_update(query, key, 0.9)
    for q, k0, k1, q1 in zip(before_q, before_k, key.parameters(), query.parameters(), strict=True):
        torch.testing.assert_close(k1 - k0, 0.1 * (q - k0), rtol=0, atol=1e-6)
        assert torch.equal(q1, q)  # the query network is untouched


def test_queue_is_unit_random_and_wraps_around() -> None:
    queue = KeyQueue(dim=4, size=10)
    torch.testing.assert_close(queue.keys.norm(dim=0), torch.ones(10))
    batches = [torch.full((4, 4), float(b + 1)) for b in range(3)]
    for b in batches:
        queue.push(b)
    assert int(queue.pointer) == 2  # 12 keys into 10 slots
    assert (queue.keys[:, 8:] == 3).all() and (queue.keys[:, :2] == 3).all()  # batch 3 wrapped
    assert (queue.keys[:, 2:4] == 1).all() and (queue.keys[:, 4:8] == 2).all()
    big = torch.arange(13.0)[:, None].expand(13, 4)  # more keys than slots: the newest 10 stay
    queue.push(big)
    assert int(queue.pointer) == 2
    assert sorted(queue.keys[0].tolist()) == list(range(3, 13))


def test_gather_keys_is_identity_without_distributed() -> None:
    keys = torch.randn(3, 4)
    assert gather_keys(keys) is keys


def _gather_worker(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        queue = KeyQueue(dim=4, size=6)
        keys = torch.full((2, 4), float(rank + 1)) + torch.arange(2.0)[:, None] / 10
        gathered = gather_keys(keys)
        queue.push(gathered)
        torch.save({"gathered": gathered, "queue": queue.keys, "pointer": queue.pointer},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gather_keys_under_two_gloo_ranks(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    expected = torch.tensor([[1.0] * 4, [1.1] * 4, [2.0] * 4, [2.1] * 4])  # rank order
    for res in results:
        torch.testing.assert_close(res["gathered"], expected)
        torch.testing.assert_close(res["queue"][:, :4], expected.T)
        assert int(res["pointer"]) == 4
    torch.testing.assert_close(results[0]["queue"], results[1]["queue"])


# --- loss values at initialisation ------------------------------------------------------------


class NoiseEncoder(nn.Module):
    """Features that carry no information about the input: independent unit-variance noise."""

    feature_dim = 128

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape[0], self.feature_dim)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v, m = x.shape
        return torch.randn(n, m, self.feature_dim, t // 4, v)


def noise_branch(queue_size: int) -> MomentumBranch:
    return MomentumBranch(Projector(NoiseEncoder(), nn.Identity()), queue_size, 0.999, 128)


def test_losses_of_uninformative_features_are_log_of_candidate_count() -> None:
    """With q, k, p, c and the queue independent random unit vectors in d dims, each InfoNCE term
    is ln(candidates) + 1 / (2 d T^2) (E exp(q.m / T) for q.m ~ N(0, 1/d)): ln(K+1) for the
    instance and ISC losses, ln(K+2) for SkeleMix's trimmed / truncated terms (one extra
    negative). This pins the scaling: unit vectors, one division by T, one positive per row."""
    torch.manual_seed(0)
    k_size, d, n = 4096, 128, 64
    x = torch.zeros(n, 3, 16, 25, 2)
    views = {"query": x, "key": x}
    excess = lambda t: 1 / (2 * d * t * t)  # noqa: E731

    clr = SkeletonCLR(noise_branch(k_size), None, 0.2, "noise")
    assert clr(views)["loss"].item() == pytest.approx(math.log(k_size + 1) + excess(0.2), rel=0.02)

    regions = [sample_region(n, LAYOUT, torch.Generator().manual_seed(r), 16, 4, (2, 3), (1, 3)) for r in range(3)]
    mixed = {"mixed": torch.stack([mix(x, r) for r in regions]),
             "partner": torch.stack([r.partner(torch.arange(n)) for r in regions]),
             "feature_mask": torch.stack([r.feature_mask for r in regions])}
    skelemix = SkeleMixCLR(noise_branch(k_size), None, 0.2, "noise", paper_defaults("skelemix").skelemix, 4)
    out = skelemix({**views, **mixed})
    assert out["loss_ins"].item() == pytest.approx(math.log(k_size + 1) + excess(0.2), rel=0.02)
    for part in ("loss_trimmed", "loss_truncated"):  # summed over the 3 mixes
        assert out[part].item() / 3 == pytest.approx(math.log(k_size + 2) + excess(0.2), rel=0.02)
    total = out["loss_ins"] + 0.5 * out["loss_trimmed"] + 0.5 * out["loss_truncated"]
    torch.testing.assert_close(out["loss"], total)

    isc = ISC({"sequence": noise_branch(k_size), "graph": noise_branch(k_size)}, None, 0.07, "graph")
    assert isc(views)["loss"].item() / 2 == pytest.approx(math.log(k_size + 1) + excess(0.07), rel=0.02)


def test_skeletonclr_loss_is_moco_infonce_of_query_and_key() -> None:
    """Real ST-GCN at initialisation: forward's loss is CE([q.k | q.queue] / T) computed here.

    (It is NOT ln(K+1): the key twin equals the query network at start and both views show the
    same clip, so q.k is already high; uninformative features are checked above.)"""
    torch.manual_seed(0)
    method = build_method(small_config("skeletonclr"), LAYOUT)
    views = views_of(method)
    with torch.no_grad():
        q = F.normalize(method.branch.query.head(method.branch.query.encoder(views["query"])), dim=1)
        k = F.normalize(method.branch.key.head(method.branch.key.encoder(views["key"])), dim=1)
        queue = method.branch.queue.keys.clone()
    out = method(views)
    expected = nce(torch.cat([(q * k).sum(1, keepdim=True), q @ queue], 1) / 0.2)
    torch.testing.assert_close(out["loss"], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(method.branch.queue.keys[:, :8], k.T, rtol=1e-5, atol=1e-5)  # k enqueued
    assert int(method.branch.queue.pointer) == 8


def test_skelemix_loss_is_the_papers_formula() -> None:
    torch.manual_seed(0)
    method = build_method(small_config("skelemix"), LAYOUT)
    assert method.stride == 4
    views = views_of(method)
    query, key = method.branch.query, method.branch.key
    with torch.no_grad():
        q = query(views["query"])
        k = key(views["key"])
        queue = method.branch.queue.keys.clone()
        trimmed = truncated = 0.0
        for mixed, partner, region in zip(views["mixed"], views["partner"], views["feature_mask"], strict=True):
            fmap = query.encoder.feature_map(mixed)  # (N, M, D, T', V)
            inside = fmap[..., region].mean(-1).mean(1)  # the pasted cells, then bodies
            outside = fmap[..., ~region].mean(-1).mean(1)
            p = F.normalize(query.head(inside), dim=1)
            c = F.normalize(query.head(outside), dim=1)
            pos_p = (p * k[partner]).sum(1, keepdim=True)
            trimmed += nce(torch.cat([pos_p, p @ queue, (p * c).sum(1, keepdim=True)], 1) / 0.2)
            pos_c = (c * k).sum(1, keepdim=True)
            truncated += nce(torch.cat([pos_c, c @ queue, (c * p).sum(1, keepdim=True)], 1) / 0.2)
        instance = nce(torch.cat([(q * k).sum(1, keepdim=True), q @ queue], 1) / 0.2)
    out = method(views)
    torch.testing.assert_close(out["loss_ins"], instance, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["loss_trimmed"], trimmed, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["loss_truncated"], truncated, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["loss"], instance + 0.5 * trimmed + 0.5 * truncated, rtol=1e-5, atol=1e-5)


# --- SkeleMix specifics ---------------------------------------------------------------------


def test_skelemix_views_paste_the_partner_named_by_partner_index() -> None:
    method = build_method(small_config("skelemix"), LAYOUT)
    views = views_of(method, n=6)
    n = 6
    assert views["mixed"].shape == (3, n, 3, 64, 25, 2)
    assert views["feature_mask"].shape == (3, 16, 25)
    for mixed, partner, region in zip(views["mixed"], views["partner"], views["feature_mask"], strict=True):
        shift = (torch.arange(n) - partner) % n
        assert (shift == shift[0]).all() and 1 <= int(shift[0]) <= n - 2  # one roll of the batch
        pasted = region.repeat_interleave(4, dim=0)  # (T, V) at input resolution
        assert 7 <= int(region.any(1).sum()) <= 11
        src = views["query"][partner]
        assert torch.equal(mixed[:, :, pasted], src[:, :, pasted])
        assert torch.equal(mixed[:, :, ~pasted], views["query"][:, :, ~pasted])


class OneHotClips(nn.Module):
    """Feature map = the input coordinates averaged over 4 frames (no parameters)."""

    feature_dim = 8

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        return x.view(n, c, t // 4, 4, v, m).mean(3).permute(0, 4, 1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(3, 4)).mean(1)


def test_skelemix_trimmed_positive_is_the_partners_key() -> None:
    """Clip i is the constant one-hot e_i, so p_i = e_partner(i), c_i = e_i and k_i = e_i. With a
    zero queue, only correctly aligned positives give both terms CE = log(e^(1/T) + K + 1) - 1/T
    (a key of the wrong clip would give log(K + 3))."""
    n, k_size, t = 8, 16, 0.2
    x = torch.eye(n)[:, :, None, None, None].expand(n, n, 16, 25, 2).contiguous()
    branch = MomentumBranch(Projector(OneHotClips(), nn.Identity()), k_size, 0.999, n)
    branch.queue.keys.zero_()
    method = SkeleMixCLR(branch, None, t, "onehot", paper_defaults("skelemix").skelemix, 4)
    regions = [sample_region(n, LAYOUT, torch.Generator().manual_seed(r), 16, 4, (2, 3), (1, 3))
               for r in range(3)]
    assert len({int(r.offset) for r in regions}) > 1  # the mixes use different partners
    views = {"query": x, "key": x,
             "mixed": torch.stack([mix(x, r) for r in regions]),
             "partner": torch.stack([r.partner(torch.arange(n)) for r in regions]),
             "feature_mask": torch.stack([r.feature_mask for r in regions])}
    out = method(views)
    aligned = math.log(math.exp(1 / t) + k_size + 1) - 1 / t
    assert out["loss_trimmed"].item() == pytest.approx(3 * aligned, rel=1e-5)
    assert out["loss_truncated"].item() == pytest.approx(3 * aligned, rel=1e-5)


# --- ISC ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", [("sequence", "graph"), ("graph", "image"), ("sequence", "image")])
def test_isc_pairs_contrast_across_representations(pair: tuple[str, str]) -> None:
    torch.manual_seed(0)
    method = small_isc(pair, queue_size=32)
    views = views_of(method, n=4)
    s1, s2 = pair
    first, second = method.branches[s1], method.branches[s2]
    with torch.no_grad():
        q, r = first.query(views["query"]), second.query(views["query"])
        k, l = first.key(views["key"]), second.key(views["key"])  # noqa: E741
        q1, q2 = first.queue.keys.clone(), second.queue.keys.clone()
    out = method(views)
    expected_q = nce(torch.cat([(q * l).sum(1, keepdim=True), q @ q2], 1) / 0.07)  # l, Q2
    expected_r = nce(torch.cat([(r * k).sum(1, keepdim=True), r @ q1], 1) / 0.07)  # k, Q1
    torch.testing.assert_close(out[f"loss_{s1}"], expected_q, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[f"loss_{s2}"], expected_r, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(first.queue.keys[:, :4], k.T, rtol=1e-4, atol=1e-4)  # k -> Q1
    torch.testing.assert_close(second.queue.keys[:, :4], l.T, rtol=1e-4, atol=1e-4)  # l -> Q2
    out["loss"].backward()
    for branch in (first, second):
        assert all(p.grad is not None for p in branch.query.parameters())
        assert all(p.grad is None for p in branch.key.parameters())
    assert method.primary == ("sequence" if "sequence" in pair else "graph")
    assert set(method.export_encoders()) == set(pair)
    assert "loss_intra" not in out
    torch.testing.assert_close(out["loss"], out[f"loss_{s1}"] + out[f"loss_{s2}"])


def test_isc_intra_weight_adds_each_querys_own_representation_key() -> None:
    """`method.intra_weight` w: L = CE(q; l, Q2) + CE(r; k, Q1) + w [CE(q; k, Q1) + CE(r; l, Q2)]."""
    torch.manual_seed(0)
    method = small_isc(("sequence", "graph"), queue_size=32, intra_weight=0.5)
    views = views_of(method, n=4)
    first, second = method.branches["sequence"], method.branches["graph"]
    with torch.no_grad():
        q, r = first.query(views["query"]), second.query(views["query"])
        k, l = first.key(views["key"]), second.key(views["key"])  # noqa: E741
        q1, q2 = first.queue.keys.clone(), second.queue.keys.clone()
    out = method(views)
    inter = (nce(torch.cat([(q * l).sum(1, keepdim=True), q @ q2], 1) / 0.07)
             + nce(torch.cat([(r * k).sum(1, keepdim=True), r @ q1], 1) / 0.07))
    intra = (nce(torch.cat([(q * k).sum(1, keepdim=True), q @ q1], 1) / 0.07)
             + nce(torch.cat([(r * l).sum(1, keepdim=True), r @ q2], 1) / 0.07))
    torch.testing.assert_close(out["loss_intra"], intra, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["loss"], inter + 0.5 * intra, rtol=1e-4, atol=1e-4)


# --- every method -----------------------------------------------------------------------------


def build_small(name: str, queue_size: int = 256) -> nn.Module:
    if name == "isc":
        return small_isc(("sequence", "graph"), queue_size)
    if name == "isc+intra":
        return small_isc(("sequence", "graph"), queue_size, intra_weight=1.0)
    if name == "isc-intra":
        cfg = small_config("isc-intra", queue_size, pair=("image", "image"),
                           encoder_kwargs={"channels": 16, "dropout": 0.0})
        return build_method(cfg, LAYOUT, frames=ISC_FRAMES)
    return build_method(small_config(name, queue_size), LAYOUT)


@pytest.mark.parametrize("name", ["skeletonclr", "skelemix", "isc-intra", "isc"])
def test_one_sgd_step_lowers_the_loss_on_a_fixed_batch(name: str) -> None:
    """Same views, same queue and key networks before and after: only the step differs.

    The queue first fills with keys of other clips (a random queue makes the task trivial at
    init for ISC's encoders). The step is sized so that, to first order, it lowers the loss by
    0.02 (lr = 0.02 / |g|^2); the loss must fall by about that much. A wrong sign, a detached
    term or a gradient into the wrong network fails this. (The ST-GCNs' N(0, 0.02) weights under
    BatchNorm make their gradients large, so a fixed lr like 0.1 leaves the linear regime.)"""
    torch.manual_seed(0)
    method = build_small(name, queue_size=32)
    other = make_bank(32, seed=5)
    with torch.no_grad():
        for b in range(4):
            method(method.make_views(other, torch.arange(8 * b, 8 * b + 8), torch.Generator().manual_seed(b)))
    views = views_of(method)
    frozen = {k: v.clone() for k, v in method.state_dict().items() if ".key." in k or "queue" in k}
    params = [p for p in method.parameters() if p.requires_grad]
    before = method(views)["loss"]
    before.backward()
    assert all(p.grad is None for n, p in method.named_parameters() if ".key." in n)
    squared_norm = sum(float(p.grad.square().sum()) for p in params if p.grad is not None)
    torch.optim.SGD(params, lr=0.02 / squared_norm).step()
    method.load_state_dict(frozen, strict=False)  # the queue and keys of the first forward
    with torch.no_grad():
        after = method(views)["loss"]
    assert 0.014 < before.item() - after.item() < 0.026, (before.item(), after.item())


@pytest.mark.parametrize("name", ["skeletonclr", "skelemix", "isc", "isc+intra"])
def test_term_by_term_backward_gives_the_gradient_of_the_whole_loss(name: str) -> None:
    """The engine's memory saving (`LossSum`): back-propagating each loss term inside forward
    gives the same loss, gradients, queue and BN statistics as one backward of the sum."""
    torch.manual_seed(0)
    whole = build_small(name, queue_size=32)
    termwise = copy.deepcopy(whole)
    views = views_of(whole)
    terms: list[float] = []

    def backward(term: torch.Tensor) -> None:
        terms.append(float(term.detach()))
        term.backward()

    torch.manual_seed(1)
    out_whole = whole(views)
    out_whole["loss"].backward()
    torch.manual_seed(1)
    out_termwise = termwise(views, backward=backward)
    assert len(terms) == {"skeletonclr": 1, "skelemix": 4, "isc": 2, "isc+intra": 2}[name]
    assert not out_termwise["loss"].requires_grad
    torch.testing.assert_close(out_termwise["loss"], out_whole["loss"].detach())
    grads = dict(termwise.named_parameters())
    for key, p in whole.named_parameters():
        if p.grad is None:
            assert grads[key].grad is None, key
        else:
            torch.testing.assert_close(grads[key].grad, p.grad, rtol=1e-5, atol=1e-6, msg=key)
    state = termwise.state_dict()
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(state[key], value, msg=key)


@pytest.mark.parametrize("name", ["skeletonclr", "skelemix", "isc-intra"])
def test_exports_embed_and_views_are_deterministic(name: str) -> None:
    method = build_small(name)
    a, b = views_of(method, seed=3), views_of(method, seed=3)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = views_of(method, seed=4)
    assert not torch.equal(a["query"], c["query"])
    encoders = method.export_encoders()
    assert method.primary in encoders and encoders[method.primary] is method.query_encoder
    method.eval()
    with torch.no_grad():
        z = method.embed(a["query"])
    assert z.shape == (8, 128)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(8))


def test_paper_configurations_build_with_full_size_encoders() -> None:
    """The presets' real encoders (ISC: a 49 M-parameter GRU) build, name their exports, and
    run one tiny forward."""
    torch.manual_seed(0)
    skelemix = build_method(paper_defaults("skelemix"), LAYOUT)
    assert sum(p.numel() for p in skelemix.branch.query.parameters()) == pytest.approx(0.921e6, rel=0.02)
    assert skelemix.primary == "stgcn" and skelemix.branch.queue.keys.shape == (128, 32768)
    isc = build_method(paper_defaults("isc"), LAYOUT)
    assert isc.primary == "sequence" and set(isc.export_encoders()) == {"sequence", "graph"}
    assert isc.export_encoders()["sequence"].feature_dim == 2048
    assert isc.branches["graph"].queue.keys.shape == (128, 16384)
    out = isc(views_of(isc, n=2))
    assert torch.isfinite(out["loss"]) and out["loss"].item() > 0
    intra = build_method(paper_defaults("isc-intra"), LAYOUT)
    assert intra.primary == "sequence" and intra.query_encoder.encoder_name == "gru"
    cfg = MethodConfig(name="skelemix", encoder="cnn", encoder_kwargs={"channels": 16},
                       moco=MocoConfig(queue_size=8))
    with pytest.raises(SkelctlError, match="feature map"):
        build_method(cfg, LAYOUT)


def test_init_pytorch_replaces_the_reference_draw_in_encoder_and_head() -> None:
    torch.manual_seed(0)
    reference = build_method(small_config("skelemix"), LAYOUT, frames=64)
    torch.manual_seed(0)
    pytorch = build_method(small_config("skelemix", init="pytorch"), LAYOUT, frames=64)
    for method, lo, hi in ((reference, 0.015, 0.025), (pytorch, 0.05, 1.0)):
        conv = method.branch.query.encoder.blocks[3].gcn.weight.detach()  # 16 -> 48 channels, 1x1
        head = method.branch.query.head[0].weight.detach()
        assert lo < float(conv.std()) < hi and lo < float(head.std()) < hi
        for q, k in zip(method.branch.query.parameters(), method.branch.key.parameters(), strict=True):
            assert torch.equal(q, k)  # the key twin starts as a copy either way
