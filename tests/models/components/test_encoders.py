from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
import torch

from labelgen.models.components.dialogue_encoder import DialogueConfig, DialogueEncoder
from labelgen.models.components.fusion import FeatureFusion, FusionConfig
from labelgen.models.components.heads import GoalSuccessHead, SlotHead
from labelgen.models.components.turn_encoder import (
    BatchMemo,
    EncoderConfig,
    TurnEncoder,
    chunk_plan,
    clear_shared_caches,
    restore_shared_caches,
    shared_cache_snapshot,
)
from tests.models.conftest import MINILM, TINY_ROBERTA


def test_tiny_roberta_turn_encoder_pools_and_ignores_padding():
    torch.manual_seed(0)
    encoder = TurnEncoder(TINY_ROBERTA, MINILM).eval()
    ids = torch.tensor([[101, 2000, 2001, 102, 0, 0], [101, 2000, 2001, 102, 3000, 102]])
    mask = (ids != 0).long()
    states, pooled = encoder(ids, mask)
    assert states.shape == (2, 6, 32) and pooled.shape == (2, 32)
    alone, _ = encoder(ids[:1, :4], mask[:1, :4])
    torch.testing.assert_close(states[0, :4], alone[0], atol=1e-5, rtol=1e-4)
    assert not encoder.use_token_types  # RoBERTa has a single segment


def test_pretrained_minilm_loads_offline_with_segments():
    encoder = TurnEncoder(EncoderConfig(pretrained=MINILM, pooling="mean"), MINILM).eval()
    assert encoder.hidden_size == 384 and encoder.use_token_types
    ids = torch.tensor([[101, 7592, 102, 2088, 102]])
    _, pooled = encoder(ids, torch.ones_like(ids), torch.tensor([[0, 0, 0, 1, 1]]))
    assert torch.isfinite(pooled).all() and pooled.abs().sum() > 0


def test_learned_pooling_starts_as_the_mean_and_ignores_padding():
    torch.manual_seed(0)
    encoder = TurnEncoder(replace(TINY_ROBERTA, pooling="attention"), MINILM).eval()
    ids = torch.tensor([[101, 2000, 2001, 102, 0, 0], [101, 2000, 2001, 102, 3000, 102]])
    mask = (ids != 0).long()
    states, pooled = encoder(ids, mask)
    weights = mask.unsqueeze(-1).float()
    mean = (states * weights).sum(1) / weights.sum(1)
    torch.testing.assert_close(pooled, mean)  # zero-initialized scorer: uniform weights
    with torch.no_grad():
        encoder.pool_score.weight.normal_()
    states, learned = encoder(ids, mask)
    assert not torch.allclose(learned, mean)
    # padding gets no weight: the padded turn pools as it does alone
    _, alone = encoder(ids[:1, :4], mask[:1, :4])
    torch.testing.assert_close(learned[0], alone[0], atol=1e-5, rtol=1e-4)
    # a turn with no tokens (none in a real batch) pools to zeros, not NaN
    _, empty = encoder(ids[:1], torch.zeros_like(mask[:1]))
    assert torch.equal(empty, torch.zeros_like(empty))


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_pooled_sides_give_each_side_its_own_vector(pooling):
    torch.manual_seed(0)
    encoder = TurnEncoder(replace(TINY_ROBERTA, pooling=pooling, pool_sides=True), MINILM).eval()
    assert encoder.out_dim == 2 * encoder.hidden_size
    ids = torch.tensor([[101, 2000, 2001, 102, 3000, 102], [101, 2000, 2001, 102, 0, 0]])
    mask = (ids != 0).long()
    user = torch.tensor([[0, 1, 1, 0, 0, 0]] * 2, dtype=torch.bool)
    system = torch.tensor([[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    states, pooled = encoder(ids, mask, sides=(user, system))
    assert pooled.shape == (2, 64)
    # each half is its side's own mean (the scorer starts at zero: uniform weights)
    torch.testing.assert_close(pooled[:, :32], states[:, 1:3].mean(1))
    torch.testing.assert_close(pooled[0, 32:], states[0, 4])
    # no response: its half is zeros, not NaN and not the user's
    assert torch.equal(pooled[1, 32:], torch.zeros(32))
    with pytest.raises(ValueError, match="token masks"):
        encoder(ids, mask)


def test_encoder_config_needs_weights_or_architecture():
    with pytest.raises(ValueError, match="architecture"):
        EncoderConfig(pretrained=None)
    with pytest.raises(ValueError, match="layers"):
        EncoderConfig(pretrained=None, architecture=TINY_ROBERTA.architecture, layers=0)
    with pytest.raises(ValueError, match="pool_sides"):
        replace(TINY_ROBERTA, pooling="cls", pool_sides=True)


def test_token_states_average_the_last_layers():
    torch.manual_seed(0)
    config = EncoderConfig(pretrained=None, architecture=TINY_ROBERTA.architecture, layers=2)
    encoder = TurnEncoder(config, MINILM).eval()
    ids = torch.tensor([[0, 2000, 2001, 2]])
    states, _ = encoder(ids, torch.ones_like(ids))
    hidden = encoder.model(input_ids=ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(states, (hidden[-1] + hidden[-2]) / 2)
    assert not torch.allclose(states, hidden[-1])


def test_dialogue_encoder_context_switch():
    torch.manual_seed(0)
    turns = torch.randn(2, 5, 16)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    for context in (True, False):
        enc = DialogueEncoder(
            DialogueConfig(d_model=16, heads=2, layers=1, dropout=0.0, context=context)
        ).eval()
        changed = turns.clone()
        changed[0, 4] = torch.randn(16)  # a later turn changes
        changed[1, 4] = torch.randn(16)  # a padding slot changes
        a, b = enc(turns, mask), enc(changed, mask)
        # with context an earlier turn sees the later one; without it nothing moves
        assert (not torch.allclose(a[0, 0], b[0, 0])) == context
        torch.testing.assert_close(a[1, :3], b[1, :3])  # padding never leaks


def test_fusion_uses_every_feature():
    torch.manual_seed(0)
    fusion = FeatureFusion(8, 16, [4, 3], 2, FusionConfig(audio=True, audio_dim=4, dropout=0.0))
    text, cat = torch.randn(3, 8), torch.tensor([[0, 1], [2, 2], [3, 0]])
    num, flags, audio = torch.randn(3, 2), torch.ones(3, 2, dtype=torch.bool), torch.randn(3, 4)
    base = fusion(text, cat, num, flags, audio)
    assert base.shape == (3, 16)
    for changed in (
        (text, cat.flip(0), num, flags, audio),
        (text, cat, num + 1, flags, audio),
        (text, cat, num, ~flags, audio),
        (text, cat, num, flags, audio + 1),
    ):
        assert not torch.allclose(fusion(*changed), base)
    with pytest.raises(ValueError, match="audio"):
        fusion(text, cat, num, flags, None)


def test_goal_head_pools_member_turns_only():
    torch.manual_seed(0)
    head = GoalSuccessHead(8, dropout=0.0).eval()
    turns, goal = torch.randn(5, 8), torch.tensor([0, 0, -1, 1, 1])
    logits = head(turns, goal, 2)
    assert logits.shape == (2, 2)
    moved = turns.clone()
    moved[2] += 10  # the turn outside any goal
    torch.testing.assert_close(head(moved, goal, 2), logits)


def test_slot_head_depends_on_turn_context_and_ignores_padding():
    torch.manual_seed(0)
    net = SlotHead(8, 4, 5, dropout=0.0).eval()
    assert net.echo is None

    def head(*args):
        return net(*args)["slots"]

    tokens = torch.randn(2, 3, 8)
    a = head(tokens, torch.zeros(2, 4))
    b = head(tokens, torch.randn(2, 4))
    assert a.shape == (2, 3, 5) and not torch.allclose(a, b)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    padded = tokens.clone()
    padded[0, 2] = 100.0  # whatever sits in a padding slot
    torch.testing.assert_close(
        head(padded, torch.zeros(2, 4), mask)[0, :2], head(tokens, torch.zeros(2, 4), mask)[0, :2]
    )
    assert torch.isfinite(
        head(tokens, torch.zeros(2, 4), torch.zeros(2, 3, dtype=torch.bool))
    ).all()
    # no turn at all: no tags, not an error
    empty = head(tokens[:0], torch.zeros(0, 4), torch.zeros(0, 3, dtype=torch.bool))
    assert empty.shape == (0, 3, 5)


@pytest.mark.parametrize("lengths", [[5, 3, 1, 1], [4, 5, 5, 3]])
def test_slot_head_lstm_is_the_packed_bidirectional_lstm(lengths):
    # padded one-way passes over groups of rows of similar length (three groups, then one)
    # stand in for a packed sequence: the same outputs and the same gradients
    torch.manual_seed(0)
    head = SlotHead(8, 6, 5, dropout=0.0)
    x = torch.randn(4, 5, 6, requires_grad=True)
    lengths = torch.tensor(lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, lengths, batch_first=True, enforce_sorted=False
    )
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(
        head.lstm(packed)[0], batch_first=True, total_length=5
    )
    got = head._bidirectional(x, lengths)
    torch.testing.assert_close(got, expected)
    weights = torch.randn_like(got)
    want = torch.autograd.grad((expected * weights).sum(), [x, *head.lstm.parameters()])
    have = torch.autograd.grad((got * weights).sum(), [x, *head.lstm.parameters()])
    for a, b in zip(have, want, strict=True):
        torch.testing.assert_close(a, b)
    assert got[3, 3:].abs().sum() == 0 and got[3, :3].abs().sum() > 0


def test_slot_head_runs_under_cpu_bf16_autocast_close_to_float32():
    # --precision bf16-mixed on CPU: oneDNN has no bf16 LSTM on CPUs without native bf16, so
    # the LSTM must run in float32 there while the layers around it still round to bf16
    torch.manual_seed(0)
    net = SlotHead(8, 4, 5, dropout=0.0).eval()
    tokens, turns = torch.randn(2, 3, 8), torch.randn(2, 4)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    shapes = torch.tensor([[1, 2, 0], [3, 1, 2]])  # float32 embeddings: the LSTM's input too
    full = net(tokens, turns, mask, shapes)["slots"]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(tokens, turns, mask, shapes)["slots"]  # as `labelgen label` runs it
    assert low.dtype == torch.bfloat16  # the output layer did run in bf16
    diff = (low.float() - full).abs().max()
    assert 0 < diff < 0.1


def test_slot_head_reads_token_order():
    # B-x then I-x needs to know which token came first: the same tokens in another order
    # must tag differently (a position-free layer gave each token the same tag either way)
    torch.manual_seed(0)
    net = SlotHead(8, 4, 5, dropout=0.0).eval()

    def head(*args):
        return net(*args)["slots"]

    tokens, turns = torch.randn(1, 3, 8), torch.zeros(1, 4)
    order = torch.tensor([2, 1, 0])
    reordered = head(tokens[:, order], turns)[:, order]
    assert not torch.allclose(head(tokens, turns), reordered)


def test_slot_head_echo_output_shares_the_tagger_and_can_stand_alone():
    torch.manual_seed(0)
    both = SlotHead(8, 4, 5, dropout=0.0, echo_tags=3).eval()
    tokens, turns = torch.randn(2, 3, 8), torch.randn(2, 4)
    out = both(tokens, turns)
    assert out["slots"].shape == (2, 3, 5) and out["echo"].shape == (2, 3, 3)
    # the echo loss reaches the layers the slot tags are read from, not the slot output
    out["echo"].sum().backward()
    assert both.lstm.weight_ih_l0.grad.abs().sum() > 0 and both.tokens.weight.grad is not None
    assert both.out.weight.grad is None
    # a stage 1 without slot tags: the tagger's layers and the echo output only
    alone = SlotHead(8, 4, 0, dropout=0.0, echo_tags=3)
    assert alone.out is None and set(alone(tokens, turns)) == {"echo"}
    assert alone.lstm.weight_ih_l0.shape == both.lstm.weight_ih_l0.shape


def test_frozen_encoder_encodes_each_turn_once_and_matches_the_model():
    torch.manual_seed(0)
    # eager attention: a cache of its own, not shared with other tests' frozen MiniLM
    config = EncoderConfig(
        pretrained=MINILM, pooling="mean", frozen=True, cache_turns=3, attn_implementation="eager"
    )
    encoder = TurnEncoder(config, MINILM).train()
    assert not encoder.model.training  # no dropout in a frozen encoder
    assert not any(p.requires_grad for p in encoder.parameters())
    ids = torch.tensor([[101, 7592, 102, 0, 0], [101, 7592, 2088, 2003, 102]])
    mask = (ids != 0).long()
    encoded = []  # turns through the model, whatever the chunks
    encoder.model.register_forward_hook(
        lambda m, a, kw, o: encoded.append(len(kw["input_ids"])), with_kwargs=True
    )
    states, pooled = encoder(ids, mask)
    again, _ = encoder(ids.flip(0), mask.flip(0))
    assert sum(encoded) == 2 and len(encoder._cache) == 2
    torch.testing.assert_close(again.flip(0), states)
    encoder.cache_enabled = False
    _, direct_pooled = encoder(ids, mask)
    assert sum(encoded) == 4
    torch.testing.assert_close(direct_pooled, pooled, atol=2e-3, rtol=1e-2)  # fp16 cache
    for k in range(3):  # the cache is bounded
        encoder.cache_enabled = True
        encoder(torch.tensor([[101, 3000 + k, 102]]), torch.ones(1, 3, dtype=torch.long))
    assert len(encoder._cache) == 3
    # a batch of more new turns than the cache holds still gets every turn's states
    many = torch.tensor([[101, 4000 + k, 102] for k in range(5)])
    states, _ = encoder(many, torch.ones_like(many))
    assert len(encoder._cache) == 3 and (states.abs().sum((1, 2)) > 0).all()


def test_frozen_pretrained_encoders_share_their_cache():
    config = EncoderConfig(pretrained=MINILM, frozen=True)
    first, second = TurnEncoder(config, MINILM), TurnEncoder(config, MINILM)
    ids = torch.tensor([[101, 4242, 102]])
    first(ids, torch.ones_like(ids))
    calls = []
    second.model.register_forward_hook(lambda m, i, o: calls.append(i))
    second(ids, torch.ones_like(ids))
    assert calls == [] and first._cache is second._cache
    unfrozen = TurnEncoder(EncoderConfig(pretrained=MINILM), MINILM)
    assert unfrozen._cache is not first._cache


def test_cleared_caches_encode_every_turn_anew():
    # what ran before in the process (other turns in other chunks) must not reach later work
    config = EncoderConfig(pretrained=MINILM, frozen=True, attn_implementation="eager")
    first = TurnEncoder(config, MINILM)
    ids = torch.tensor([[101, 4343, 102]])
    first(ids, torch.ones_like(ids))
    held = first._cache
    assert len(held) >= 1
    clear_shared_caches()
    assert len(held) == 0  # a module holding the cache sees it empty ...
    second = TurnEncoder(config, MINILM)
    assert second._cache is not held  # ... and a new one starts from a new cache
    calls = []
    second.model.register_forward_hook(lambda m, i, o: calls.append(i))
    second(ids, torch.ones_like(ids))
    assert len(calls) == 1 and len(second._cache) == 1


def test_restored_caches_keep_the_snapshot_s_turns_and_encode_the_rest_anew():
    # a training process goes back to the cache it forked with before each model
    clear_shared_caches()
    config = EncoderConfig(pretrained=MINILM, frozen=True, attn_implementation="eager")
    encoder = TurnEncoder(config, MINILM)
    warm, later = torch.tensor([[101, 4444, 102]]), torch.tensor([[101, 4545, 102]])
    encoder(warm, torch.ones_like(warm))
    snapshot = shared_cache_snapshot()
    kept = dict(encoder._cache)
    encoder(later, torch.ones_like(later))
    assert len(encoder._cache) == 2
    restore_shared_caches(snapshot)
    assert dict(encoder._cache).keys() == kept.keys()
    assert all(encoder._cache[turn] is states for turn, states in kept.items())
    calls = []
    encoder.model.register_forward_hook(lambda m, i, o: calls.append(i))
    encoder(warm, torch.ones_like(warm))  # held: read, not encoded
    assert calls == []
    encoder(later, torch.ones_like(later))  # dropped: encoded again
    assert len(calls) == 1 and len(encoder._cache) == 2
    clear_shared_caches()


def test_batch_memo_gives_the_uncached_bits_and_encodes_each_batch_once():
    config = EncoderConfig(pretrained=MINILM, frozen=True, attn_implementation="eager")
    first, second = TurnEncoder(config, MINILM).eval(), TurnEncoder(config, MINILM).eval()
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2003, 102, 0, 0]])
    mask = (ids != 0).long()
    rows = []  # turns through the model, whatever the chunks
    for encoder in (first, second):
        encoder.cache_enabled = False  # as labeling runs
        encoder.model.register_forward_hook(
            lambda m, a, kw, o: rows.append(len(kw["input_ids"])), with_kwargs=True
        )
    with torch.no_grad():
        direct, direct_pooled = first(ids, mask)
        assert sum(rows) == 2
        first.memo_bytes = second.memo_bytes = 2**20
        memo, _ = first(ids, mask)  # encoded, and kept
        memo.zero_()  # a caller's tensor is its own: the memo keeps its copy
        again, again_pooled = second(ids, mask)  # another model, the same weights: no encoder
        assert sum(rows) == 4
        assert torch.equal(again, direct) and torch.equal(again_pooled, direct_pooled)
        second(ids[:1], mask[:1])  # another batch is encoded
        assert sum(rows) == 5
        second.memo_bytes = 16  # smaller than any batch: nothing is kept, all is encoded
        second(ids[1:], mask[1:])
        second(ids[1:], mask[1:])
        assert sum(rows) == 7
    second.memo_bytes = 2**20
    second(ids, mask)  # with gradients (training) the memo is never asked
    assert sum(rows) == 9


def test_batch_memo_drops_the_least_recently_used_past_its_bytes():
    memo, block = BatchMemo(), torch.zeros(4, dtype=torch.float32)  # 16 bytes each
    memo.put(b"a", block, 40)
    memo.put(b"b", block, 40)
    assert memo.get(b"a") is block  # "a" is now the more recent
    memo.put(b"c", block, 40)
    assert memo.get(b"b") is None and memo.get(b"a") is block and memo.get(b"c") is block
    assert memo.bytes == 32 and (memo.hits, memo.misses) == (3, 1)


def test_length_chunks_give_the_whole_batch_states_and_gradients():
    torch.manual_seed(0)
    encoder = TurnEncoder(replace(TINY_ROBERTA), MINILM).eval()  # a config of its own
    lengths = [3, 9, 5, 9, 2, 7]
    ids = torch.ones(len(lengths), 9, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(5, 1000, (n,))
    mask = (ids != 1).long()
    encoder.config.chunk_tokens = 10_000  # one pass, padded to 9
    whole, whole_pooled = encoder(ids, mask)
    encoder.config.chunk_tokens = 12  # chunks of one or two turns, each padded to its own
    calls = []
    hook = encoder.model.register_forward_hook(lambda m, i, o: calls.append(o[0].shape))
    chunked, chunked_pooled = encoder(ids, mask)
    hook.remove()
    assert len(calls) > 2 and all(s[0] * s[1] <= 12 or s[0] == 1 for s in calls)
    assert sorted(s[1] for s in calls) != [9] * len(calls)  # shorter turns, shorter passes
    real = mask.bool()
    torch.testing.assert_close(chunked[real], whole[real], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(chunked_pooled, whole_pooled, atol=1e-5, rtol=1e-4)
    chunked_pooled.sum().backward()  # the chunks train the encoder like one pass
    grads = [p.grad for p in encoder.model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_frozen_cache_is_shared_by_weights_not_by_name():
    frozen = EncoderConfig(pretrained=None, architecture=TINY_ROBERTA.architecture, frozen=True)
    torch.manual_seed(0)
    first = TurnEncoder(frozen, MINILM)
    torch.manual_seed(1)
    second = TurnEncoder(frozen, MINILM)
    ids = torch.tensor([[0, 4242, 2]])
    first(ids, torch.ones_like(ids))
    assert second._cache is not first._cache  # other weights, other states
    second.load_state_dict(first.state_dict())  # e.g. a model loaded from its checkpoint
    assert second._cache is first._cache
    calls = []
    second.model.register_forward_hook(lambda m, i, o: calls.append(i))
    second(ids, torch.ones_like(ids))
    assert calls == []
    changed = {
        k: v + 1 if k.endswith("LayerNorm.bias") else v for k, v in first.state_dict().items()
    }
    second.load_state_dict(changed)
    assert second._cache is not first._cache


@pytest.mark.parametrize("algorithm", ["xxh3_128", "blake2b"])
def test_fingerprint_is_the_same_for_the_same_bits_and_only_for_them(algorithm):
    frozen = EncoderConfig(pretrained=None, architecture=TINY_ROBERTA.architecture, frozen=True)
    torch.manual_seed(2)
    first = TurnEncoder(frozen, MINILM)
    digest = first.fingerprint(algorithm)
    second = TurnEncoder(frozen, MINILM)  # other random weights ...
    assert second.fingerprint(algorithm) != digest
    second.load_state_dict(first.state_dict())  # ... then the same
    assert second.fingerprint(algorithm) == digest
    with torch.no_grad():
        next(first.model.parameters()).add_(1.0)
    assert first.fingerprint(algorithm) != digest
    # bits, not values: -0.0 equals 0.0 as a float, yet they are other weights' bytes
    with torch.no_grad():
        bias = next(b for n, b in first.model.named_parameters() if n.endswith("LayerNorm.bias"))
        bias.zero_()
        zeros = first.fingerprint(algorithm)
        bias.neg_()
    assert first.fingerprint(algorithm) != zeros
    # and the attention kernel, which changes the states as the weights would
    eager = TurnEncoder(replace(frozen, attn_implementation="eager"), MINILM)
    eager.load_state_dict(second.state_dict())
    assert eager.fingerprint(algorithm) != digest


def test_blake2b_fingerprint_is_the_one_session_38_checkpoints_hold():
    # those checkpoints name their frozen encoder by this digest: the recipe must not move
    frozen = EncoderConfig(pretrained=None, architecture=TINY_ROBERTA.architecture, frozen=True)
    encoder = TurnEncoder(frozen, MINILM)
    hashed = hashlib.blake2b(frozen.attn_implementation.encode(), digest_size=16)
    for name, tensor in encoder.model.state_dict().items():
        hashed.update(name.encode())
        hashed.update(tensor.contiguous().view(torch.uint8).numpy())
    assert encoder.fingerprint("blake2b") == hashed.hexdigest()
    assert encoder.fingerprint() != hashed.hexdigest()


def test_chunk_plan_covers_every_turn_once_within_budget_and_padding():
    torch.manual_seed(0)
    lengths = torch.randint(1, 60, (200,))
    plan = chunk_plan(lengths, budget=256)
    rows = torch.cat([index for index, _ in plan])
    assert sorted(rows.tolist()) == list(range(200))
    for index, width in plan:
        assert width == int(lengths[index].max())
        assert len(index) * width <= 256 or len(index) == 1
        assert int(lengths[index].sum()) >= 0.9 * len(index) * width
    # without the padding rule, the budget alone packs longer ranges of lengths
    assert len(chunk_plan(lengths, 256, max_padding=1.0)) < len(plan)


def test_compiled_encoder_keeps_its_outputs_and_parameter_names():
    # the "eager" backend runs the graph capture without a C++ toolchain: the wiring, not speed
    torch.manual_seed(0)
    plain = TurnEncoder(TINY_ROBERTA, MINILM).eval()
    compiled = TurnEncoder(replace(TINY_ROBERTA, compile="eager"), MINILM).eval()
    assert compiled.state_dict().keys() == plain.state_dict().keys()
    compiled.load_state_dict(plain.state_dict())
    ids = torch.randint(5, 100, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    for a, b in zip(plain(ids, mask), compiled(ids, mask), strict=True):
        torch.testing.assert_close(a, b)
