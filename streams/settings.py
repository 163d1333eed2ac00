"""Settings of the Kafka drivers: one frozen object, read from the environment in one place.

``Settings.from_env()`` reads ``POLICYLOOP_<FIELD>`` for every field of ``Settings`` (the
variable of each field, its default and its meaning: ``settings_help()``, also shown by
``policyloop worker --help``) and validates the lot. Variable names are matched without
regard to case; a value is stripped of surrounding whitespace, and an empty value counts as
unset; an invalid value raises ``SettingsError`` naming the variable. ``POLICYLOOP_*``
variables that name no field are left alone (tests and tools have their own). Nothing else in
policyloop reads the environment: ``Settings(...)`` built directly uses the defaults and the
values given, never the environment, so tests and tools get the same object anywhere.

Secrets are ``SecretStr``: ``repr``, ``str``, ``masked()`` and logs show ``**********``;
only ``aiokafka_common()`` (and the Faust credentials built from it) hands the clear value
to a Kafka client.
"""

from __future__ import annotations

import os
import ssl
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceError

ENV_PREFIX = "POLICYLOOP_"
STATE_DIR_NAME = "policyloop"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
CompressionType = Literal["none", "gzip", "snappy", "lz4", "zstd"]
NonEmpty = Annotated[str, Field(min_length=1, max_length=1024)]
Count = Annotated[int, Field(ge=1, le=10_000)]


class SettingsError(ValueError):
    """A setting holds an invalid value (the message names its environment variable)."""


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    return ENV_PREFIX + field.upper()


def default_data_dir() -> Path:
    """``$XDG_STATE_HOME/policyloop``, else ``~/.local/state/policyloop``.

    The XDG base directory specification's place for state an application keeps across
    restarts; never the working directory, so a worker started from a checkout does not
    write into it. A relative ``XDG_STATE_HOME`` is ignored, as the specification says.
    """
    state_home = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state_home) if Path(state_home).is_absolute() else Path.home() / ".local/state"
    return base / STATE_DIR_NAME


class Settings(BaseSettings):
    """Everything the Kafka drivers need to know about their deployment (see module docs).

    Build it with ``from_env()`` (the deployment's values) or directly (defaults plus the
    values given, for tests and tools); derive variants with ``with_overrides()``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid"
    )

    bootstrap_servers: NonEmpty = Field(
        "127.0.0.1:9092", description="comma-separated host:port list of Kafka brokers"
    )
    topic_prefix: Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9._-]*$")] = Field(
        "", description="put in front of every topic name, e.g. prod. (see topic())"
    )
    consumer_group: NonEmpty = Field(
        "policyloop", description="base of the worker's consumer groups and transactional id"
    )
    client_id: NonEmpty = Field("policyloop", description="Kafka client id")
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: SaslMechanism = Field(
        "PLAIN", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    sasl_username: NonEmpty | None = Field(None, description="SASL user (required with SASL_*)")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (required with SASL_*; secret)"
    )
    ssl_cafile: NonEmpty | None = Field(
        None, description="PEM file of the CAs to trust (default: the system's)"
    )
    ssl_certfile: NonEmpty | None = Field(None, description="PEM client certificate")
    ssl_keyfile: NonEmpty | None = Field(None, description="PEM key of the client certificate")
    ssl_key_password: SecretStr | None = Field(None, description="password of SSL_KEYFILE (secret)")
    metrics_host: NonEmpty = Field(
        "127.0.0.1", description="where the worker serves /metrics (0.0.0.0 in a container)"
    )
    metrics_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        9108, description="port of the worker's /metrics"
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="directory of the worker's local state (Faust's app directory goes "
        "under it); by default $XDG_STATE_HOME/policyloop, else ~/.local/state/policyloop",
    )
    input_partitions: Count = Field(
        4, description="partitions of every input topic (topics create, worker start)"
    )
    output_partitions: Count | None = Field(
        None,
        description="partitions of the output topics but policy_updates, which has one "
        "(default: INPUT_PARTITIONS)",
    )
    replication_factor: Annotated[int, Field(ge=1, le=32)] = Field(
        1, description="replication factor of created topics"
    )
    compression_type: CompressionType = Field(
        "none",
        description="producer compression: none, gzip, snappy, lz4 or zstd (the last three "
        "need their Python package)",
    )
    linger_ms: Annotated[int, Field(ge=0, le=60_000)] = Field(
        5, description="producer linger (batching delay) in milliseconds"
    )
    max_record_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = Field(
        1_000_000,
        description="largest input record (key + value) processed; a larger one is a dead "
        "letter (too_large). Input topics are created with room for it, the worker's "
        "sequenced topic with room for it and its framing",
    )
    checkpoint_interval_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        30.0, description="seconds between checkpoints of the pipeline state"
    )
    idle_timeout_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        5.0,
        description="seconds an input partition must be caught up with nothing new before it "
        "stops holding the watermark back (source idleness); a quiet producer delays outputs "
        "by this much, a slower one gets its records sorted in instead of late",
    )
    idle_flush_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        3.0,
        description="seconds with every input partition idle and nothing new before the "
        "worker releases what it buffers, as replay does at the end of its file",
    )
    lane_partitions: Annotated[int, Field(ge=1, le=256)] = Field(
        4,
        description="partitions of the worker's sequenced log: the strategy lanes are spread "
        "over them (strategy s in partition crc32(s) mod N), and Kafka's group assignment "
        "spreads the partitions over the worker processes (at most N share the lane work); "
        "fixed when the worker first creates its topics",
    )
    pipeline_batch_records: Annotated[int, Field(ge=1, le=100_000)] = Field(
        5000, description="sequenced records per pipeline transaction (at most)"
    )
    watermark_lateness_ms: Annotated[int, Field(ge=0)] = Field(
        15 * 60 * 1000,
        description="event-time skew between input partitions the worker waits for before "
        "releasing; larger only delays outputs (they stay the same), so raise it for bulk "
        "loads into running workers",
    )

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
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: the environment is read by ``from_env()`` alone."""
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); SettingsError when invalid."""
        source = _EnvironSource(cls, os.environ if environ is None else environ)
        try:
            raw = source()
        except SourceError as exc:  # pydantic-settings could not parse a variable
            raise SettingsError(f"invalid policyloop settings (environment): {exc}") from None
        return cls._validated(raw, "environment")

    def with_overrides(self, **overrides: Any) -> Settings:
        """A validated copy with ``overrides`` (None values are ignored), e.g. CLI flags."""
        data: dict[str, Any] = dict(self)
        data.update({name: value for name, value in overrides.items() if value is not None})
        return self._validated(data, "override")

    @classmethod
    def _validated(cls, data: dict[str, Any], origin: str) -> Settings:
        try:
            return cls(**data)
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


def settings_help(width: int = 96) -> str:
    """Every setting's variable, default and description, as text for ``--help``."""
    lines = []
    for name, field in Settings.model_fields.items():
        lines.append(f"  {env_name(name)} (default: {_default_text(field)})")
        lines.extend(
            textwrap.wrap(
                str(field.description), width, initial_indent=" " * 6, subsequent_indent=" " * 6
            )
        )
    return "\n".join(lines)


def _default_text(field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if default is None:
        return "unset"
    return repr(default) if default == "" else str(default)


class _EnvironSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping, values stripped (so a
    value of only spaces counts as empty, and empty as unset)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = {name: value.strip() for name, value in environ.items()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            (name if self.case_sensitive else name.lower()): value
            for name, value in self._environ.items()
            if not (self.env_ignore_empty and value == "")
        }


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
