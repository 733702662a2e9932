from __future__ import annotations

import typing

import pyarrow as pa
from pydantic import BaseModel

from labelgen.data import schema
from labelgen.data.arrow import DIALOGUE_SCHEMA, dialogue_features, load_log_dataset
from labelgen.data.canonical import CanonicalWriter
from labelgen.data.schema import Dialogue
from tests.conftest import full_dialogue


def _nested_model(annotation) -> type[BaseModel] | None:
    for arg in typing.get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        inner = _nested_model(arg) if typing.get_args(arg) else None
        if inner is not None:
            return inner
    return None


def _assert_same_fields(model: type[BaseModel], arrow_type: pa.DataType, where: str) -> None:
    if pa.types.is_list(arrow_type):
        arrow_type = arrow_type.value_type
    names = [arrow_type.field(i).name for i in range(arrow_type.num_fields)]
    assert names == list(model.model_fields), where
    for name, info in model.model_fields.items():
        inner = _nested_model(info.annotation)
        if inner is not None:
            _assert_same_fields(inner, arrow_type.field(name).type, f"{where}.{name}")


def test_arrow_schema_matches_the_pydantic_contract():
    _assert_same_fields(schema.Dialogue, pa.struct(list(DIALOGUE_SCHEMA)), "Dialogue")


def test_datasets_features_describe_the_same_schema():
    features = dialogue_features()
    assert features.arrow_schema.names == DIALOGUE_SCHEMA.names
    assert features.arrow_schema.field("turns").type == DIALOGUE_SCHEMA.field("turns").type


def test_log_loads_as_arrow_dataset_and_streams(tmp_path):
    dialogues = [Dialogue.model_validate(full_dialogue(f"d{i}")) for i in range(4)]
    expected = [d.model_dump(mode="json") for d in dialogues]
    for name in ("log.parquet", "log.jsonl"):
        path = tmp_path / name
        with CanonicalWriter(path) as writer:
            writer.write_all(dialogues)
        table = load_log_dataset(path, cache_dir=tmp_path / "cache")
        assert table.num_rows == 4
        assert [
            Dialogue.model_validate(_drop_nulls(r)).model_dump(mode="json") for r in table
        ] == expected
        streamed = load_log_dataset(path, streaming=True)
        assert [r["dialogue_id"] for r in streamed] == ["d0", "d1", "d2", "d3"]


def _drop_nulls(value):
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value
