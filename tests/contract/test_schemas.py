"""The generated schemas in schemas/ are in sync with the models."""

from __future__ import annotations

from pathlib import Path

import orjson

from models.topics import INPUT_TOPICS, OUTPUT_TOPICS
from streams.schema_export import export, generated_files

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_committed_schemas_are_current() -> None:
    assert export(SCHEMAS, check=True) == []


def test_every_topic_is_in_asyncapi() -> None:
    doc = orjson.loads(generated_files()["asyncapi.json"])
    assert doc["asyncapi"].startswith("3.")
    assert set(doc["channels"]) == set(INPUT_TOPICS) | set(OUTPUT_TOPICS)
    for name, channel in doc["channels"].items():
        (message_ref,) = channel["messages"].values()
        message = doc["components"]["messages"][message_ref["$ref"].rsplit("/", 1)[1]]
        assert (SCHEMAS / message["payload"]["$ref"].removeprefix("./")).exists(), name
        assert message["bindings"]["kafka"]["key"]["description"]


def test_check_detects_stale(tmp_path: Path) -> None:
    assert export(tmp_path, check=True)  # nothing there yet: all stale
    assert export(tmp_path) != []
    assert export(tmp_path, check=True) == []
    (tmp_path / "Alert.schema.json").write_text("{}")
    assert export(tmp_path, check=True) == ["Alert.schema.json"]
