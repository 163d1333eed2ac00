"""Generated JSON Schemas and the AsyncAPI 3 document of the topic contract.

``policyloop schemas export`` writes schemas/<Model>.schema.json for every payload and
PolicyConfig, plus schemas/asyncapi.json naming every topic with its key and payload;
``--check`` compares instead of writing and fails when anything is stale. Never edit schemas/
by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from models.policy import PolicyConfig
from models.topics import INPUT_TOPICS, OUTPUT_TOPICS, TopicSpec

CONTRACT_VERSION = "1.0.0"


def _dump(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def _schema(model: type[BaseModel], mode: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode=mode)  # type: ignore[arg-type]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"policyloop/{model.__name__}.schema.json"
    return schema


def _asyncapi(specs: dict[str, tuple[TopicSpec, str]]) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for name, (spec, direction) in sorted(specs.items()):
        model_name = spec.model.__name__
        messages[model_name] = {
            "name": model_name,
            "contentType": "application/json",
            "payload": {"$ref": f"./{model_name}.schema.json"},
            "bindings": {"kafka": {"key": {"type": "string", "description": spec.key_doc}}},
        }
        channels[name] = {
            "address": name,
            "description": (spec.model.__doc__ or "").strip().splitlines()[0],
            "messages": {model_name: {"$ref": f"#/components/messages/{model_name}"}},
            "bindings": {
                "kafka": {
                    "topic": name,
                    "topicConfiguration": {
                        "cleanup.policy": ["compact"] if spec.compacted else ["delete"]
                    },
                }
            },
        }
        operations[f"{'consume' if direction == 'receive' else 'publish'}_{name}"] = {
            "action": direction,
            "channel": {"$ref": f"#/channels/{name}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "policyloop topic contract",
            "version": CONTRACT_VERSION,
            "description": "Inputs policyloop consumes and outputs it produces. Topic names "
            "are the defaults; a deployment may prefix them.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def generated_files() -> dict[str, bytes]:
    """Every generated file name and its exact bytes."""
    files: dict[str, bytes] = {}
    for input_spec in INPUT_TOPICS.values():
        name = f"{input_spec.model.__name__}.schema.json"
        files[name] = _dump(_schema(input_spec.model, "validation"))
    for output_spec in OUTPUT_TOPICS.values():
        name = f"{output_spec.model.__name__}.schema.json"
        files[name] = _dump(_schema(output_spec.model, "serialization"))
    files["PolicyConfig.schema.json"] = _dump(_schema(PolicyConfig, "validation"))
    directions: dict[str, tuple[TopicSpec, str]] = {
        name: (spec, "receive") for name, spec in INPUT_TOPICS.items()
    }
    directions.update({name: (spec, "send") for name, spec in OUTPUT_TOPICS.items()})
    files["asyncapi.json"] = _dump(_asyncapi(directions))
    return files


def export(directory: Path, check: bool = False) -> list[str]:
    """Write (or with ``check`` compare) the schemas; return the names that were stale."""
    stale: list[str] = []
    files = generated_files()
    for name, content in sorted(files.items()):
        path = directory / name
        if not path.exists() or path.read_bytes() != content:
            stale.append(name)
            if not check:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
    if directory.exists():
        for path in sorted(directory.glob("*.json")):
            if path.name not in files:
                stale.append(path.name)
                if not check:
                    path.unlink()
    return stale
