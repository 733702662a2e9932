"""The contract as an Arrow schema (Parquet) and as Hugging Face `datasets` Features.

One row per dialogue with the turns nested, so a Parquet row group never splits a dialogue and
a streamed reader always sees whole dialogues. `tests/data/test_arrow.py` checks that this
schema and the pydantic models in `schema.py` name the same fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import datasets

_str = pa.string()
_slot = pa.struct([("slot", _str), ("start", pa.int64()), ("end", pa.int64()), ("value", _str)])
_turn_annotation = pa.struct(
    [
        ("annotator", _str),
        ("intent", _str),
        ("slots", pa.list_(_slot)),
        ("satisfaction", pa.int64()),
        ("segment", _str),
    ]
)
_goal = pa.struct(
    [
        ("goal_id", _str),
        ("intent", _str),
        ("success", pa.bool_()),
        (
            "annotations",
            pa.list_(pa.struct([("annotator", _str), ("success", pa.bool_())])),
        ),
    ]
)
_dialogue_annotation = pa.struct(
    [
        ("annotator", _str),
        ("rating", pa.int64()),
        ("opening_satisfaction", pa.int64()),
        ("explanation", _str),
    ]
)
_turn = pa.struct(
    [
        ("turn_id", _str),
        ("user_text", _str),
        ("system_text", _str),
        ("domain", _str),
        ("logged_intent", _str),
        ("dialogue_status", _str),
        ("user_tokens", pa.int64()),
        ("system_tokens", pa.int64()),
        ("asr_confidence", pa.float64()),
        ("nlu_confidence", pa.float64()),
        ("audio_path", _str),
        ("barge_in", pa.bool_()),
        ("rephrase", pa.bool_()),
        ("rejection", pa.bool_()),
        ("explicit_feedback", pa.bool_()),
        ("intent", _str),
        ("slots", pa.list_(_slot)),
        ("goal_id", _str),
        ("user_acts", pa.list_(_str)),
        ("system_acts", pa.list_(_str)),
        ("satisfaction", pa.int64()),
        ("annotations", pa.list_(_turn_annotation)),
    ]
)

DIALOGUE_SCHEMA = pa.schema(
    [
        ("dialogue_id", _str),
        ("turns", pa.list_(_turn)),
        ("system_opening", _str),
        ("goals", pa.list_(_goal)),
        ("rating", pa.int64()),
        ("annotations", pa.list_(_dialogue_annotation)),
    ]
)


def dialogue_features() -> datasets.Features:
    """The same schema as `datasets.Features`, for `load_dataset(..., features=...)`."""
    import datasets

    return datasets.Features.from_arrow_schema(DIALOGUE_SCHEMA)


def load_log_dataset(
    path: str | Path, *, streaming: bool = False, cache_dir: str | Path | None = None
) -> datasets.Dataset | datasets.IterableDataset:
    """A canonical log (Parquet or JSONL, as `labelgen convert` writes it) as a `datasets` split.

    Without `streaming` the log becomes a memory-mapped Arrow dataset; with it, dialogues are
    read lazily. This path trusts the file: run `labelgen convert` first on logs of unknown
    quality, since it is the step that validates and rejects.
    """
    import datasets

    path = Path(path)
    builder = "parquet" if path.suffix == ".parquet" else "json"
    return datasets.load_dataset(
        builder,
        data_files=str(path),
        split="train",
        features=dialogue_features(),
        streaming=streaming,
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
