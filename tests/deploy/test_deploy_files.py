"""deploy/ checked statically: Docker and Kubernetes cannot run here, so these tests read the files
and hold them to the contracts (topics, source tables) and to the house rules (probes, limits,
migrations, no secrets, pinned images)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from ipaddress import ip_network
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from canbao_contracts.topics import ALL_TOPICS, RECEIVES
from canbao_contracts.topics import SERVICES as CONTRACT_SERVICES
from canbao_gateway.settings import GatewaySettings
from canbao_identity.settings import IdentitySettings, Role
from canbao_platform.migrate import database_url, migration_settings, service_definition
from canbao_stack.simulators import TABLES
from tests.deploy.manifests import (
    BASE,
    CONSUMER_GROUPS,
    CONSUMERS,
    CONSUMING_DEPLOYMENT,
    DEPLOY,
    DEPLOYMENTS,
    PRODUCTION,
    ROOT,
    SERVICES,
    UNCALLED,
    committed_files,
    compose_services,
    container_env,
    env_file_values,
    find,
    generator,
    git_ignores,
    kustomization,
    load_yaml_documents,
    manifests,
    of_kind,
    pod_containers,
    selects,
    unescape_table_list,
)

KUSTOMIZE_DIRS = [BASE, PRODUCTION, DEPLOY / "k8s" / "kafka", DEPLOY / "k8s" / "monitoring"]


# --- every file -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json")),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_every_yaml_and_json_file_parses(path: Path) -> None:
    if path.suffix == ".json":
        assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
    else:
        assert load_yaml_documents(path), f"{path} holds no document"


def test_generated_files_equal_a_fresh_generation() -> None:
    for path, content in generator().render_all().items():
        assert path.exists(), f"{path} missing: run `uv run --frozen python deploy/generate.py`"
        assert path.read_text(encoding="utf-8") == content, (
            f"{path.relative_to(DEPLOY)} is stale: run `uv run --frozen python deploy/generate.py`"
        )


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_kustomization_lists_every_file_of_its_folder_and_nothing_missing(directory: Path) -> None:
    k = kustomization(directory)
    listed = [*k.get("resources", []), *(p["path"] for p in k.get("patches", []))]
    listed += k.get("configurations", [])
    for generated in (*k.get("configMapGenerator", []), *k.get("secretGenerator", [])):
        listed += [f"{name}.example" for name in generated.get("envs", [])]
    for entry in listed:
        assert (directory / entry).exists(), f"{directory}: lists {entry}, which does not exist"
    local_files = {entry for entry in listed if "/" not in entry or entry.startswith("secrets/")}
    present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    present |= {f"secrets/{p.name}" for p in (directory / "secrets").glob("*.example")}
    unlisted = present - local_files
    if directory.name == "monitoring":  # Helm values, not a Kubernetes object
        unlisted -= {"prometheus-adapter-values.yaml"}
    assert not unlisted, f"{directory}: files not in kustomization.yaml: {sorted(unlisted)}"


# --- the services on Kubernetes ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "service"), DEPLOYMENTS.items(), ids=list(DEPLOYMENTS))
def test_every_service_has_a_deployment_with_probes_resources_and_a_migration(
    name: str, service: str
) -> None:
    deployment = find(manifests(BASE), "Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["command"][:3] == ["uvicorn", "--factory", f"canbao_{service}.app:create"]
    (migrate,) = pod["initContainers"]
    assert migrate["command"] == ["python", "-m", "canbao_platform.migrate", service]
    assert migrate["image"] == container["image"], "migrations must come from the same release"
    for each in pod_containers(deployment):
        for bound in ("requests", "limits"):
            assert set(each["resources"][bound]) >= {"cpu", "memory"}, f"{each['name']} {bound}"
        assert each["securityContext"]["readOnlyRootFilesystem"] is True
        assert each["securityContext"]["allowPrivilegeEscalation"] is False
        env_from = {
            ref.get("secretRef", ref.get("configMapRef"))["name"] for ref in each["envFrom"]
        }
        assert {"canbao-config", f"{service}-database"} <= env_from
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == name
    assert deployment["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": name}}


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_every_deployment_has_an_autoscaler_and_a_disruption_budget(name: str) -> None:
    objects = manifests(BASE)
    hpa = find(objects, "HorizontalPodAutoscaler", name)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
    }
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert any(
        m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"]
    )
    pdb = find(objects, "PodDisruptionBudget", name)
    assert pdb["spec"]["selector"] == find(objects, "Deployment", name)["spec"]["selector"]


@pytest.mark.parametrize("name", [n for n in DEPLOYMENTS if n not in UNCALLED])
def test_every_called_deployment_has_a_service(name: str) -> None:
    service = find(manifests(BASE), "Service", name)
    assert service["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize("name", UNCALLED)
def test_a_deployment_nobody_calls_has_no_service_and_denies_all_ingress(name: str) -> None:
    objects = manifests(BASE)
    labels = find(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
    assert not [
        s
        for s in of_kind(objects, "Service")
        if selects({"matchLabels": s["spec"]["selector"]}, labels)
    ]
    policies = [
        p for p in of_kind(objects, "NetworkPolicy") if selects(p["spec"]["podSelector"], labels)
    ]
    (policy,) = policies
    assert "Ingress" in policy["spec"]["policyTypes"]
    assert not policy["spec"].get("ingress"), "an ingress rule lets someone in"


def test_no_selector_reaches_the_pods_of_another_deployment() -> None:
    """identity and identity-builder share an image but not their Services, budgets, policies
    and spreads: each selector matches the pods of exactly the Deployment it is written for."""
    objects = manifests(BASE)
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in of_kind(objects, "Deployment")
    }
    selectors = [
        (f"Service {s['metadata']['name']}", {"matchLabels": s["spec"]["selector"]})
        for s in of_kind(objects, "Service")
    ]
    selectors += [
        (f"PDB {p['metadata']['name']}", p["spec"]["selector"])
        for p in of_kind(objects, "PodDisruptionBudget")
    ]
    selectors += [
        (f"NetworkPolicy {p['metadata']['name']}", p["spec"]["podSelector"])
        for p in of_kind(objects, "NetworkPolicy")
    ]
    for name, deployment in ((d["metadata"]["name"], d) for d in of_kind(objects, "Deployment")):
        selectors.append((f"Deployment {name}", deployment["spec"]["selector"]))
        for spread in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]:
            selectors.append((f"Deployment {name} spread", spread["labelSelector"]))
    for where, selector in selectors:
        matched = [name for name, labels in pods.items() if selects(selector, labels)]
        assert len(matched) == 1, f"{where} selects the pods of {matched}"


# --- identity's two roles ---------------------------------------------------------------------

IDENTITY_DEPLOYMENTS = [name for name, service in DEPLOYMENTS.items() if service == "identity"]


def identity_roles() -> dict[str, dict[str, str]]:
    """IDENTITY_ROLES of each identity Deployment and compose service, by where it is set."""
    kubernetes = {}
    for name in IDENTITY_DEPLOYMENTS:
        (container,) = find(manifests(BASE), "Deployment", name)["spec"]["template"]["spec"][
            "containers"
        ]
        kubernetes[name] = container_env(container).get("IDENTITY_ROLES", "")
    services = compose_services()
    compose = {
        name: str(services[name]["environment"].get("IDENTITY_ROLES", ""))
        for name in IDENTITY_DEPLOYMENTS
    }
    return {"kubernetes": kubernetes, "compose": compose}


@pytest.mark.parametrize("where", ["kubernetes", "compose"])
def test_identity_runs_each_role_in_exactly_one_deployment(where: str) -> None:
    assert set(IDENTITY_DEPLOYMENTS) == {"identity", "identity-builder"}
    roles = {}
    for name, value in identity_roles()[where].items():
        assert value, f"{name}: IDENTITY_ROLES unset would run both roles in one process"
        roles[name] = IdentitySettings(roles=value).role_set  # what the service would accept
    # Consuming and building once each; a rebuild-only Deployment is an addition a first load
    # may bring, not one of the two.
    assert roles == {"identity": {Role.CONSUME}, "identity-builder": {Role.BUILD}}


def test_the_identity_builder_has_the_keys_and_scales_without_consumer_lag() -> None:
    objects = manifests(BASE)
    for name in IDENTITY_DEPLOYMENTS:
        (container,) = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        secrets = {r["secretRef"]["name"] for r in container["envFrom"] if "secretRef" in r}
        assert secrets == {"identity-database", "identity-keys"}, name
        (migrate,) = find(objects, "Deployment", name)["spec"]["template"]["spec"]["initContainers"]
        assert "identity-keys" not in str(migrate["envFrom"]), "migrations need no keys"
    environment = compose_services()["identity-builder"]["environment"]
    assert set(env_file_values(PRODUCTION / "secrets" / "identity-keys.env.example")) <= set(
        environment
    )
    builder = find(objects, "HorizontalPodAutoscaler", "identity-builder")
    # It reads no topic: the `identity` group's lag belongs to the consumers' HPA.
    assert "kafka_consumergroup_lag" not in str(builder["spec"]["metrics"])


@pytest.mark.parametrize("service", CONSUMERS)
def test_consumers_scale_on_the_lag_of_their_own_consumer_group(service: str) -> None:
    hpa = find(manifests(BASE), "HorizontalPodAutoscaler", CONSUMING_DEPLOYMENT[service])
    (lag,) = [m["external"] for m in hpa["spec"]["metrics"] if m["type"] == "External"]
    assert lag["metric"]["name"] == "kafka_consumergroup_lag"
    assert lag["metric"]["selector"]["matchLabels"] == {"consumergroup": CONSUMER_GROUPS[service]}


def test_no_autoscaler_asks_for_more_consumers_than_its_topics_have_partitions() -> None:
    hpas = of_kind(manifests(BASE), "HorizontalPodAutoscaler")
    hpas += of_kind(load_yaml_documents(PRODUCTION / "capacity.yaml"), "HorizontalPodAutoscaler")
    consumers = {deployment: service for service, deployment in CONSUMING_DEPLOYMENT.items()}
    for hpa in hpas:
        name = hpa["metadata"]["name"]
        if name in consumers:
            partitions = sum(topic.partitions for topic in RECEIVES[consumers[name]])
            assert hpa["spec"]["maxReplicas"] <= partitions, f"{name}: idle consumers"


def test_only_consumers_scale_on_lag() -> None:
    assert set(CONSUMERS) == {"identity", "matching", "survey", "reporting", "gateway"}
    # The gateway's HTTP Deployment scales on requests; its notifier on the lag.
    gateway = find(manifests(BASE), "HorizontalPodAutoscaler", "gateway")
    assert [m["type"] for m in gateway["spec"]["metrics"]] == ["Resource"]


@pytest.mark.parametrize(("name", "service"), DEPLOYMENTS.items(), ids=list(DEPLOYMENTS))
def test_the_migration_reads_its_settings_from_what_its_container_is_given(
    name: str, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The initContainer's environment (the ConfigMap, its Secrets with stand-in values) is
    enough for the migration command to read its database URL in production."""
    templates = sorted((PRODUCTION / "secrets").glob("*.env.example"))
    for template in templates:  # nothing from outside the test
        for key in env_file_values(template):
            monkeypatch.delenv(key, raising=False)
    (config,) = kustomization(BASE)["configMapGenerator"]
    given = dict(literal.split("=", 1) for literal in config["literals"])
    (migrate,) = find(manifests(BASE), "Deployment", name)["spec"]["template"]["spec"][
        "initContainers"
    ]
    for reference in migrate["envFrom"]:
        if "secretRef" in reference:
            secret = reference["secretRef"]["name"]
            template = PRODUCTION / "secrets" / f"{secret}.env.example"
            user = service if secret.endswith("-owner") else f"{service}_app"
            for key in env_file_values(template):
                given[key] = f"postgresql+asyncpg://{user}:x@db:5432/{service}"
    assert given["CANBAO_ENV"] == "production"
    for key, value in given.items():
        monkeypatch.setenv(key, value)
    # What `python -m canbao_platform.migrate <service>` reads (identity, survey and gateway
    # refuse their full settings in production without keys, which this container is not given):
    # it migrates as the owner and grants to the role the service logs in as.
    settings = migration_settings(service_definition(service))
    prefix = service.upper()
    assert settings.owner_url == given[f"{prefix}_MIGRATION_DATABASE_URL"]
    assert database_url(service_definition(service)) == settings.owner_url
    assert settings.application_role == f"{service}_app"


def secret_keys(container: dict[str, object]) -> set[str]:
    """The variables a container reads from its Secrets (their templates' keys)."""
    keys: set[str] = set()
    for reference in container["envFrom"]:  # type: ignore[attr-defined]
        if "secretRef" in reference:
            template = PRODUCTION / "secrets" / f"{reference['secretRef']['name']}.env.example"
            keys |= set(env_file_values(template))
    return keys


@pytest.mark.parametrize(("name", "service"), DEPLOYMENTS.items(), ids=list(DEPLOYMENTS))
def test_only_the_migration_logs_in_as_the_owner_of_the_tables(name: str, service: str) -> None:
    """The service's own login must not own its tables (it could drop the triggers that keep
    the audit log append-only): the owner's URL reaches the migration and nothing else, in
    Kubernetes and in compose, and the two URLs name different roles."""
    prefix = service.upper()
    pod = find(manifests(BASE), "Deployment", name)["spec"]["template"]["spec"]
    (migrate,) = pod["initContainers"]
    (container,) = pod["containers"]
    assert {f"{prefix}_MIGRATION_DATABASE_URL", f"{prefix}_DATABASE_URL"} <= secret_keys(migrate)
    assert f"{prefix}_DATABASE_URL" in secret_keys(container)
    assert not any("MIGRATION" in key for key in secret_keys(container))
    services = compose_services()
    assert not any("MIGRATION" in key for key in services[name]["environment"])
    environment = services[f"{service}-migrate"]["environment"]
    owner = make_url(environment[f"{prefix}_MIGRATION_DATABASE_URL"]).username
    application = make_url(environment[f"{prefix}_DATABASE_URL"]).username
    assert (
        services[name]["environment"][f"{prefix}_DATABASE_URL"]
        == environment[f"{prefix}_DATABASE_URL"]
    )
    assert (owner, application) == (service, f"{service}_app")
    init = (DEPLOY / "postgres" / "services-init.sh").read_text()
    assert 'CREATE ROLE :"app_role" LOGIN' in init and 'OWNER :"role"' in init


def test_the_production_overlay_sets_capacity_for_every_deployment() -> None:
    patches = load_yaml_documents(PRODUCTION / "capacity.yaml")
    for name in DEPLOYMENTS:
        hpa = find(patches, "HorizontalPodAutoscaler", name)["spec"]
        assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"], name
        (container,) = find(patches, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert set(container["resources"]) == {"requests", "limits"}
        # A strategic-merge patch of a container that does not exist would add a second one.
        (base,) = find(manifests(BASE), "Deployment", name)["spec"]["template"]["spec"][
            "containers"
        ]
        assert container["name"] == base["name"], name
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) >= {"cpu", "memory"}, name


def test_services_connect_and_topics_use_the_same_kafka_cluster() -> None:
    (kafka,) = of_kind(manifests(DEPLOY / "k8s" / "kafka"), "Kafka")
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap:9093"  # Strimzi's Service name
    (config,) = kustomization(BASE)["configMapGenerator"]
    assert f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}" in config["literals"]
    (connect,) = of_kind(manifests(BASE), "KafkaConnect")
    assert connect["spec"]["bootstrapServers"] == bootstrap
    for topic in of_kind(manifests(BASE), "KafkaTopic"):
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    assert kafka["spec"]["kafka"]["config"]["default.replication.factor"] == 3


# --- compose ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "service"), DEPLOYMENTS.items(), ids=list(DEPLOYMENTS))
def test_compose_runs_every_service_healthchecked_on_readyz_after_its_migration(
    name: str, service: str
) -> None:
    services = compose_services()
    definition = services[name]
    assert "/readyz" in " ".join(definition["healthcheck"]["test"])
    assert definition["build"]["args"] == {"SERVICE": service}
    assert definition["depends_on"][f"{service}-migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert definition["depends_on"]["create-topics"] == {
        "condition": "service_completed_successfully"
    }
    migrate = services[f"{service}-migrate"]
    assert migrate["command"] == ["python", "-m", "canbao_platform.migrate", service]
    assert migrate["image"] == definition["image"]
    assert f"{service.upper()}_DATABASE_URL" in definition["environment"]
    assert set(definition["environment"]) >= {
        "KAFKA_BOOTSTRAP_SERVERS",
        "CANBAO_ENV",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    }


def test_compose_kafka_is_three_kraft_brokers_replicating_three_times_without_zookeeper() -> None:
    services = compose_services()
    brokers = {
        name: s["environment"]
        for name, s in services.items()
        if "broker" in str(s.get("environment", {}).get("KAFKA_PROCESS_ROLES", ""))
    }
    assert len(brokers) == 3
    assert len({env["KAFKA_NODE_ID"] for env in brokers.values()}) == 3
    for env in brokers.values():
        assert "controller" in env["KAFKA_PROCESS_ROLES"]
        assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"
    for name, service in services.items():
        assert "zookeeper" not in name.lower() and "zookeeper" not in service.get("image", "")
        assert not any("ZOOKEEPER" in key for key in service.get("environment", {})), name


def test_compose_has_sources_database_connect_and_collector() -> None:
    services = compose_services()
    assert "wal_level=logical" in services["sources-db"]["command"]
    assert services["connect"]["image"].startswith("quay.io/debezium/connect:3.")
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector:")
    assert (
        "./otel-collector.yaml:/etc/otelcol/config.yaml:ro" in services["otel-collector"]["volumes"]
    )
    assert load_yaml_documents(DEPLOY / "otel-collector.yaml")[0]["service"]["pipelines"]


# --- CDC: the connector captures exactly the source tables ---------------------------------------


def connector_configs() -> dict[str, dict[str, str]]:
    compose_json = json.loads((DEPLOY / "debezium" / "sources-connector.json").read_text())
    (connector,) = of_kind(manifests(BASE), "KafkaConnector")
    return {"compose": compose_json, "kubernetes": connector["spec"]["config"]}


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_the_connector_captures_exactly_the_source_tables_under_the_cdc_prefix(where: str) -> None:
    config = connector_configs()[where]
    assert unescape_table_list(config["table.include.list"]) == list(TABLES)
    assert config["topic.prefix"] == "cdc"
    assert config["plugin.name"] == "pgoutput"
    assert config["tombstones.on.delete"] == "true"
    assert config["key.converter"] == config["value.converter"]
    assert config["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    for key, value in config.items():
        if "password" in key:
            assert value.startswith("${env:"), f"{key} must come from the worker's environment"


def test_both_connector_configurations_are_the_same_connector() -> None:
    configs = connector_configs()
    compose_config = dict(configs["compose"])
    (connector,) = of_kind(manifests(BASE), "KafkaConnector")
    assert compose_config.pop("name") == connector["metadata"]["name"]
    assert compose_config.pop("connector.class") == connector["spec"]["class"]
    assert int(compose_config.pop("tasks.max")) == connector["spec"]["tasksMax"]
    assert compose_config == configs["kubernetes"]
    (connect,) = of_kind(manifests(BASE), "KafkaConnect")
    assert connector["metadata"]["labels"]["strimzi.io/cluster"] == connect["metadata"]["name"]


def test_compose_registers_the_connector_file_under_its_name() -> None:
    register = compose_services()["register-connector"]
    name = connector_configs()["compose"]["name"]
    assert register["command"][-1].endswith(f"/connectors/{name}/config")
    assert any(v.startswith("./debezium/sources-connector.json:") for v in register["volumes"])


def test_the_source_publication_names_exactly_the_source_tables() -> None:
    sql = (DEPLOY / "postgres" / "sources-publication.sql").read_text()
    publication = re.search(r"CREATE PUBLICATION (\w+) FOR TABLE(.*?);", sql, re.S)
    assert publication
    assert publication[1] == connector_configs()["compose"]["publication.name"]
    listed = [tuple(name.strip().split(".")) for name in publication[2].split(",")]
    assert listed == list(TABLES)


def test_kafka_and_debezium_versions_agree_between_compose_and_kubernetes() -> None:
    (connect,) = of_kind(manifests(BASE), "KafkaConnect")
    debezium = compose_services()["connect"]["image"].rsplit(":", 1)[1]
    (plugin,) = connect["spec"]["build"]["plugins"]
    assert all(debezium in artifact["url"] for artifact in plugin["artifacts"])


# --- topics: exactly the contracts ------------------------------------------------------------


def contract_topics() -> set[tuple[str, int, int, str]]:
    specs = generator().topic_specs()
    assert len(specs) == len(ALL_TOPICS)
    return {(t.name, t.partitions, t.retention_ms, t.cleanup_policy) for t in specs}


def test_contract_topics_are_read_faithfully() -> None:
    for topic, spec in zip(ALL_TOPICS, generator().topic_specs(), strict=True):
        assert (spec.name, spec.partitions) == (topic.name, topic.partitions)
        assert spec.cleanup_policy in ("delete", "compact", "compact,delete")
        assert spec.retention_ms == -1 or spec.retention_ms > 0


def test_kubernetes_topics_match_the_contracts() -> None:
    topics = of_kind(manifests(BASE), "KafkaTopic")
    found = {
        (
            t["spec"]["topicName"],
            t["spec"]["partitions"],
            int(t["spec"]["config"]["retention.ms"]),
            t["spec"]["config"]["cleanup.policy"],
        )
        for t in topics
    }
    assert len(topics) == len(found)
    assert found == contract_topics()
    for topic in topics:
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "canbao"


def test_compose_topic_creation_matches_the_contracts() -> None:
    script = DEPLOY / "kafka" / "create-topics.sh"
    lines = [line.split() for line in script.read_text().splitlines() if line.startswith("create ")]
    found = {
        (name, int(partitions), int(retention), policy)
        for _, name, partitions, retention, policy in lines
    }
    assert len(lines) == len(found)
    assert found == contract_topics()
    assert "--replication-factor 3" in script.read_text()
    creator = compose_services()["create-topics"]
    assert any(v.startswith("./kafka/create-topics.sh:") for v in creator["volumes"])
    assert creator["entrypoint"][-1].endswith("create-topics.sh")


# --- secrets and images -----------------------------------------------------------------------

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|KEY_ID$|DATABASE_URL$")


def test_secret_templates_hold_no_values() -> None:
    templates = [DEPLOY / ".env.example", *sorted((PRODUCTION / "secrets").glob("*.example"))]
    for template in templates:
        values = env_file_values(template)
        assert values, f"{template} lists no keys"
        assert all(value == "" for value in values.values()), f"{template} holds values"


def test_the_real_secret_files_are_ignored_by_git() -> None:
    generated = kustomization(PRODUCTION)["secretGenerator"]
    for secret in generated:
        for env in secret["envs"]:
            template = PRODUCTION / f"{env}.example"
            assert template.exists(), f"no template for {env}"
            assert git_ignores(PRODUCTION / env) in (True, None), f"{env} would be committed"
    assert git_ignores(DEPLOY / ".env") in (True, None)


def test_every_secret_a_pod_reads_is_generated_by_the_overlay() -> None:
    generated = {s["name"] for s in kustomization(PRODUCTION)["secretGenerator"]}
    referenced = set()
    for deployment in of_kind(manifests(BASE), "Deployment"):
        for container in pod_containers(deployment):
            referenced |= {r["secretRef"]["name"] for r in container["envFrom"] if "secretRef" in r}
    (connect,) = of_kind(manifests(BASE), "KafkaConnect")
    for env in connect["spec"]["template"]["connectContainer"]["env"]:
        if "valueFrom" in env:
            referenced.add(env["valueFrom"]["secretKeyRef"]["name"])
    assert referenced == generated
    assert generated >= {"identity-keys", "gateway-keys", "sources-db"}
    keys = env_file_values(PRODUCTION / "secrets" / "identity-keys.env.example")
    assert set(keys) == {
        "IDENTITY_DATA_KEY",
        "IDENTITY_DATA_KEY_ID",
        "IDENTITY_BLIND_INDEX_KEY",
        "IDENTITY_RETIRED_DATA_KEYS",
    }
    keys = env_file_values(PRODUCTION / "secrets" / "gateway-keys.env.example")
    assert set(keys) == {
        "GATEWAY_JWT_SIGNING_KEY",
        "GATEWAY_AUDIT_INDEX_KEY",
        "GATEWAY_SERVICE_TOKEN_PRIVATE_KEY",
        "GATEWAY_DATA_KEY",
        "GATEWAY_DATA_KEY_ID",
        "GATEWAY_RETIRED_DATA_KEYS",
        "GATEWAY_DCI_SIGNING_KEY",
    }


def test_compose_takes_every_secret_from_the_env_file() -> None:
    for name, service in compose_services().items():
        for key, value in service.get("environment", {}).items():
            if SECRET_NAME.search(key):
                # Required (`:?`), or optional and empty by default (`:-}`: retired keys).
                assert re.search(r"\$\{\w+:(\?|-\})", str(value)), (
                    f"{name}: {key} is not from deploy/.env"
                )
    declared = set(env_file_values(DEPLOY / ".env.example"))
    used = set(re.findall(r"\$\{(\w+):(?:\?|-\})", (DEPLOY / "compose.yaml").read_text()))
    assert used == declared, "deploy/.env.example and compose.yaml name different variables"


def test_no_committed_file_holds_a_secret() -> None:
    for path in committed_files(DEPLOY):
        text = path.read_text(encoding="utf-8", errors="replace")
        assert "PRIVATE KEY-----" not in text, path
        if path.suffix in (".yaml", ".yml"):
            for document in load_yaml_documents(path):
                if isinstance(document, dict) and document.get("kind") == "Secret":
                    pytest.fail(f"{path}: a Secret object; use the overlay's secretGenerator")
        for line in text.splitlines():
            assignment = re.match(r"\s*-?\s*([A-Z][A-Z0-9_]*)\s*[=:]\s*(\S.*)?$", line)
            if assignment and SECRET_NAME.search(assignment[1]) and assignment[2]:
                value = assignment[2]
                assert value.startswith(("$", "<", "#")) or "${" in value, (
                    f"{path.relative_to(DEPLOY)}: {assignment[1]} has a literal value"
                )


def image_references() -> list[tuple[str, str]]:
    images = [(f"compose {n}", s["image"]) for n, s in compose_services().items() if "image" in s]
    for directory in (BASE, DEPLOY / "k8s" / "kafka"):
        for deployment in of_kind(manifests(directory), "Deployment"):
            images += [
                (deployment["metadata"]["name"], c["image"]) for c in pod_containers(deployment)
            ]
    for connect in of_kind([*manifests(BASE), *manifests(PRODUCTION)], "KafkaConnect"):
        images.append(("KafkaConnect", connect["spec"]["build"]["output"]["image"]))
    for image in kustomization(PRODUCTION)["images"]:
        images.append((f"overlay {image['name']}", f"{image['newName']}:{image['newTag']}"))
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    images += [("Dockerfile ARG", m) for m in re.findall(r"^ARG \w+_IMAGE=(\S+)", dockerfile, re.M)]
    return images


def test_every_image_is_pinned_to_a_version() -> None:
    references = image_references()
    assert len(references) > 20
    for where, image in references:
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{where}: {image} is not pinned"


def test_the_deployment_knows_every_service_of_the_workspace() -> None:
    assert {p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")} == set(SERVICES)
    assert set(CONTRACT_SERVICES) == set(SERVICES)


def test_the_image_build_copies_every_workspace_members_manifest() -> None:
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    members = [
        m.parent for pattern in workspace["members"] for m in ROOT.glob(f"{pattern}/pyproject.toml")
    ]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for member in members:
        relative = member.relative_to(ROOT).as_posix()
        assert f"COPY {relative}/pyproject.toml {relative}/" in dockerfile, relative


def test_the_image_installs_the_locked_workspace_and_runs_unprivileged() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) >= 3, "multi-stage build"
    assert 'uv sync --frozen --no-dev --no-editable --package "canbao-${SERVICE}"' in dockerfile
    (user,) = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user.split(":")[0].isdigit() and not user.startswith("0")
    assert "uv.lock" in dockerfile


# --- the whole thing, where a kustomize binary exists -------------------------------------------

KUSTOMIZE = shutil.which("kustomize") or shutil.which("kubectl")


@pytest.mark.skipif(KUSTOMIZE is None, reason="needs kustomize or kubectl on PATH")
def test_the_base_and_the_production_overlay_build(tmp_path: Path) -> None:
    assert KUSTOMIZE
    command = [KUSTOMIZE] if KUSTOMIZE.endswith("kustomize") else [KUSTOMIZE, "kustomize"]
    shutil.copytree(DEPLOY / "k8s", tmp_path / "k8s")
    for template in (tmp_path / "k8s" / "overlays" / "production" / "secrets").glob("*.example"):
        filled = {key: "test-value" for key in env_file_values(template)}
        template.with_suffix("").write_text("".join(f"{k}={v}\n" for k, v in filled.items()))
    for target in ("base", "overlays/production"):
        built = subprocess.run(
            [*command, str(tmp_path / "k8s" / target)], capture_output=True, text=True, check=True
        ).stdout
        kinds = [d["kind"] for d in yaml.safe_load_all(built) if d]
        assert kinds.count("Deployment") == len(DEPLOYMENTS), target


# --- who may name the client ------------------------------------------------------------------


def test_only_configured_proxies_may_name_the_client_of_the_gateway() -> None:
    """X-Forwarded-For is believed by the gateway alone (GATEWAY_TRUSTED_PROXIES), never by
    uvicorn for anyone (`FORWARDED_ALLOW_IPS: "*"` let any client choose its address and so
    escape the login throttle per address)."""
    for path in [*DEPLOY.rglob("*.yaml"), DEPLOY / "Dockerfile"]:
        assert "FORWARDED_ALLOW_IPS" not in path.read_text(encoding="utf-8"), path
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "--no-proxy-headers" in dockerfile.split("\nCMD ", 1)[1]
    (container,) = find(manifests(BASE), "Deployment", "gateway")["spec"]["template"]["spec"][
        "containers"
    ]
    assert "--no-proxy-headers" in container["command"]
    environments = {
        "base": container_env(container)["GATEWAY_TRUSTED_PROXIES"],
        "compose": compose_services()["gateway"]["environment"]["GATEWAY_TRUSTED_PROXIES"],
    }
    (patch,) = load_yaml_documents(PRODUCTION / "ingress.yaml")
    (patched,) = patch["spec"]["template"]["spec"]["containers"]
    environments["production"] = container_env(patched)["GATEWAY_TRUSTED_PROXIES"]
    for where, value in environments.items():
        proxies = GatewaySettings(CANBAO_ENV="test", trusted_proxies=value).trusted_proxies
        assert all(ip_network(p, strict=False).prefixlen > 0 for p in proxies), where
        if where == "production":
            assert proxies, "the production overlay names its ingress"
    assert environments["base"] == environments["compose"] == ""  # none trusted by default


def test_partners_reach_the_gateway_only_over_a_verified_client_certificate() -> None:
    """api.md "Who calls": partners use client credentials, with mTLS in production."""
    (patch,) = load_yaml_documents(PRODUCTION / "ingress.yaml")
    (patched,) = patch["spec"]["template"]["spec"]["containers"]
    assert container_env(patched)["GATEWAY_PARTNER_MTLS"] == "true"
    (ingress,) = of_kind(load_yaml_documents(PRODUCTION / "partner-ingress.yaml"), "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/auth-tls-verify-client"] == "on"
    assert annotations["nginx.ingress.kubernetes.io/auth-tls-secret"].endswith("/partner-client-ca")
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == ["/api/v1/auth/token", "/api/v1/partners"]
    assert "partner-ingress.yaml" in kustomization(PRODUCTION)["resources"]
