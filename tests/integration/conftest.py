"""Integration fixtures: the real local Apache Kafka broker (``make kafka-up``), never mocked.

``kafka_settings`` (session): Settings from the environment (default 127.0.0.1:9092) after
checking that the broker answers; the tests FAIL, never skip, when it does not.
``topic_prefix`` (function): a unique ``test-<uuid>-`` prefix; every topic under it is
deleted after the test (other developers share the broker: only our own topics go), unless
POLICYLOOP_TEST_KEEP_TOPICS=1 (to inspect what a failed test left in them).
``kafka`` (function): ``kafka_settings`` with that prefix.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.settings import Settings

PROBE_TIMEOUT_S = 15.0


async def _probe(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**settings.aiokafka_common(), request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), PROBE_TIMEOUT_S)
        await asyncio.wait_for(admin.list_topics(), PROBE_TIMEOUT_S)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def kafka_settings() -> Settings:
    """Settings of the test broker, which must answer (else the session's tests fail)."""
    settings = Settings.from_env()
    try:
        asyncio.run(_probe(settings))
    except Exception as exc:
        pytest.fail(
            f"no Kafka broker answers on {settings.bootstrap_servers} "
            f"({type(exc).__name__}: {exc}); start it with `make kafka-up` "
            "(bash deploy/kafka.sh up)",
            pytrace=False,
        )
    return settings


async def delete_prefixed_topics(settings: Settings, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix`` (a unique test prefix)."""
    assert prefix.startswith("test-") and len(prefix) > 20, "only unique test prefixes"
    admin = AIOKafkaAdminClient(**settings.aiokafka_common())
    await admin.start()
    try:
        doomed = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
    return doomed


@pytest.fixture
async def topic_prefix(kafka_settings: Settings) -> AsyncIterator[str]:
    """A unique topic prefix for one test; its topics are deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex}-"
    yield prefix
    if os.environ.get("POLICYLOOP_TEST_KEEP_TOPICS") != "1":  # kept: to inspect a failure
        await delete_prefixed_topics(kafka_settings, prefix)


@pytest.fixture
def kafka(kafka_settings: Settings, topic_prefix: str) -> Settings:
    """The test broker's settings with this test's unique topic prefix."""
    return kafka_settings.with_overrides(topic_prefix=topic_prefix)
