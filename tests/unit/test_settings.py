"""streams/settings.py: defaults, environment overrides, clear errors, masked secrets."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from streams.settings import Settings, SettingsError, default_data_dir, settings_help

SECRET = "hunter2-very-secret"
KEY_SECRET = "key-pass-also-secret"
SASL_ENV = {
    "POLICYLOOP_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "POLICYLOOP_SASL_MECHANISM": "SCRAM-SHA-512",
    "POLICYLOOP_SASL_USERNAME": "svc-policyloop",
    "POLICYLOOP_SASL_PASSWORD": SECRET,
    "POLICYLOOP_SSL_KEY_PASSWORD": KEY_SECRET,
}


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.topic_prefix == ""
    assert settings.consumer_group == "policyloop"
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.metrics_host == "127.0.0.1"
    assert settings.metrics_port == 9108
    assert settings.data_dir == default_data_dir()
    assert settings.input_partitions == 4
    assert settings.output_partition_count == 4
    assert settings.replication_factor == 1
    assert settings.sasl_password is None
    assert settings == Settings()


def test_environment_overrides_and_ignores_unrelated_or_empty_variables() -> None:
    settings = Settings.from_env(
        {
            "POLICYLOOP_BOOTSTRAP_SERVERS": "kafka-1:9093,kafka-2:9093",
            "POLICYLOOP_TOPIC_PREFIX": "prod.",
            "POLICYLOOP_CONSUMER_GROUP": "pl-prod",
            "POLICYLOOP_CLIENT_ID": "pl-7",
            "POLICYLOOP_METRICS_PORT": " 9200 ",
            "POLICYLOOP_INPUT_PARTITIONS": "12",
            "POLICYLOOP_OUTPUT_PARTITIONS": "6",
            "POLICYLOOP_REPLICATION_FACTOR": "3",
            "POLICYLOOP_DATA_DIR": "/var/lib/policyloop",
            "POLICYLOOP_SASL_USERNAME": "",
            "BOOTSTRAP_SERVERS": "ignored:1",
        }
    )
    assert settings.bootstrap_servers == "kafka-1:9093,kafka-2:9093"
    assert settings.topic("bar_decisions") == "prod.bar_decisions"
    assert settings.unprefixed("prod.alerts") == "alerts"
    assert settings.unprefixed("other.alerts") is None
    assert (settings.consumer_group, settings.client_id) == ("pl-prod", "pl-7")
    assert settings.metrics_port == 9200
    assert (settings.input_partitions, settings.output_partition_count) == (12, 6)
    assert settings.replication_factor == 3
    assert settings.data_dir == Path("/var/lib/policyloop")
    assert settings.sasl_username is None


def test_a_value_is_stripped_and_blank_counts_as_unset() -> None:
    settings = Settings.from_env(
        {"POLICYLOOP_CONSUMER_GROUP": "  pl  ", "POLICYLOOP_TOPIC_PREFIX": "   "}
    )
    assert (settings.consumer_group, settings.topic_prefix) == ("pl", "")


def test_unknown_policyloop_variables_are_left_alone() -> None:
    """Tools and tests have variables of their own under the prefix."""
    assert Settings.from_env({"POLICYLOOP_TEST_KEEP_TOPICS": "1"}) == Settings()


def test_only_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("POLICYLOOP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("POLICYLOOP_TOPIC_PREFIX", "from-env.")
    monkeypatch.setenv("POLICYLOOP_IDLE_FLUSH_S", "7")
    assert Settings().topic_prefix == ""
    assert (Settings.from_env().topic_prefix, Settings.from_env().idle_flush_s) == ("from-env.", 7)


def test_data_dir_defaults_to_the_xdg_state_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert Settings.from_env({}).data_dir == tmp_path / "policyloop"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # invalid by the spec: ignored
    assert Settings.from_env({}).data_dir == Path.home() / ".local/state/policyloop"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert Settings().data_dir == Path.home() / ".local/state/policyloop"
    assert Settings.from_env({"POLICYLOOP_DATA_DIR": "here"}).data_dir == Path("here")


def test_every_setting_is_described_in_the_help() -> None:
    text = settings_help()
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert f"POLICYLOOP_{name.upper()} (default: " in text
    assert "POLICYLOOP_METRICS_PORT (default: 9108)" in text


def test_settings_are_frozen_and_overrides_are_validated() -> None:
    settings = Settings.from_env({})
    with pytest.raises(ValueError, match="frozen"):
        settings.topic_prefix = "x"  # type: ignore[misc]
    changed = settings.with_overrides(topic_prefix="t-1-", bootstrap_servers=None)
    assert (changed.topic_prefix, changed.bootstrap_servers) == ("t-1-", "127.0.0.1:9092")
    with pytest.raises(SettingsError, match="POLICYLOOP_TOPIC_PREFIX"):
        settings.with_overrides(topic_prefix="has space")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POLICYLOOP_METRICS_PORT", "abc"),
        ("POLICYLOOP_METRICS_PORT", "70000"),
        ("POLICYLOOP_INPUT_PARTITIONS", "0"),
        ("POLICYLOOP_REPLICATION_FACTOR", "-1"),
        ("POLICYLOOP_SECURITY_PROTOCOL", "TLS"),
        ("POLICYLOOP_SASL_MECHANISM", "GSSAPI"),
        ("POLICYLOOP_COMPRESSION_TYPE", "brotli"),
        ("POLICYLOOP_LINGER_MS", "soon"),
    ],
)
def test_an_invalid_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value)
    assert repr(value) in str(caught.value)


def test_sasl_needs_username_and_password() -> None:
    with pytest.raises(SettingsError, match="POLICYLOOP_SASL_PASSWORD"):
        Settings.from_env(
            {"POLICYLOOP_SECURITY_PROTOCOL": "SASL_SSL", "POLICYLOOP_SASL_USERNAME": "u"}
        )


def test_secrets_never_show_in_repr_str_masked_or_errors() -> None:
    settings = Settings.from_env(SASL_ENV)
    for text in (repr(settings), str(settings), str(settings.masked())):
        assert SECRET not in text
        assert KEY_SECRET not in text
    masked = settings.masked()
    assert masked["sasl_password"] == "**********"
    assert masked["ssl_key_password"] == "**********"
    assert masked["sasl_username"] == "svc-policyloop"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**SASL_ENV, "POLICYLOOP_METRICS_PORT": "x"})
    assert SECRET not in str(caught.value)


def test_aiokafka_common_plaintext_and_sasl() -> None:
    plain = Settings.from_env({"POLICYLOOP_CLIENT_ID": "c1"}).aiokafka_common()
    assert plain == {
        "bootstrap_servers": "127.0.0.1:9092",
        "client_id": "c1",
        "security_protocol": "PLAINTEXT",
    }
    sasl = Settings.from_env(SASL_ENV).aiokafka_common()
    assert sasl["security_protocol"] == "SASL_PLAINTEXT"
    assert sasl["sasl_mechanism"] == "SCRAM-SHA-512"
    assert sasl["sasl_plain_username"] == "svc-policyloop"
    assert sasl["sasl_plain_password"] == SECRET
    assert "ssl_context" not in sasl


def test_aiokafka_common_ssl_builds_a_context() -> None:
    common = Settings.from_env({"POLICYLOOP_SECURITY_PROTOCOL": "SSL"}).aiokafka_common()
    assert isinstance(common["ssl_context"], ssl.SSLContext)
    assert common["ssl_context"].check_hostname
