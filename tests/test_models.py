"""Encoders: registry, parameter counts against the references, shapes, layouts, graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import SMALL_FRAMES

from skelctl.data.layout import get_layout
from skelctl.errors import SkelctlError
from skelctl.models import MLPHead, adjacency, build_encoder, encoder_names, register_encoder
from skelctl.models.layers import init_normal_

LAYOUTS = ("ntu25", "kinect20")
# Cheapest frame count each architecture allows (the CNN needs 16 for its four pools).


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def clip(layout_name: str, n: int = 2, frames: int = 64, seed: int = 0) -> torch.Tensor:
    v = get_layout(layout_name).num_joints
    return torch.randn(n, 3, frames, v, 2, generator=torch.Generator().manual_seed(seed))


def test_registry_lists_the_four_encoders():
    assert encoder_names() == ["agcn", "cnn", "gru", "stgcn"]


def test_unknown_encoder_names_key_and_known_names():
    with pytest.raises(SkelctlError, match=r"unknown encoder 'resnet'.*agcn, cnn, gru, stgcn"):
        build_encoder("resnet", get_layout("ntu25"))


def test_unknown_or_mistyped_option_names_the_key():
    layout = get_layout("ntu25")
    with pytest.raises(SkelctlError, match=r"'gru' has no option 'hidden'.*hidden_size"):
        build_encoder("gru", layout, hidden=8)
    with pytest.raises(SkelctlError, match=r"option 'dropout' must be float"):
        build_encoder("stgcn", layout, dropout="high")
    with pytest.raises(SkelctlError, match=r"'frames' must be a positive integer"):
        build_encoder("stgcn", layout, frames=0)
    with pytest.raises(SkelctlError, match=r"at least 16"):
        build_encoder("cnn", layout, frames=8)


def test_registering_a_taken_name_fails():
    with pytest.raises(ValueError, match="registered twice"):
        register_encoder("stgcn")(torch.nn.Identity)


# Exact counts; the references' published figures are 0.82 M / 0.921 M (ST-GCN/4 without /
# with the 256-256-128 BN head), 3.55 M (AGCN), 49.5 M (GRU), 17.8 M (HCN) with ISC's head.
@pytest.mark.parametrize(
    ("name", "backbone", "with_head", "published", "head_bn"),
    [
        ("stgcn", 821_380, 920_580, 0.921e6, True),
        ("agcn", 3_454_090, 3_552_778, 3.55e6, False),
        ("gru", 44_998_656, 49_457_280, 49.5e6, False),
        ("cnn", 519_424, 17_825_152, 17.8e6, False),
    ],
)
def test_parameter_counts_match_the_references(name, backbone, with_head, published, head_bn):
    encoder = build_encoder(name, get_layout("ntu25"))
    head = MLPHead(encoder.feature_dim, encoder.feature_dim, 128, batchnorm=head_bn)
    assert count(encoder) == backbone
    assert count(encoder) + count(head) == with_head
    assert abs(with_head - published) / published < 0.02
    if name == "stgcn":
        assert abs(backbone - 0.82e6) / 0.82e6 < 0.02


@pytest.mark.parametrize(
    ("name", "feature_dim"), [("stgcn", 256), ("agcn", 256), ("gru", 2048), ("cnn", 4096)]
)
def test_feature_sizes_at_64_frames(name, feature_dim):
    encoder = build_encoder(name, get_layout("ntu25"))
    assert encoder.feature_dim == feature_dim
    if name == "cnn":  # cheap enough to check the real 64-frame flatten
        assert encoder.eval()(clip("ntu25")).shape == (2, 4096)


def test_cnn_feature_size_follows_frames():
    assert build_encoder("cnn", get_layout("ntu25"), frames=32).feature_dim == 256 * 2 * 4


@pytest.mark.parametrize("name", ["stgcn", "agcn"])
def test_graph_feature_map_is_per_body_256x16xV_and_pools_to_forward(name):
    encoder = build_encoder(name, get_layout("ntu25")).eval()
    x = clip("ntu25", n=2, frames=64)
    with torch.no_grad():
        fmap = encoder.feature_map(x)
        pooled = encoder(x)
    assert fmap.shape == (2, 2, 256, 16, 25)
    assert torch.allclose(pooled, encoder.pool(fmap))
    assert torch.allclose(pooled, fmap.mean(dim=(1, 3, 4)), atol=1e-6)


def test_adaptive_graph_conv_is_2s_agcn_per_subset_formula():
    """The fused layer equals 2s-AGCN's loop over subsets k: C_k = softmax over senders of
    theta_k(x)^T phi_k(x) / (C_e T), then sum_k W_k (x (A_k + B_k + C_k)), BN, + down(x), ReLU."""
    from skelctl.models.agcn import AdaptiveGraphConv
    from skelctl.models.graph import NUM_SUBSETS

    torch.manual_seed(0)
    graph = torch.from_numpy(adjacency(get_layout("ntu25"))).float()
    layer = AdaptiveGraphConv(8, 16, graph).eval()
    for p in (layer.mix.bias, layer.bn.weight, layer.bn.bias, layer.adaptive):
        torch.nn.init.normal_(p)
    x = torch.randn(3, 8, 10, 25)
    n, c, t, v = x.shape
    e, out = layer.embed_channels, layer.out_channels
    y = torch.zeros(n, out, t, v)
    for k in range(NUM_SUBSETS):
        def conv(module, groups, k=k):  # subset k's slice of a conv that emits all subsets
            w = module.weight.view(NUM_SUBSETS, -1, *module.weight.shape[1:])[k]
            return torch.nn.functional.conv2d(groups, w, module.bias.view(NUM_SUBSETS, -1)[k])
        a1 = conv(layer.theta, x).permute(0, 3, 1, 2).reshape(n, v, e * t)
        a2 = conv(layer.phi, x).reshape(n, e * t, v)
        attention = torch.softmax(a1 @ a2 / (e * t), dim=-2)
        adjacency_k = graph[k] + layer.adaptive[k] + attention
        aggregated = (x.reshape(n, c * t, v) @ adjacency_k).view(n, c, t, v)
        y = y + conv(layer.mix, aggregated)
    expected = torch.relu(layer.bn(y) + layer.down(x))
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-5)


@pytest.mark.parametrize("layout_name", LAYOUTS)
@pytest.mark.parametrize("name", ["stgcn", "agcn", "gru", "cnn"])
def test_forward_on_every_layout(name, layout_name):
    layout = get_layout(layout_name)
    frames = SMALL_FRAMES[name]
    encoder = build_encoder(name, layout, frames=frames)
    out = encoder(clip(layout_name, n=2, frames=frames))
    assert out.shape == (2, encoder.feature_dim)
    assert torch.isfinite(out).all()
    if hasattr(encoder, "feature_map"):
        fmap = encoder.feature_map(clip(layout_name, n=2, frames=frames))
        assert fmap.shape == (2, 2, 256, frames // 4, layout.num_joints)


@pytest.mark.parametrize("name", ["stgcn", "agcn", "gru", "cnn"])
def test_input_of_the_wrong_shape_is_refused(name):
    frames = SMALL_FRAMES[name]
    encoder = build_encoder(name, get_layout("ntu25"), frames=frames)
    with pytest.raises(SkelctlError, match=rf"'{name}' expects input .*T={frames}, V=25"):
        encoder(clip("kinect20", frames=frames))
    with pytest.raises(SkelctlError, match="expects input"):
        encoder(clip("ntu25", frames=frames + 2))


@pytest.mark.parametrize("name", ["stgcn", "agcn", "gru", "cnn"])
def test_same_seed_same_weights_and_eval_is_deterministic_per_sample(name):
    frames = SMALL_FRAMES[name]
    torch.manual_seed(7)
    first = build_encoder(name, get_layout("ntu25"), frames=frames, **_small(name))
    torch.manual_seed(7)
    second = build_encoder(name, get_layout("ntu25"), frames=frames, **_small(name))
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    first.eval()
    x = clip("ntu25", n=3, frames=frames)
    with torch.no_grad():
        once, twice, alone = first(x), first(x), first(x[:1])
    assert torch.equal(once, twice)
    # eval mode uses running statistics, so a sample's feature ignores the rest of the batch
    assert torch.allclose(once[:1], alone, atol=1e-5)


def _small(name: str) -> dict:
    """Narrow variants where the test is about behaviour, not the published size."""
    return {"hidden_size": 32} if name == "gru" else {}


@pytest.mark.parametrize("name", ["stgcn", "cnn"])
def test_encoders_that_treat_bodies_alike_ignore_body_order(name):
    encoder = build_encoder(name, get_layout("ntu25"), frames=16).eval()
    x = clip("ntu25", n=2, frames=16)
    with torch.no_grad():
        assert torch.allclose(encoder(x), encoder(x.flip(-1)), atol=1e-5)


@pytest.mark.parametrize("layout_name", LAYOUTS)
@pytest.mark.parametrize("name", ["stgcn", "agcn", "gru", "cnn"])
def test_config_is_json_and_rebuilds_the_same_architecture(name, layout_name):
    frames = SMALL_FRAMES[name]
    encoder = build_encoder(name, get_layout(layout_name), frames=frames, **_small(name)).eval()
    config = json.loads(json.dumps(encoder.config))
    assert config["name"] == name and config["frames"] == frames
    assert config["layout"] == get_layout(layout_name).to_dict()
    rebuilt = build_encoder(**config).eval()
    rebuilt.load_state_dict(encoder.state_dict())  # strict: same names and shapes
    x = clip(layout_name, frames=frames)
    with torch.no_grad():
        assert torch.equal(encoder(x), rebuilt(x))


def test_gru_sequence_view_is_joint_then_xyz_then_body():
    x = clip("ntu25", n=2, frames=4)
    seq = build_encoder("gru", get_layout("ntu25"), frames=4, hidden_size=8).sequence_view(x)
    assert seq.shape == (2, 4, 150)
    for n, c, t, v, m in [(0, 0, 0, 0, 0), (1, 2, 3, 24, 1), (0, 1, 2, 7, 0), (1, 0, 1, 3, 1)]:
        assert seq[n, t, (v * 3 + c) * 2 + m] == x[n, c, t, v, m]


def test_gru_feature_is_each_directions_final_state():
    encoder = build_encoder("gru", get_layout("ntu25"), frames=5, hidden_size=8)
    x = clip("ntu25", n=2, frames=5)
    outputs, _ = encoder.gru(encoder.sequence_view(x))
    feature = encoder(x)
    assert feature.shape == (2, 16)
    assert torch.allclose(feature[:, :8], outputs[:, -1, :8])  # forward read t = 0..T-1
    assert torch.allclose(feature[:, 8:], outputs[:, 0, 8:])  # backward read t = T-1..0


@pytest.mark.parametrize("autocast", [False, True])
def test_gru_training_on_cpu_is_nn_gru_with_its_gradients(autocast):
    """Training on CPU runs `GRURecurrence`, not nn.GRU: the same features and gradients."""
    torch.manual_seed(0)
    encoder = build_encoder("gru", get_layout("ntu25"), frames=7, hidden_size=16).train()
    x = clip("ntu25", n=3, frames=7).requires_grad_(True)
    weights = torch.randn(3, 32)

    def features_and_grads(reference: bool):
        encoder.zero_grad()
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            if reference:
                _, final = encoder.gru(encoder.sequence_view(x))
                feature = torch.cat([final[-2], final[-1]], dim=1)
            else:
                feature = encoder(x)
        (feature.float() * weights).sum().backward()
        return feature.float().detach(), x.grad.clone(), {k: p.grad.clone() for k, p in encoder.named_parameters()}

    ours, reference = features_and_grads(False), features_and_grads(True)
    tolerance = {"rtol": 0.05, "atol": 0.03} if autocast else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(ours[0], reference[0], **tolerance)
    torch.testing.assert_close(ours[1], reference[1], **tolerance)
    for key, grad in reference[2].items():
        torch.testing.assert_close(ours[2][key], grad, **tolerance, msg=key)
    assert ours[0].dtype == torch.float32 and not torch.equal(ours[1], reference[1] * 0)


@pytest.mark.parametrize("name", ["stgcn", "agcn"])
def test_every_parameter_gets_a_gradient(name):
    encoder = build_encoder(name, get_layout("kinect20"), frames=16)
    encoder(clip("kinect20", n=2, frames=16)).square().sum().backward()
    missing = [k for k, p in encoder.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


def test_stgcn_uses_the_reference_initialisation():
    encoder = build_encoder("stgcn", get_layout("ntu25"))
    widest = encoder.blocks[-1].tcn[2][0]  # the 256x256x9 temporal conv
    assert abs(widest.weight.std().item() - 0.02) < 0.001
    assert not widest.bias.any()
    bn_weight = encoder.blocks[-1].tcn[0].weight
    assert abs(bn_weight.mean().item() - 1.0) < 0.01 and 0 < bn_weight.std().item() < 0.04
    assert all(torch.equal(b.edge_importance, torch.ones_like(b.edge_importance))
               for b in encoder.blocks)


def test_init_normal_touches_conv_linear_and_batchnorm_only():
    head = MLPHead(16, 16, 4, batchnorm=True)
    init_normal_(head)
    assert not head[0].bias.any() and abs(head[1].weight.mean().item() - 1) < 0.05


def test_mlp_head_layers_and_shape():
    with_bn = MLPHead(256, 256, 128, batchnorm=True)
    plain = MLPHead(256, 256, 128, batchnorm=False)
    kinds = [type(m).__name__ for m in with_bn]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert [type(m).__name__ for m in plain] == ["Linear", "ReLU", "Linear"]
    assert with_bn(torch.randn(4, 256)).shape == (4, 128)
    assert count(with_bn) - count(plain) == 512


# 2s-AGCN's NTU link list (1-based (child, parent)), an independent oracle for ntu25.
REFERENCE_NTU_INWARD = [
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
]


def test_ntu_adjacency_equals_the_2s_agcn_graph():
    linked = np.zeros((25, 25))
    for child, parent in REFERENCE_NTU_INWARD:
        linked[parent - 1, child - 1] = 1
    inward = linked / np.maximum(linked.sum(0), 1)
    outward = linked.T / np.maximum(linked.T.sum(0), 1)
    expected = np.stack([np.eye(25), inward, outward])
    a = adjacency(get_layout("ntu25"))
    assert a.shape == (3, 25, 25) and a.dtype == np.float32
    np.testing.assert_allclose(a, expected, atol=1e-7)


@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_adjacency_properties_come_from_the_layout(layout_name):
    layout = get_layout(layout_name)
    v = layout.num_joints
    identity, inward, outward = adjacency(layout)
    assert np.array_equal(identity, np.eye(v))
    assert np.array_equal(inward > 0, (outward > 0).T)
    assert {(j, p) for p, j in zip(*np.nonzero(inward), strict=True)} == set(layout.bones)
    for subset in (inward, outward):
        sums = subset.sum(axis=0)
        assert np.all(np.isclose(sums, 1) | np.isclose(sums, 0))
    root = layout.parents.index(-1)
    assert not inward[:, root].any()  # the root has no parent
    assert np.isclose(outward[:, root].sum(), 1)


def _saved_bytes_and_grads(encoder: torch.nn.Module, x: torch.Tensor) -> tuple[int, dict, dict]:
    """Bytes of activations autograd keeps for backward (the weights, alive anyway, not counted),
    the gradients, and the BN buffers after one step."""
    saved = 0
    weights = {p.data_ptr() for p in encoder.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        if t.data_ptr() not in weights:
            saved += t.numel() * t.element_size()
        return t

    torch.manual_seed(5)  # ST-GCN's dropout
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = encoder(x).square().sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in encoder.named_parameters()}
    return saved, grads, {n: b.clone() for n, b in encoder.named_buffers()}


@pytest.mark.parametrize(("name", "kwargs"), [("stgcn", {}), ("agcn", {}), ("gru", {"hidden_size": 32})])
def test_activation_checkpointing_keeps_less_and_changes_nothing_else(name, kwargs):
    """Same gradients and BN statistics (the recompute counts its batch once), less kept."""
    from skelctl.models.layers import use_activation_checkpointing

    torch.manual_seed(0)
    plain = build_encoder(name, get_layout("ntu25"), frames=16, **kwargs).train()
    checkpointed = build_encoder(name, get_layout("ntu25"), frames=16, **kwargs).train()
    checkpointed.load_state_dict(plain.state_dict())
    assert use_activation_checkpointing(checkpointed) == 1
    x = clip("ntu25", n=4, frames=16)
    saved_plain, grads_plain, buffers_plain = _saved_bytes_and_grads(plain, x)
    saved_ckpt, grads_ckpt, buffers_ckpt = _saved_bytes_and_grads(checkpointed, x)
    assert saved_ckpt < saved_plain / 3
    for key, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[key], grad, rtol=0, atol=0, msg=key)
    for key, buffer in buffers_plain.items():
        torch.testing.assert_close(buffers_ckpt[key], buffer, rtol=0, atol=0, msg=key)
    with torch.no_grad():  # evaluation ignores the flag
        torch.testing.assert_close(checkpointed.eval()(x), plain.eval()(x), rtol=0, atol=0)


def test_dropout_zeroes_a_p_share_scales_the_rest_and_routes_the_gradient_through_the_kept():
    from skelctl.models.layers import Dropout

    drop = Dropout(0.5).train()
    x = torch.full((200, 500), 3.0, requires_grad=True)
    torch.manual_seed(0)
    y = drop(x)
    kept = y != 0
    assert 0.48 < kept.float().mean().item() < 0.52
    assert torch.all(y[kept] == 6.0)  # 3 / (1 - p)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() * 2.0, rtol=0, atol=0)
    torch.manual_seed(0)
    assert torch.equal(drop(x.detach()), y.detach())  # the mask comes from the seeded generator
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert not Dropout(1.0).train()(x).any()
