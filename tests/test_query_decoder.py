"""Tests of GraphAttention, full_bipartite and the DETR-style QueryDecoder."""
import collections
import math

import pytest
import torch
import torch_geometric
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_ssgm.errors import ConfigError, InvalidInputError
from pyg_ssgm.nn import query_decoder
from pyg_ssgm.nn.attention import GraphAttention
from pyg_ssgm.nn.bipartite import full_bipartite
from pyg_ssgm.nn.query_decoder import QueryDecoder, QueryDecoderLayer, QueryOutput

ATOL = 1e-5


def dense_attention(att: GraphAttention, x_src, x_dst, mask, edge_attr_dense=None):
    """Plain-torch multi-head attention with a [N_dst, N_src] boolean mask, using att's weights."""
    H, C = att.heads, att.head_channels
    q = (x_dst @ att.lin_query.weight.T + att.lin_query.bias).view(-1, H, C).transpose(0, 1)
    k = (x_src @ att.lin_key.weight.T + att.lin_key.bias).view(-1, H, C).transpose(0, 1)
    v = (x_src @ att.lin_value.weight.T + att.lin_value.bias).view(-1, H, C).transpose(0, 1)
    scores = q @ k.transpose(1, 2)  # [H, N_dst, N_src]
    if edge_attr_dense is not None:  # [N_dst, N_src, edge_dim] added to the keys
        e = (edge_attr_dense @ att.lin_edge.weight.T).view(*mask.shape, H, C)  # [Nd, Ns, H, C]
        scores = scores + torch.einsum("hdc,dshc->hds", q, e)
    scores = scores / math.sqrt(C)
    scores = scores.masked_fill(~mask, float("-inf"))
    alpha = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows without edge -> 0
    out = (alpha @ v).transpose(0, 1).reshape(-1, H * C)
    out = out @ att.lin_out.weight.T + att.lin_out.bias
    return out * mask.any(-1, keepdim=True), alpha


# --------------------------------------------------------------------------- GraphAttention


def test_graph_attention_matches_dense_reference_and_multihead_attention():
    torch.manual_seed(0)
    att = GraphAttention(16, 16, heads=4)
    x_src, x_dst = torch.randn(7, 16), torch.randn(5, 16)
    edge_index = full_bipartite(torch.zeros(7, dtype=torch.long), torch.zeros(5, dtype=torch.long))
    out, (ei, alpha) = att((x_src, x_dst), edge_index, return_attention_weights=True)
    ref, ref_alpha = dense_attention(att, x_src, x_dst, torch.ones(5, 7, dtype=torch.bool))
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=ATOL)
    assert torch.equal(ei, edge_index)
    torch.testing.assert_close(alpha, ref_alpha[:, ei[1], ei[0]].T, atol=ATOL, rtol=ATOL)

    # Same weights in torch.nn.MultiheadAttention give the same function on a complete graph.
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([att.lin_query.weight, att.lin_key.weight, att.lin_value.weight]))
        mha.in_proj_bias.copy_(torch.cat([att.lin_query.bias, att.lin_key.bias, att.lin_value.bias]))
        mha.out_proj.weight.copy_(att.lin_out.weight)
        mha.out_proj.bias.copy_(att.lin_out.bias)
    ref2, _ = mha(x_dst[None], x_src[None], x_src[None])
    torch.testing.assert_close(out, ref2[0], atol=ATOL, rtol=ATOL)


def test_graph_attention_sparse_edges_edge_attr_and_isolated_destination():
    torch.manual_seed(1)
    att = GraphAttention((6, 10), 8, heads=2, edge_dim=3)
    x_src, x_dst = torch.randn(6, 6), torch.randn(4, 10)
    mask = torch.rand(4, 6) < 0.5
    mask[0, 0] = True
    mask[2] = False  # destination 2 has no incoming edge
    dst, src = mask.nonzero().T
    edge_index = torch.stack([src, dst])
    edge_attr_dense = torch.randn(4, 6, 3)
    edge_attr = edge_attr_dense[dst, src]
    out, (_, alpha) = att((x_src, x_dst), edge_index, edge_attr, return_attention_weights=True)
    ref, _ = dense_attention(att, x_src, x_dst, mask, edge_attr_dense)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=ATOL)
    assert torch.isfinite(out).all()
    assert torch.equal(out[2], torch.zeros(8))
    assert alpha.shape == (edge_index.size(1), 2)

    # Softmax weights of every destination with an incoming edge sum to 1 in every head.
    sums = torch.zeros(4, 2).index_add_(0, edge_index[1], alpha)
    has_edge = mask.any(1)
    torch.testing.assert_close(sums[has_edge], torch.ones(int(has_edge.sum()), 2))
    assert torch.equal(sums[~has_edge], torch.zeros(int((~has_edge).sum()), 2))


def test_graph_attention_no_edges_and_gradient_is_finite():
    att = GraphAttention(8, 8, heads=2)
    x_src = torch.randn(3, 8, requires_grad=True)
    x_dst = torch.randn(2, 8, requires_grad=True)
    out = att((x_src, x_dst), torch.empty(2, 0, dtype=torch.long))
    assert torch.equal(out, torch.zeros(2, 8))
    out.sum().backward()
    assert torch.isfinite(x_src.grad).all() and torch.isfinite(x_dst.grad).all()


def test_graph_attention_bad_input():
    att = GraphAttention(8, 8, heads=2)
    x = torch.randn(3, 8)
    with pytest.raises(InvalidInputError, match="x_src"):
        att((torch.randn(3, 5), x), torch.zeros(2, 1, dtype=torch.long))
    with torch_geometric.debug(), pytest.raises(InvalidInputError, match="out of range"):
        att((x, x), torch.tensor([[0], [3]]))
    with pytest.raises(InvalidInputError, match="edge_index"):
        att((x, x), torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="edge_dim"):
        att((x, x), torch.zeros(2, 1, dtype=torch.long), torch.randn(1, 2))
    with pytest.raises(ConfigError):
        GraphAttention(8, 10, heads=4)
    assert repr(att) == "GraphAttention(8, 8, heads=2)"


# --------------------------------------------------------------------------- full_bipartite


def naive_full_bipartite(batch_src, batch_dst):
    pairs = sorted((j, i) for i, gi in enumerate(batch_dst.tolist())
                   for j, gj in enumerate(batch_src.tolist()) if gi == gj)
    return sorted(pairs, key=lambda p: (p[1], p[0]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=0, max_size=5),
       st.booleans(), st.randoms(use_true_random=False))
def test_full_bipartite_matches_naive(sizes, shuffle, rnd):
    batch_src = torch.tensor([g for g, (ns, _) in enumerate(sizes) for _ in range(ns)], dtype=torch.long)
    batch_dst = torch.tensor([g for g, (_, nd) in enumerate(sizes) for _ in range(nd)], dtype=torch.long)
    if shuffle:  # unsorted batch vectors are allowed
        batch_src = batch_src[torch.tensor(rnd.sample(range(len(batch_src)), len(batch_src)), dtype=torch.long)]
    ei = full_bipartite(batch_src, batch_dst)
    assert ei.dtype == torch.long and ei.shape == (2, sum(a * b for a, b in sizes))
    assert [tuple(e) for e in ei.T.tolist()] == naive_full_bipartite(batch_src, batch_dst)


def test_full_bipartite_examples_with_empty_graphs():
    # graph 0: 2 src / 1 dst, graph 1: 0 src / 2 dst, graph 2: 1 src / 0 dst, graph 3: 1 src / 1 dst
    ei = full_bipartite(torch.tensor([0, 0, 2, 3]), torch.tensor([0, 1, 1, 3]))
    assert ei.tolist() == [[0, 1, 3], [0, 0, 3]]
    empty = torch.empty(0, dtype=torch.long)
    assert full_bipartite(empty, torch.tensor([0, 0])).shape == (2, 0)
    assert full_bipartite(torch.tensor([0, 1]), empty).shape == (2, 0)
    assert full_bipartite(empty, empty).shape == (2, 0)
    with pytest.raises(InvalidInputError):
        full_bipartite(torch.tensor([0.0]), torch.tensor([0]))
    with torch_geometric.debug(), pytest.raises(InvalidInputError):
        full_bipartite(torch.tensor([-1]), torch.tensor([0]))


# --------------------------------------------------------------------------- QueryDecoder

C, Q = 16, 4


def make_batch(sizes_own, sizes_other, seed=0):
    g = torch.Generator().manual_seed(seed)
    own_batch = torch.repeat_interleave(torch.arange(len(sizes_own)), torch.tensor(sizes_own))
    other_batch = torch.repeat_interleave(torch.arange(len(sizes_other)), torch.tensor(sizes_other))
    return (torch.randn(len(own_batch), C, generator=g), own_batch,
            torch.randn(len(other_batch), C, generator=g), other_batch)


@pytest.fixture
def decoder():
    torch.manual_seed(0)
    return QueryDecoder(C, num_queries=Q, num_layers=2, heads=4).eval()


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_output_shapes(norm_first):
    torch.manual_seed(0)
    dec = QueryDecoder(C, num_queries=Q, num_layers=3, heads=4, norm_first=norm_first)
    h_own, own_batch, h_other, other_batch = make_batch([3, 5, 0], [4, 0, 2])
    out = dec(h_own, own_batch, h_other, other_batch, 3, return_attention=True)
    assert isinstance(out, QueryOutput)
    assert out.embedding.shape == (3 * Q, C) and out.feat.shape == (3 * Q, C)
    assert out.exist_logit.shape == (3 * Q,) and out.pos.shape == (3 * Q, 2)
    assert out.batch.tolist() == [g for g in range(3) for _ in range(Q)]
    for t in (out.embedding, out.exist_logit, out.pos, out.feat):
        assert torch.isfinite(t).all()
    ei_own, alpha_own = out.attention["own"]
    assert ei_own.shape[1] == Q * (3 + 5) and alpha_own.shape == (Q * 8, 4)
    assert (own_batch[ei_own[0]] == out.batch[ei_own[1]]).all()  # only own graph's nodes
    ei_other, _ = out.attention["other"]
    assert ei_other.shape[1] == Q * (4 + 2)
    assert (other_batch[ei_other[0]] == out.batch[ei_other[1]]).all()
    sums = torch.zeros(3 * Q, 4).index_add_(0, ei_own[1], alpha_own)
    torch.testing.assert_close(sums[: 2 * Q], torch.ones(2 * Q, 4))  # graph 2 has no own node

    plain = dec(h_own, own_batch, h_other, other_batch, 3)
    assert plain.attention is None
    assert "QueryDecoder(16, num_queries=4" in repr(dec)
    assert "QueryDecoderLayer(16" in repr(dec.layers[0])


def assert_same_output(a: QueryOutput, b: QueryOutput):
    for name in ("embedding", "exist_logit", "pos", "feat"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=ATOL, rtol=ATOL)


def test_decoder_invariant_to_node_permutation(decoder):
    h_own, own_batch, h_other, other_batch = make_batch([5, 3], [4, 6], seed=1)
    ref = decoder(h_own, own_batch, h_other, other_batch, 2)
    g = torch.Generator().manual_seed(2)
    p_own = torch.randperm(h_own.size(0), generator=g)  # mixes graphs: batch becomes unsorted
    p_other = torch.randperm(h_other.size(0), generator=g)
    out = decoder(h_own[p_own], own_batch[p_own], h_other, other_batch, 2)
    assert_same_output(ref, out)
    out = decoder(h_own, own_batch, h_other[p_other], other_batch[p_other], 2)
    assert_same_output(ref, out)


def test_decoder_batched_equals_separate(decoder):
    h_own, own_batch, h_other, other_batch = make_batch([5, 3, 0], [4, 6, 2], seed=3)
    together = decoder(h_own, own_batch, h_other, other_batch, 3)
    for g in range(3):
        alone = decoder(h_own[own_batch == g], own_batch[own_batch == g] * 0,
                        h_other[other_batch == g], other_batch[other_batch == g] * 0, 1)
        rows = together.batch == g
        for name in ("embedding", "exist_logit", "pos", "feat"):
            torch.testing.assert_close(getattr(together, name)[rows], getattr(alone, name),
                                       atol=ATOL, rtol=ATOL)


def test_decoder_per_graph_query_counts_reuse_the_learned_queries(decoder):
    """``num_queries`` per graph: graph g gets counts[g] queries, query k starting from learned
    query k mod Q, and each graph's queries equal those of the graph decoded alone."""
    h_own, own_batch, h_other, other_batch = make_batch([5, 3, 4], [4, 6, 2], seed=5)
    counts = torch.tensor([2, Q + 3, Q])
    out = decoder(h_own, own_batch, h_other, other_batch, 3, num_queries=counts)
    assert out.batch.tolist() == [g for g in range(3) for _ in range(int(counts[g]))]
    for g in range(3):
        alone = decoder(h_own[own_batch == g], own_batch[own_batch == g] * 0, h_other[other_batch == g],
                        other_batch[other_batch == g] * 0, 1, num_queries=int(counts[g]))
        torch.testing.assert_close(out.pos[out.batch == g], alone.pos, atol=ATOL, rtol=ATOL)
    # the default is the learned number for every graph
    assert_same_output(decoder(h_own, own_batch, h_other, other_batch, 3),
                       decoder(h_own, own_batch, h_other, other_batch, 3, num_queries=Q))
    for bad in (0, torch.tensor([1, 2]), torch.tensor([1.0, 2.0, 3.0])):
        with pytest.raises(InvalidInputError, match="num_queries"):
            decoder(h_own, own_batch, h_other, other_batch, 3, num_queries=bad)
    with torch_geometric.debug(), pytest.raises(InvalidInputError, match="num_queries"):
        decoder(h_own, own_batch, h_other, other_batch, 3, num_queries=torch.tensor([1, 0, 2]))


def test_decoder_output_depends_on_both_graphs(decoder):
    h_own, own_batch, h_other, other_batch = make_batch([3], [3], seed=4)
    ref = decoder(h_own, own_batch, h_other, other_batch, 1)
    assert not torch.allclose(ref.pos, decoder(h_own + 1, own_batch, h_other, other_batch, 1).pos)
    assert not torch.allclose(ref.pos, decoder(h_own, own_batch, h_other + 1, other_batch, 1).pos)
    # queries are distinct (no collapse onto one vector at initialisation)
    cos = torch.nn.functional.cosine_similarity(ref.embedding[:, None], ref.embedding[None], dim=-1)
    assert cos[~torch.eye(Q, dtype=torch.bool)].max() < 0.99


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_gradients_reach_all_parameters(norm_first):
    torch.manual_seed(0)
    dec = QueryDecoder(C, num_queries=Q, num_layers=2, heads=4, dropout=0.1, norm_first=norm_first).train()
    h_own, own_batch, h_other, other_batch = make_batch([3, 4], [5, 2], seed=5)
    out = dec(h_own, own_batch, h_other, other_batch, 2)
    (out.embedding.sum() + out.exist_logit.sum() + out.pos.sum() + out.feat.sum()).backward()
    for name, p in dec.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_reset_parameters_reinitialises():
    torch.manual_seed(0)
    dec = QueryDecoder(C, num_queries=Q)
    before = {k: v.clone() for k, v in dec.state_dict().items()}
    dec.reset_parameters()
    changed = [k for k, v in dec.state_dict().items() if not torch.equal(v, before[k])]
    assert any("query_content" in k for k in changed)
    assert any("self_attn.lin_query.weight" in k for k in changed)


def test_decoder_layer_alone():
    torch.manual_seed(0)
    layer = QueryDecoderLayer(C, heads=2).eval()
    h_own, own_batch, h_other, other_batch = make_batch([3, 2], [1, 4], seed=6)
    q, q_batch = torch.randn(6, C), torch.tensor([0, 0, 0, 1, 1, 1])
    out, att = layer(q, q_batch, h_own, own_batch, h_other, other_batch,
                     query_pos=torch.randn(6, C), return_attention=True)
    assert out.shape == (6, C) and set(att) == {"self", "own", "other"}
    assert att["self"][0].shape == (2, 18)  # 3*3 + 3*3 query pairs, self included (no self-mask)
    with pytest.raises(InvalidInputError, match="query_pos"):
        layer(q, q_batch, h_own, own_batch, h_other, other_batch, query_pos=torch.randn(5, C))


def test_decoder_bad_input(decoder):
    h_own, own_batch, h_other, other_batch = make_batch([3, 2], [1, 4])
    with pytest.raises(InvalidInputError, match="channels"):
        decoder(h_own[:, :8], own_batch, h_other, other_batch, 2)
    with pytest.raises(InvalidInputError, match="own_batch"):
        decoder(h_own, own_batch[:-1], h_other, other_batch, 2)
    with torch_geometric.debug(), pytest.raises(InvalidInputError, match="num_graphs"):
        decoder(h_own, own_batch, h_other, other_batch, 1)
    with pytest.raises(InvalidInputError, match="long"):
        decoder(h_own, own_batch.float(), h_other, other_batch, 2)
    bad = h_other.clone()
    bad[0, 0] = float("nan")
    with torch_geometric.debug(), pytest.raises(InvalidInputError, match="NaN"):
        decoder(h_own, own_batch, bad, other_batch, 2)
    with pytest.raises(InvalidInputError, match="num_graphs"):
        decoder(h_own, own_batch, h_other, other_batch, -1)
    with pytest.raises(ConfigError):
        QueryDecoder(C, num_queries=0)
    with pytest.raises(ConfigError):
        QueryDecoder(10, heads=4)


def test_value_checks_run_only_in_debug_mode(monkeypatch, decoder):
    """Outside ``torch_geometric.debug()`` a valid forward reads no input value back to the host:
    the value checks are not called, and no tensor is turned into a Python bool or scalar (the
    decoder's only conversions are the edge counts that size ``full_bipartite``'s output)."""
    calls = collections.Counter()

    def counting(owner, name):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    for name in ("check_graph_ids", "_check_finite"):
        counting(query_decoder, name)
    counting(GraphAttention, "_check_edge_range")
    for name in ("__bool__", "__int__", "item"):
        counting(torch.Tensor, name)

    att = GraphAttention(C, C, heads=2)
    x, edge_index = torch.randn(4, C), torch.tensor([[0, 1, 3], [2, 2, 0]])
    h_own, own_batch, h_other, other_batch = make_batch([3, 2], [1, 4])
    counts = torch.tensor([2, Q + 1])

    att(x, edge_index)
    assert not calls, dict(calls)
    decoder(h_own, own_batch, h_other, other_batch, 2, num_queries=counts)
    assert set(calls) <= {"__int__"}, dict(calls)  # no check ran, no tensor was read as a bool

    with torch_geometric.debug():
        calls.clear()
        att(x, edge_index)
        assert calls["_check_edge_range"] == 1 and calls["__int__"] > 0
        calls.clear()
        decoder(h_own, own_batch, h_other, other_batch, 2, num_queries=counts)
        assert calls["check_graph_ids"] > 0 and calls["_check_finite"] == 2 and calls["__bool__"] > 0
