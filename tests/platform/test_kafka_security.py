"""How a service reaches Kafka: the client options each security protocol gives, the refusals
(a SASL protocol without a login; production without a chosen protocol), the password kept out
of every rendering of the settings, and the options of the default settings working against the
test broker (deploy/README.md "Kafka authentication and ACLs")."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydantic
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from canbao_platform import recovery
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import ConsumerRunner, Producer
from canbao_platform.settings import KafkaSettings, service_settings
from tests.platform.conftest import FAST, Recorder, effects, event, wait_until

PASSWORD = "scram-secret-7f3a"
LOGIN = {"KAFKA_SASL_USERNAME": "identity", "KAFKA_SASL_PASSWORD": PASSWORD}


def cluster_ca(directory: Path) -> Path:
    """A self-signed CA certificate, as Strimzi's `canbao-cluster-ca-cert` holds one."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster-ca test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "ca.crt"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def test_plaintext_gives_only_the_protocol() -> None:
    settings = KafkaSettings(CANBAO_ENV="test")
    assert settings.kafka_client_options() == {"security_protocol": "PLAINTEXT"}


def test_ssl_verifies_the_brokers_against_the_cluster_ca(tmp_path: Path) -> None:
    ca = cluster_ca(tmp_path)
    settings = KafkaSettings(
        CANBAO_ENV="production", KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(ca)
    )
    options = settings.kafka_client_options()
    assert set(options) == {"security_protocol", "ssl_context"}
    assert options["security_protocol"] == "SSL"
    context: ssl.SSLContext = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [dict(item[0] for item in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "cluster-ca test"} in subjects


def test_sasl_ssl_logs_in_with_scram_sha_512_by_default(tmp_path: Path) -> None:
    settings = KafkaSettings(
        CANBAO_ENV="production",
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SSL_CAFILE=str(cluster_ca(tmp_path)),
        **LOGIN,
    )
    options = settings.kafka_client_options()
    assert isinstance(options.pop("ssl_context"), ssl.SSLContext)
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "identity",
        "sasl_plain_password": PASSWORD,
    }


@pytest.mark.parametrize(
    "login",
    [{}, {"KAFKA_SASL_USERNAME": "identity"}, {"KAFKA_SASL_PASSWORD": PASSWORD}],
)
def test_sasl_without_a_login_refuses_to_start(login: dict[str, str]) -> None:
    with pytest.raises(
        pydantic.ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD must be set"
    ):
        KafkaSettings(CANBAO_ENV="test", KAFKA_SECURITY_PROTOCOL="SASL_SSL", **login)


def test_production_refuses_a_kafka_connection_nobody_chose() -> None:
    with pytest.raises(pydantic.ValidationError, match="KAFKA_SECURITY_PROTOCOL must be set"):
        KafkaSettings(CANBAO_ENV="production")
    chosen = KafkaSettings(CANBAO_ENV="production", KAFKA_SECURITY_PROTOCOL="PLAINTEXT")
    assert chosen.kafka_client_options() == {"security_protocol": "PLAINTEXT"}


def test_the_password_never_shows_in_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    for name, value in LOGIN.items():
        monkeypatch.setenv(name, value)
    settings = service_settings("matching")()
    assert settings.kafka_client_options()["sasl_plain_password"] == PASSWORD  # it was read
    for rendering in (repr(settings), str(settings), settings.model_dump_json()):
        assert PASSWORD not in rendering
    assert PASSWORD not in str(settings.model_dump())


async def test_the_default_options_work_against_the_test_broker(
    kafka: MockKafkaCluster, database: Database, make_topic: Callable[..., str]
) -> None:
    options = KafkaSettings(CANBAO_ENV="test").kafka_client_options()
    topic = make_topic()
    async with Producer(kafka.bootstrap_servers, **options) as producer:
        await producer.send_many([event(topic, "a"), event(topic, "b")])
        runner = ConsumerRunner(
            name=f"tests.kafka-security.{topic}",
            topics=[topic],
            handler=Recorder(),
            database=database,
            producer=producer,
            bootstrap_servers=kafka.bootstrap_servers,
            service="tests",
            dead_letter_topic="deadletter.tests",
            config=FAST,
            client_options=options,
        )
        await runner.start()
        try:
            await wait_until(lambda: runner.counts.processed == 2)
        finally:
            await runner.stop()
    assert sum((await effects(database)).values()) == 2


def test_the_rewind_tool_reads_the_same_kafka_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in a service's pod, `canbao_platform.recovery` logs in as that service; in production
    it refuses, as the service does, a Kafka connection nobody chose."""
    monkeypatch.setenv("CANBAO_ENV", "production")
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL", raising=False)
    argv = ["rewind", "--service", "gateway", "--to", "2026-12-02T09:30:00+08:00"]
    with pytest.raises(pydantic.ValidationError, match="KAFKA_SECURITY_PROTOCOL must be set"):
        recovery.main(argv)
