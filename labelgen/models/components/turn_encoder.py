"""The turn encoder: any Hugging Face encoder over the (user, system) text pair of each turn."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
import xxhash
from torch import nn

from labelgen.data.tokenization import load_tokenizer, resolve_pretrained


@dataclass
class EncoderConfig:
    pretrained: str | None = "roberta-base"
    """Weights to start from: a hub name, a path, or `package:<module>`; None builds the
    architecture in `architecture` with random weights (tiny test models)."""
    architecture: dict[str, Any] = field(default_factory=dict)
    """Config overrides, e.g. {model_type: roberta, hidden_size: 32, num_hidden_layers: 2}."""
    pooling: Literal["cls", "mean", "attention"] = "cls"
    """Turn vector: the first token's state, the mean over the turn's tokens, or a learned
    weighting of them ("attention": a scorer over each token's state, trained with the heads,
    zero-initialized so that it starts as the mean). A mean over a frozen encoder's tokens
    dilutes the few words that carry a reaction ("No, the bedroom one"); the scorer can learn
    to keep them."""
    pool_sides: bool = False
    """Pool the user's tokens and the system's tokens apart and give both vectors side by side
    (`[N, 2H]`), instead of one pool over the pair. One mean over "find me a table" and "Your
    table is booked" blurs who said what: the dialogue model then cannot compare a request with
    the response it got (a swapped response, a failure notice, a change of intent), which the
    pair's single vector only hints at."""
    attn_implementation: str = "sdpa"
    """Attention kernel passed to transformers; sdpa uses PyTorch's fused attention."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on long turns / big batches."""
    layers: int = 1
    """Token states are the mean of the encoder's last `layers` layers. A sentence encoder's
    last layer is trained to be averaged into one vector; the layers below it keep more of
    each token (where a value starts and ends), which the slot tagger needs."""
    frozen: bool = False
    """Keep the encoder's weights fixed and encode each distinct turn once per process: its
    token states are cached in memory (float16), so later epochs, stages and folds skip the
    encoder. The way to train on CPU; fine-tuning the encoder is the better model on GPUs."""
    store_frozen: bool = False
    """Write a frozen encoder's weights into every checkpoint even while they are still the
    ones `pretrained` gave. By default such a checkpoint names them by a digest instead (90 MB
    less per MiniLM checkpoint, 500 MB per RoBERTa-base): loading takes them from `pretrained`
    again, as building the model does anyway, and refuses if the weights there changed.
    Weights that are no longer those (stage 1 adapted them, `init_from` loaded others) are
    always written, and exported models always hold every weight. Every save hashes the
    weights again to compare them with the digest (`DIGEST`: 9 ms for MiniLM's 90 MB here)."""
    cache_turns: int = 1_000_000
    """At most this many turns in the frozen cache (the oldest are dropped first)."""
    chunk_tokens: int | None = None
    """Padded tokens per encoder pass. A batch's turns are sorted by length and encoded in
    chunks of about this many tokens, each padded only to its own longest turn (padded to the
    batch's longest turn, 62% of the encoder's work on SGD dev was padding). None: 1,024 on a
    CPU, where small chunks stay in cache (2.7x the turns per second of whole batches, see
    docs/benchmarks.md), 65,536 on a GPU, where they would leave it idle."""
    compile: str | None = None
    """torch.compile the encoder with this backend ("inductor" on GPUs), dynamic shapes since
    chunks vary in length; None: eager. It compiles in place (`nn.Module.compile`), so
    checkpoints and exports keep their parameter names. On a CPU the compile time exceeds
    what it saves in a run of this size; on a GPU it is for long runs."""

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ValueError(f"encoder.layers must be at least 1, got {self.layers}")
        if self.chunk_tokens is not None and self.chunk_tokens < 1:
            raise ValueError(f"encoder.chunk_tokens must be at least 1, got {self.chunk_tokens}")
        if self.pool_sides and self.pooling == "cls":
            raise ValueError("encoder.pool_sides needs pooling 'mean' or 'attention', not 'cls'")
        if self.pretrained is None and "model_type" not in self.architecture:
            raise ValueError("encoder: give `pretrained` or an `architecture` with a model_type")


_SHARED_CACHES: dict[tuple[str, int], OrderedDict[bytes, torch.Tensor]] = {}
"""Frozen encoders' turn states by (fingerprint of the weights and attention kernel, layers)."""


DIGEST = "xxh3_128"
"""How `TurnEncoder.fingerprint` hashes weights. xxh3 took 9-11 ms for MiniLM's 90 MB here,
against 0.14-0.23 s for blake2b and 28 ms for comparing them with a copy kept in memory (which
it replaced, and the memory with it): every model loaded and every checkpoint saved takes a
fingerprint (about 220 in a quality benchmark run). A frozen RoBERTa-base's 500 MB take 0.10 s
(blake2b: 1.3 s, at every save, as they were too large to keep a copy of)."""

_HASHES = {
    "xxh3_128": xxhash.xxh3_128,
    # session 38's checkpoints name their encoder by this digest
    "blake2b": lambda: hashlib.blake2b(digest_size=16),
}


class BatchMemo:
    """Token states of whole batches, by the batch's exact inputs, least recently used dropped
    past `max_bytes`. A batch's states are a pure function of its inputs (the same chunks, the
    same arithmetic), so a hit gives the very bits the encoder would: unlike the per-turn cache,
    it cannot make labels depend on what ran before."""

    def __init__(self) -> None:
        self.entries: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> torch.Tensor | None:
        states = self.entries.get(key)
        if states is None:
            self.misses += 1
            return None
        self.hits += 1
        self.entries.move_to_end(key)
        return states

    def put(self, key: bytes, states: torch.Tensor, max_bytes: int) -> None:
        size = states.numel() * states.element_size()
        if size > max_bytes:
            return
        self.entries[key] = states
        self.bytes += size
        while self.bytes > max_bytes:
            _, dropped = self.entries.popitem(last=False)
            self.bytes -= dropped.numel() * dropped.element_size()

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0


_BATCH_MEMOS: dict[tuple, BatchMemo] = {}
"""Encoders' batch memos by (fingerprint of the weights and attention kernel, layers, chunk
budget, threads, device): everything besides the inputs that decides a batch's bits."""


def shared_cache_turns() -> int:
    """Turns in this process's frozen caches: each one was encoded once (fewer than that when
    a cache outgrew `EncoderConfig.cache_turns` and dropped its oldest)."""
    return sum(len(cache) for cache in _SHARED_CACHES.values())


def shared_cache_snapshot() -> dict[tuple[str, int], frozenset[bytes]]:
    """The turns each frozen cache of this process holds now, for `restore_shared_caches`."""
    return {key: frozenset(cache) for key, cache in _SHARED_CACHES.items()}


def restore_shared_caches(snapshot: dict[tuple[str, int], frozenset[bytes]]) -> None:
    """Drops every cached turn state that `snapshot` did not hold, so the work after this reads
    the states it held (those still cached) and encodes the rest itself, as if nothing had run
    in between: unlike `clear_shared_caches`, the states it held are kept, not encoded again."""
    for key, cache in _SHARED_CACHES.items():
        kept = snapshot.get(key, frozenset())
        for turn in [turn for turn in cache if turn not in kept]:
            del cache[turn]


def clear_shared_caches() -> None:
    """Empties every frozen encoder's cache of turn states in this process, for work that must
    not depend on what ran before it. A turn's cached states are those of the chunk it was first
    encoded in (its padding, its batch's arithmetic), which differ from another chunk's in the
    last bits; training on them then goes another way, like a different seed."""
    for cache in _SHARED_CACHES.values():
        cache.clear()  # modules already holding a cache see it empty, and refill it
    _SHARED_CACHES.clear()
    for memo in _BATCH_MEMOS.values():
        memo.clear()  # not needed for exactness (a hit is exact), only to free memory
    _BATCH_MEMOS.clear()


class TurnEncoder(nn.Module):
    """Encodes each turn once: `[N, L]` token ids -> token states `[N, L, H]`, vector `[N, H]`."""

    def __init__(self, config: EncoderConfig, tokenizer: str) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        self.config = config
        # whether `pretrained` gave every weight: none drawn at random, which no later load
        # of the source would draw again
        from_source = False
        if config.pretrained is not None:
            self.model, info = AutoModel.from_pretrained(
                resolve_pretrained(config.pretrained),
                attn_implementation=config.attn_implementation,
                add_pooling_layer=False,
                output_loading_info=True,
                **config.architecture,
            )
            from_source = not (info["missing_keys"] or info["mismatched_keys"])
        else:
            arch = dict(config.architecture)
            hf_config = AutoConfig.for_model(arch.pop("model_type"), **arch)
            # A random encoder still has to speak the data's tokenizer.
            tok = load_tokenizer(tokenizer)
            if "vocab_size" not in config.architecture:
                hf_config.vocab_size = len(tok)
            if "pad_token_id" not in config.architecture:
                hf_config.pad_token_id = tok.pad_token_id
            hf_config._attn_implementation = config.attn_implementation
            self.model = AutoModel.from_config(hf_config, add_pooling_layer=False)
        # from_pretrained returns the model in eval mode; the LightningModule decides the mode.
        self.model.train()
        if config.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        if config.compile:
            self.model.compile(backend=config.compile, dynamic=True)
        self.hidden_size: int = self.model.config.hidden_size
        self.out_dim = self.hidden_size * (2 if config.pool_sides else 1)
        """Size of the turn vector `forward` returns."""
        self.pool_score: nn.Linear | None = None
        if config.pooling == "attention":
            # outside self.model: it trains (at the heads' learning rate) even when the
            # encoder is frozen, and the frozen cache's fingerprint does not see it
            self.pool_score = nn.Linear(self.hidden_size, 1)
            nn.init.zeros_(self.pool_score.weight)
            nn.init.zeros_(self.pool_score.bias)
        # Encoders without segment embeddings (RoBERTa: type_vocab_size 1) must get zeros.
        self.use_token_types = getattr(self.model.config, "type_vocab_size", 1) > 1
        self._cache_ref: OrderedDict[bytes, torch.Tensor] | None = None
        # New weights, new states: the cache is looked up again after a load.
        self.register_load_state_dict_post_hook(_unbind_cache)
        self.cache_enabled = True
        """Labeling turns it off: there each turn is seen once, and encoding it in its own
        batch keeps the labels independent of which process saw it first."""
        self.memo_bytes = 0
        """A frozen encoder outside training (no gradients, the per-turn cache off) keeps whole
        batches' states in a memo of up to this many bytes, shared by every encoder with the
        same weights in the process: several models labeling the same log encode each batch
        once, with the labels of an uncached run. 0: no memo."""
        self._memo_fingerprint: str | None = None
        if config.frozen:
            self.model.requires_grad_(False)
        self.pretrained_digest: str | None = None
        """The fingerprint of the weights as `pretrained` gave them (a frozen encoder whose
        checkpoints refer to them, see `store_frozen`), taken before anything can change them."""
        if config.frozen and from_source and not config.store_frozen:
            self.pretrained_digest = self.fingerprint()

    def train(self, mode: bool = True) -> TurnEncoder:
        # A frozen encoder stays in eval mode: no dropout, so a cached turn is the turn.
        super().train(mode)
        if self.config.frozen:
            self.model.eval()
        return self

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        sides: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states `[N, L, H]` and turn vectors `[N, out_dim]`; `sides`, the user's and
        the system's token masks `[N, L]`, are needed with `pool_sides`."""
        if self.config.pool_sides and sides is None:
            raise ValueError("encoder.pool_sides: forward needs the user and system token masks")
        if self.config.frozen and self.cache_enabled:
            states = self._cached_states(input_ids, attention_mask, token_type_ids)
        elif self.config.frozen and self.memo_bytes and not torch.is_grad_enabled():
            states = self._memo_states(input_ids, attention_mask, token_type_ids)
        elif self.config.frozen:
            with torch.no_grad():
                states = self._encode(input_ids, attention_mask, token_type_ids)
        else:
            states = self._encode(input_ids, attention_mask, token_type_ids)
        if self.config.pool_sides:
            assert sides is not None
            return states, torch.cat([self._pool(states, side) for side in sides], dim=-1)
        return states, self._pool(states, attention_mask)

    @property
    def _cache(self) -> OrderedDict[bytes, torch.Tensor]:
        """Frozen weights give the same states in every module holding them, so the cache is
        shared by a fingerprint of the weights: a second stage, fold or baseline in the same
        process, or a model loaded from a checkpoint of it, encodes nothing again."""
        if self._cache_ref is None and not self.config.frozen:
            self._cache_ref = OrderedDict()  # weights that train have no states to share
        if self._cache_ref is None:
            key = (self.fingerprint(), self.config.layers)
            self._cache_ref = _SHARED_CACHES.setdefault(key, OrderedDict())
        return self._cache_ref

    def fingerprint(self, algorithm: str = DIGEST) -> str:
        """A digest of the encoder's weights (names, dtypes' bytes) and attention kernel, by
        `algorithm` (`DIGEST`; "blake2b" for checkpoints that name their encoder by it)."""
        if algorithm not in _HASHES:  # a checkpoint from a labelgen that hashes otherwise
            raise ValueError(
                f"weights hashed by {algorithm!r} cannot be checked here: this labelgen knows "
                f"{', '.join(map(repr, _HASHES))}"
            )
        hashed = _HASHES[algorithm]()
        hashed.update(self.config.attn_implementation.encode())
        for name, tensor in self.model.state_dict().items():
            hashed.update(name.encode())
            hashed.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
        return hashed.hexdigest()

    def _memo(self, input_ids: torch.Tensor) -> BatchMemo:
        if self._memo_fingerprint is None:
            self._memo_fingerprint = self.fingerprint()
        key = (
            self._memo_fingerprint,
            self.config.layers,
            self.chunk_budget(input_ids),
            torch.get_num_threads(),  # float sums may round otherwise with other threads
            str(input_ids.device),
        )
        return _BATCH_MEMOS.setdefault(key, BatchMemo())

    def _memo_states(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        """The batch's states from the memo, or encoded and kept there (`memo_bytes`)."""
        digest = hashlib.blake2b(str(tuple(input_ids.shape)).encode(), digest_size=32)
        for tensor in (input_ids, attention_mask, token_type_ids):
            digest.update(b"|" if tensor is None else tensor.cpu().contiguous().numpy().tobytes())
        key = digest.digest()
        memo = self._memo(input_ids)
        states = memo.get(key)
        if states is None:
            states = self._encode(input_ids, attention_mask, token_type_ids)
            memo.put(key, states, self.memo_bytes)
        # a copy: nothing downstream may change the memo's tensor in place
        return states.clone()

    def _encode(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        """Token states `[N, L, H]`, the turns encoded in chunks of similar length (right
        padding: a turn's tokens come first)."""
        chunks = []
        for index, width in chunk_plan(attention_mask.sum(1), self.chunk_budget(input_ids)):
            types = None if token_type_ids is None else token_type_ids[index, :width]
            states = self._encode_padded(
                input_ids[index, :width], attention_mask[index, :width], types
            )
            chunks.append((index, F.pad(states, (0, 0, 0, input_ids.shape[1] - width))))
        if not chunks:  # no turns
            return self._encode_padded(input_ids, attention_mask, token_type_ids)
        order = torch.cat([index for index, _ in chunks])
        return torch.cat([states for _, states in chunks])[torch.argsort(order)]

    def chunk_budget(self, input_ids: torch.Tensor) -> int:
        return self.config.chunk_tokens or (65_536 if input_ids.is_cuda else 1024)

    def _encode_padded(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        kwargs = {}
        if self.use_token_types and token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if self.config.layers == 1:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, **kwargs
            ).last_hidden_state
        hidden = self.model(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **kwargs
        ).hidden_states
        return torch.stack(hidden[-self.config.layers :]).mean(0)

    @torch.no_grad()
    def _cached_states(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        """Token states from the cache; only turns never seen before go through the encoder."""
        lengths = attention_mask.sum(1).tolist()
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        ids_np, types_np = input_ids.cpu().numpy(), types.cpu().numpy()  # one copy per batch
        keys = [ids_np[i, :n].tobytes() + types_np[i, :n].tobytes() for i, n in enumerate(lengths)]
        cache = self._cache
        missing = [i for i, key in enumerate(keys) if key not in cache]
        fresh_states: dict[bytes, torch.Tensor] = {}
        if missing:
            width = max(lengths[i] for i in missing)
            rows = torch.tensor(missing, device=input_ids.device)
            fresh = self._encode(
                input_ids[rows, :width], attention_mask[rows, :width], types[rows, :width]
            )
            for j, i in enumerate(missing):
                fresh_states[keys[i]] = cache[keys[i]] = fresh[j, : lengths[i]].to(
                    "cpu", torch.float16
                )
            while len(cache) > self.config.cache_turns:
                cache.popitem(last=False)
        states = torch.zeros(*input_ids.shape, self.hidden_size, device=input_ids.device)
        # a batch larger than the cache has had some of its own turns dropped already
        pieces = [fresh_states[key] if key in fresh_states else cache[key] for key in keys]
        if pieces:
            # one copy for the batch (a copy per turn was 30% of this lookup's time in a full
            # benchmark run); the mask takes each row's first tokens, row by row, as cat lays
            # them out
            tokens = torch.arange(input_ids.shape[1]) < torch.tensor(lengths)[:, None]
            states[tokens.to(states.device)] = torch.cat(pieces).to(states.device, torch.float32)
        return states

    def _pool(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.config.pooling == "cls":
            return states[:, 0]
        if self.pool_score is not None:
            scores = self.pool_score(states).squeeze(-1).masked_fill(attention_mask == 0, -1e4)
            weights = scores.softmax(-1) * (attention_mask.sum(1, keepdim=True) > 0)
            return (weights.unsqueeze(-1) * states).sum(1)
        # a product over the tokens, not a masked copy of every state summed: the states are
        # the batch's largest tensor, and pooling twice (`pool_sides`) copied them twice
        mask = attention_mask.unsqueeze(1).to(states.dtype)
        return (mask @ states).squeeze(1) / mask.sum(-1).clamp(min=1.0)


def chunk_plan(
    lengths: torch.Tensor, budget: int, max_padding: float = 0.1
) -> list[tuple[torch.Tensor, int]]:
    """Rows to encode together and their padded width: longest first, each chunk as many
    rows as fit `budget` tokens at the width of its longest (at least one row) and no row
    shorter than (1 - max_padding) of that width, so padding stays under `max_padding`."""
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order].tolist()
    plan, start = [], 0
    while start < len(order):
        width = max(sorted_lengths[start], 1)
        end = start + 1
        limit = min(len(order), start + max(1, budget // width))
        while end < limit and sorted_lengths[end] >= (1 - max_padding) * width:
            end += 1
        plan.append((order[start:end], width))
        start = end
    return plan


def _unbind_cache(module: TurnEncoder, incompatible_keys: Any) -> None:
    module._cache_ref = None
    module._memo_fingerprint = None
