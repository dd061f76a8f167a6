"""Kafka authentication and ACLs on Kubernetes (deploy/README.md "Kafka authentication and
ACLs"), read from the generated KafkaUsers: each registry topic has exactly its owner as writer,
every Deployment logs in as a Kafka user that exists, over TLS with the cluster CA, and every
consumer group a service runs may read its topics."""

from __future__ import annotations

from typing import Any

import pytest

from canbao_contracts.topics import (
    CDC_TOPICS,
    COLLECTIONS,
    DEAD_LETTER_TOPICS,
    FACTS,
    FEEDBACK,
    FEEDBACK_REPLIES,
    FEEDBACK_SYSTEMS,
    PERSONS,
    STATUSES,
)
from canbao_platform.migrate import service_definition
from tests.deploy.manifests import (
    BASE,
    DEPLOY,
    DEPLOYMENTS,
    SERVICES,
    Manifest,
    container_env,
    find,
    manifests,
    of_kind,
)

CA_SECRET = "canbao-cluster-ca-cert"  # Strimzi's: the cluster CA certificate, key ca.crt


def kafka_users() -> dict[str, Manifest]:
    return {user["metadata"]["name"]: user for user in of_kind(manifests(BASE), "KafkaUser")}


def allowed(user: Manifest, operation: str, kind: str, name: str) -> bool:
    """Whether the user's ACLs allow `operation` on the resource `kind` `name` (Kafka's simple
    authorizer: a literal name, or a prefix of it)."""
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        if resource["type"] != kind or operation not in acl["operations"]:
            continue
        if kind == "cluster":  # one cluster, no name
            return True
        pattern = resource.get("patternType", "literal")
        if (pattern == "literal" and resource["name"] in (name, "*")) or (
            pattern == "prefix" and name.startswith(resource["name"])
        ):
            return True
    return False


def writers(topic: str) -> set[str]:
    return {name for name, user in kafka_users().items() if allowed(user, "Write", "topic", topic)}


@pytest.mark.parametrize(
    ("topic", "owner"),
    [
        (PERSONS.name, "identity"),
        (FACTS.name, "identity"),
        (STATUSES.name, "matching"),
        (COLLECTIONS.name, "survey"),
        *((topic.name, "connect") for topic in CDC_TOPICS),
    ],
)
def test_each_registry_and_change_feed_topic_has_exactly_its_owner_as_writer(
    topic: str, owner: str
) -> None:
    assert writers(topic) == {owner}


@pytest.mark.parametrize("system", FEEDBACK_SYSTEMS)
def test_identity_writes_a_systems_feedback_and_only_that_system_answers_and_reads_it(
    system: str,
) -> None:
    """44号 Art.22: the request goes to the system that owns the item; its answer comes from it."""
    user = kafka_users()[f"feedback-{system.replace('_', '-')}"]
    assert writers(FEEDBACK[system].name) == {"identity"}
    assert writers(FEEDBACK_REPLIES[system].name) == {f"feedback-{system.replace('_', '-')}"}
    assert allowed(user, "Read", "topic", FEEDBACK[system].name)
    assert allowed(kafka_users()["identity"], "Read", "topic", FEEDBACK_REPLIES[system].name)
    others = [s for s in FEEDBACK_SYSTEMS if s != system]
    assert not any(allowed(user, "Read", "topic", FEEDBACK[s].name) for s in others)
    assert allowed(user, "Read", "group", f"feedback-{system.replace('_', '-')}.replies")
    assert not allowed(user, "Read", "group", "identity")


@pytest.mark.parametrize("topic", [t.name for t in DEAD_LETTER_TOPICS])
def test_a_dead_letter_topic_is_written_only_by_its_service(topic: str) -> None:
    service = topic.removeprefix("deadletter.")
    assert writers(topic) == ({service} if service in kafka_users() else set())


def test_every_user_logs_in_with_scram_under_simple_authorization() -> None:
    (kafka,) = of_kind(manifests(DEPLOY / "k8s" / "kafka"), "Kafka")
    spec = kafka["spec"]
    assert spec["kafka"]["authorization"]["type"] == "simple"
    assert "superUsers" not in spec["kafka"]["authorization"]
    assert "userOperator" in spec["entityOperator"]
    # One listener, TLS and SCRAM: nothing reaches the brokers without a login.
    (listener,) = spec["kafka"]["listeners"]
    assert listener["tls"] is True
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert set(kafka_users()) == {
        "connect",
        "identity",
        "matching",
        "survey",
        "reporting",
        "gateway",
    } | {f"feedback-{system}" for system in ("si-core", "medical", "card", "employment")}
    for user in kafka_users().values():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["spec"]["authorization"]["type"] == "simple"
        # The producers are idempotent (canbao_platform.messaging.producer).
        assert allowed(user, "IdempotentWrite", "cluster", "")


def kafka_login(deployment: Manifest) -> tuple[dict[str, str], dict[str, Any], list[Manifest]]:
    """The main container's literal env, its KAFKA_SASL_PASSWORD reference and the pod's
    volumes."""
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    (password,) = [e for e in container["env"] if e["name"] == "KAFKA_SASL_PASSWORD"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = [v for v in spec["volumes"] if v["name"] in mounts]
    env = container_env(container) | {f"mount:{v['name']}": mounts[v["name"]] for v in volumes}
    return env, password["valueFrom"]["secretKeyRef"], volumes


@pytest.mark.parametrize(("name", "service"), DEPLOYMENTS.items(), ids=list(DEPLOYMENTS))
def test_every_deployment_that_talks_to_kafka_logs_in_as_its_services_user(
    name: str, service: str
) -> None:
    deployment = find(manifests(BASE), "Deployment", name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = container_env(container)
    if env.get("GATEWAY_DCI_NOTIFICATIONS") == "false" or env.get("IDENTITY_ROLES") == "build":
        # The gateway's HTTP Deployment (gateway-notify has the consumer) and identity's builders
        # (the `identity` pods relay their outbox): no Kafka client, so no Kafka login.
        assert not any(e["name"].startswith("KAFKA_") for e in container.get("env", []))
        return
    env, password, volumes = kafka_login(deployment)
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_USERNAME"] == service
    # The Secret Strimzi's User Operator makes for the KafkaUser: its name, key `password`.
    assert password == {"name": service, "key": "password"}
    (ca,) = [v for v in volumes if v.get("secret", {}).get("secretName") == CA_SECRET]
    assert env["KAFKA_SSL_CAFILE"] == f"{env['mount:' + ca['name']]}/ca.crt"
    assert {"key": "ca.crt", "path": "ca.crt"} in ca["secret"]["items"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_consumer_group_of_a_service_may_read_its_topics(service: str) -> None:
    groups = service_definition(service).consumer_groups
    if not groups:
        return
    user = kafka_users()[service]
    for group, topics in groups.items():
        assert allowed(user, "Read", "group", group), group
        for topic in topics:
            assert allowed(user, "Read", "topic", topic), f"{group} cannot read {topic}"


def test_connect_logs_in_as_its_user_over_tls() -> None:
    (connect,) = of_kind(manifests(BASE), "KafkaConnect")
    spec = connect["spec"]
    assert spec["authentication"] == {
        "type": "scram-sha-512",
        "username": "connect",
        "passwordSecret": {"secretName": "connect", "password": "password"},
    }
    assert spec["tls"]["trustedCertificates"] == [{"secretName": CA_SECRET, "pattern": "*.crt"}]
    user = kafka_users()["connect"]
    group = spec["config"]["group.id"]
    assert allowed(user, "Read", "group", group)
    for storage in ("config", "offset", "status"):
        topic = spec["config"][f"{storage}.storage.topic"]
        assert allowed(user, "Read", "topic", topic) and allowed(user, "Write", "topic", topic)


def test_compose_chooses_plaintext_explicitly() -> None:
    """Production refuses a Kafka connection nobody chose (canbao_platform.settings)."""
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    assert "\n  KAFKA_SECURITY_PROTOCOL: PLAINTEXT\n" in text
