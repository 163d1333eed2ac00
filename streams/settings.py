"""Settings of the Kafka drivers: one frozen object, read from the environment in one place.

``Settings.from_env()`` reads ``POLICYLOOP_<FIELD>`` for every field below (an empty variable
counts as unset) and validates the lot; an invalid value raises ``SettingsError`` naming the
variable. Nothing else in policyloop reads the environment.

| variable (``POLICYLOOP_`` +) | default | meaning |
|---|---|---|
| BOOTSTRAP_SERVERS | ``127.0.0.1:9092`` | comma-separated ``host:port`` list |
| TOPIC_PREFIX | ``""`` | put in front of every topic name (``topic()``) |
| CONSUMER_GROUP | ``policyloop`` | the worker's consumer group |
| CLIENT_ID | ``policyloop`` | Kafka client id |
| SECURITY_PROTOCOL | ``PLAINTEXT`` | PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL |
| SASL_MECHANISM | ``PLAIN`` | PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 |
| SASL_USERNAME, SASL_PASSWORD | unset | required with SASL_*; the password is a SecretStr |
| SSL_CAFILE, SSL_CERTFILE, SSL_KEYFILE | unset | PEM files for SSL / SASL_SSL |
| SSL_KEY_PASSWORD | unset | SecretStr: password of SSL_KEYFILE |
| METRICS_HOST, METRICS_PORT | ``127.0.0.1``, ``9108`` | where the worker serves /metrics |
| DATA_DIR | ``.policyloop-data`` | local state of the worker |
| INPUT_PARTITIONS | ``4`` | partitions of every input topic (``topics create``) |
| OUTPUT_PARTITIONS | = INPUT_PARTITIONS | partitions of the output topics but policy_updates (1) |
| REPLICATION_FACTOR | ``1`` | replication factor of created topics |
| COMPRESSION_TYPE | ``none`` | producer compression: none, gzip, snappy, lz4, zstd (the last |
|  |  | three need their Python package) |
| LINGER_MS | ``5`` | producer linger (batching delay) in milliseconds |

Secrets are ``SecretStr``: ``repr``, ``str``, ``masked()`` and logs show ``**********``;
only ``aiokafka_common()`` hands the clear value to the Kafka client.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

ENV_PREFIX = "POLICYLOOP_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
CompressionType = Literal["none", "gzip", "snappy", "lz4", "zstd"]
NonEmpty = Annotated[str, Field(min_length=1, max_length=1024)]
Count = Annotated[int, Field(ge=1, le=10_000)]


class SettingsError(ValueError):
    """An environment variable holds an invalid value (the message names the variable)."""


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    return ENV_PREFIX + field.upper()


class Settings(BaseModel):
    """Everything the Kafka drivers need to know about their deployment (see module docs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: NonEmpty = "127.0.0.1:9092"
    topic_prefix: Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9._-]*$")] = ""
    consumer_group: NonEmpty = "policyloop"
    client_id: NonEmpty = "policyloop"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: NonEmpty | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: NonEmpty | None = None
    ssl_certfile: NonEmpty | None = None
    ssl_keyfile: NonEmpty | None = None
    ssl_key_password: SecretStr | None = None
    metrics_host: NonEmpty = "127.0.0.1"
    metrics_port: Annotated[int, Field(ge=1, le=65535)] = 9108
    data_dir: Path = Path(".policyloop-data")
    input_partitions: Count = 4
    output_partitions: Count | None = None
    replication_factor: Annotated[int, Field(ge=1, le=32)] = 1
    compression_type: CompressionType = "none"
    linger_ms: Annotated[int, Field(ge=0, le=60_000)] = 5
    checkpoint_interval_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    idle_flush_s: Annotated[float, Field(gt=0, le=3600)] = 3.0
    pipeline_batch_records: Annotated[int, Field(ge=1, le=100_000)] = 5000
    # event-time skew between input partitions the worker waits for before releasing; larger
    # only delays outputs (they stay the same), so raise it for bulk loads into live workers
    watermark_lateness_ms: Annotated[int, Field(ge=0)] = 15 * 60 * 1000

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        if self.security_protocol.startswith("SASL_") and (
            self.sasl_username is None or self.sasl_password is None
        ):
            raise ValueError(
                f"{env_name('security_protocol')}={self.security_protocol} needs "
                f"{env_name('sasl_username')} and {env_name('sasl_password')}"
            )
        return self

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); SettingsError when invalid."""
        source = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for field in cls.model_fields:
            value = source.get(env_name(field))
            if value is not None and value.strip() != "":
                raw[field] = value.strip()
        return cls._validated(raw, "environment")

    def with_overrides(self, **overrides: Any) -> Settings:
        """A validated copy with ``overrides`` (None values are ignored), e.g. CLI flags."""
        data: dict[str, Any] = dict(self)
        data.update({name: value for name, value in overrides.items() if value is not None})
        return self._validated(data, "override")

    @classmethod
    def _validated(cls, data: dict[str, Any], origin: str) -> Settings:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SettingsError(_describe(exc, data, origin)) from None

    # -- derived values ----------------------------------------------------------------

    def topic(self, name: str) -> str:
        """The deployed name of contract topic ``name`` (prefix + name)."""
        return self.topic_prefix + name

    def unprefixed(self, deployed: str) -> str | None:
        """The contract name of a deployed topic, or None when it lacks the prefix."""
        prefix = self.topic_prefix
        return deployed[len(prefix) :] if deployed.startswith(prefix) else None

    @property
    def output_partition_count(self) -> int:
        """Partitions of the output topics (OUTPUT_PARTITIONS, else INPUT_PARTITIONS)."""
        return self.output_partitions or self.input_partitions

    def aiokafka_common(self) -> dict[str, Any]:
        """Keyword arguments shared by AIOKafkaConsumer, AIOKafkaProducer and the admin client.

        Holds the clear-text secrets: never log it (log ``masked()``).
        """
        common: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL_"):
            common["sasl_mechanism"] = self.sasl_mechanism
            common["sasl_plain_username"] = self.sasl_username
            password = self.sasl_password
            common["sasl_plain_password"] = password.get_secret_value() if password else None
        if self.security_protocol in ("SSL", "SASL_SSL"):
            common["ssl_context"] = self.ssl_context()
        return common

    def ssl_context(self) -> ssl.SSLContext:
        """The client SSL context (system CAs unless SSL_CAFILE; a client cert if given)."""
        from aiokafka.helpers import create_ssl_context

        key_password = self.ssl_key_password
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.ssl_cafile,
            certfile=self.ssl_certfile,
            keyfile=self.ssl_keyfile,
            password=key_password.get_secret_value() if key_password else None,
        )
        return context

    def masked(self) -> dict[str, Any]:
        """Every setting as JSON-ready data for logs, secrets shown as ``**********``."""
        return self.model_dump(mode="json")


SECRET_FIELDS = frozenset({"sasl_password", "ssl_key_password"})


def _describe(exc: ValidationError, data: Mapping[str, Any], origin: str) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = error["loc"]
        if not loc:
            problems.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        field = str(loc[0])
        shown = "" if field in SECRET_FIELDS else f" (got {str(data.get(field))[:80]!r})"
        problems.append(f"{env_name(field)}: {error['msg']}{shown}")
    return f"invalid policyloop settings ({origin}): " + "; ".join(problems)
