"""Creating the contract's topics (``policyloop topics create``; the worker at start).

Every input and output topic of models/topics.py, prefixed by ``settings.topic_prefix``:
inputs with ``settings.input_partitions``, outputs with ``settings.output_partition_count``
except ``policy_updates`` (one partition: its latest record is *the* last-good policy, so it
needs a total order). ``policy_updates`` and ``performance`` are compacted, every other topic
uses delete retention. Idempotent: a topic that already exists is left as it is (partitions
and configs are not altered) and reported as existing. The worker passes its own internal
topics (changelogs, ...) as ``extra_topics``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from models.topics import INPUT_TOPICS, OUTPUT_TOPICS, POLICY_UPDATES
from streams.settings import Settings

TOPIC_ALREADY_EXISTS = 36
CREATE_TIMEOUT_MS = 30_000


class TopicCreationError(RuntimeError):
    """The broker refused to create a topic (other than because it exists)."""


@dataclass(frozen=True)
class NewTopicSpec:
    """A topic to create: deployed name (already prefixed), partitions and topic configs."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


def cleanup_config(compacted: bool) -> dict[str, str]:
    """The topic configs of a compacted or a delete-retention topic."""
    return {"cleanup.policy": "compact" if compacted else "delete"}


RECORD_OVERHEAD_BYTES = 4096
"""Room for Kafka's record-batch header and record framing around one key and value."""


def input_message_limit(settings: Settings) -> int:
    """``max.message.bytes`` of the input topics: one record of ``max_record_bytes``."""
    return settings.max_record_bytes + RECORD_OVERHEAD_BYTES


def contract_topics(settings: Settings, partitions: int | None = None) -> list[NewTopicSpec]:
    """Every contract topic, prefixed; ``partitions`` overrides both input and output counts
    (``policy_updates`` keeps one partition)."""
    inputs = partitions or settings.input_partitions
    outputs = partitions or settings.output_partition_count
    input_limit = {"max.message.bytes": str(input_message_limit(settings))}
    specs = [
        NewTopicSpec(
            settings.topic(name), inputs, {**cleanup_config(spec.compacted), **input_limit}
        )
        for name, spec in INPUT_TOPICS.items()
    ]
    for name, spec in OUTPUT_TOPICS.items():
        count = 1 if name == POLICY_UPDATES else outputs
        specs.append(NewTopicSpec(settings.topic(name), count, cleanup_config(spec.compacted)))
    return specs


async def create_topics(
    settings: Settings,
    partitions: int | None = None,
    extra_topics: Sequence[NewTopicSpec] = (),
) -> list[str]:
    """Create the contract topics plus ``extra_topics`` that do not exist yet.

    Returns the names created by this call (existing ones are fine and not listed); raises
    TopicCreationError for any other broker error, naming the topic.
    """
    specs = [*contract_topics(settings, partitions), *extra_topics]
    admin = AIOKafkaAdminClient(**settings.aiokafka_common())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [spec for spec in specs if spec.name not in existing]
        if not wanted:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    spec.partitions,
                    settings.replication_factor,
                    topic_configs=dict(spec.config),
                )
                for spec in wanted
            ],
            timeout_ms=CREATE_TIMEOUT_MS,
        )
        created, failures = [], []
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            message = entry[2] if len(entry) > 2 else None
            if code == 0:
                created.append(name)
            elif code != TOPIC_ALREADY_EXISTS:  # created concurrently by someone else: fine
                failures.append(f"{name}: error {code} {message or ''}".rstrip())
        if failures:
            raise TopicCreationError("could not create topics: " + "; ".join(failures))
    finally:
        await admin.close()
    await _wait_until_led(settings, [spec for spec in wanted if spec.name in created])
    order = {spec.name: i for i, spec in enumerate(specs)}
    return sorted(created, key=order.__getitem__)


async def _wait_until_led(settings: Settings, specs: Sequence[NewTopicSpec]) -> None:
    """Return once the leader of every partition of ``specs`` answers a ListOffsets request.

    Metadata shows a new partition's leader a moment before that broker serves it; without
    this the first produce starts with NotLeaderForPartition retries (and warnings).
    """
    if not specs:
        # also: stopping a group-less consumer right after start, with no I/O in between,
        # raises CancelledError (aiokafka 0.14 cancels a coordinator task never started)
        return
    consumer = AIOKafkaConsumer(**settings.aiokafka_common(), group_id=None)
    await consumer.start()
    try:
        await consumer.end_offsets(
            [TopicPartition(spec.name, p) for spec in specs for p in range(spec.partitions)]
        )
    finally:
        await consumer.stop()


async def topic_partitions(settings: Settings, names: Sequence[str]) -> dict[str, list[int]]:
    """The partition ids of those of the deployed topic ``names`` that exist.

    Lists every topic first: a metadata request naming a missing topic could auto-create it
    (``auto.create.topics.enable``) with the broker's default partitions.
    """
    admin = AIOKafkaAdminClient(**settings.aiokafka_common())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [name for name in names if name in existing]
        described = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    return {
        entry["topic"]: sorted(p["partition"] for p in entry["partitions"])
        for entry in described
        if entry["topic"] in existing
    }
