"""deploy/'s backup files (deploy/README.md "Backup and recovery") checked statically: one stanza
everywhere (the local tool's, canbao_platform.local.backup), an encrypted repository (it holds
personal data), both schedules, and the house rules for the CronJobs."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml

from canbao_platform.local.backup import STANZA

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONFIGS = [DEPLOY / "pgbackrest" / "pgbackrest.conf", DEPLOY / "k8s" / "backup" / "pgbackrest.conf"]


def _conf(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def _cronjobs() -> list[dict]:  # type: ignore[type-arg]
    path = DEPLOY / "k8s" / "backup" / "cronjobs.yaml"
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def test_every_pgbackrest_config_names_the_stanza_and_encrypts_its_repository() -> None:
    for path in CONFIGS:
        conf = _conf(path)
        assert conf.sections() == ["global", STANZA], path
        assert conf["global"]["repo1-cipher-type"] == "aes-256-cbc", path
        assert "repo1-cipher-pass" not in conf["global"], f"{path}: passphrase from the env only"
        assert int(conf["global"]["repo1-retention-full"]) >= 2, path


def test_compose_archives_every_wal_segment_to_the_stanza_and_schedules_backups() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.backup.yaml").read_text(encoding="utf-8"))
    db = compose["services"]["services-db"]
    settings = dict(arg.split("=", 1) for arg in db["command"] if "=" in arg)
    assert settings["archive_mode"] == "on"
    base = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    kept = dict(
        arg.split("=", 1) for arg in base["services"]["services-db"]["command"] if "=" in arg
    )
    assert kept.items() <= settings.items(), "the overlay's command replaces the base's"
    assert f"--stanza={STANZA} archive-push %p" in settings["archive_command"]
    job = compose["services"]["services-db-backup"]
    assert job["entrypoint"] == ["/usr/local/bin/backup-schedule"]
    assert job["user"] == "postgres"
    schedule = (DEPLOY / "pgbackrest" / "backup-schedule.sh").read_text(encoding="utf-8")
    assert "--type=$type backup" in schedule and "type=full" in schedule and "type=diff" in schedule


def test_kubernetes_takes_weekly_full_and_nightly_differential_backups() -> None:
    jobs = {job["metadata"]["name"]: job for job in _cronjobs()}
    kinds = {}
    for name, job in jobs.items():
        assert job["kind"] == "CronJob"
        spec = job["spec"]
        assert spec["concurrencyPolicy"] == "Forbid", name
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"][:2] == ["pgbackrest", f"--stanza={STANZA}"], name
        kinds[container["command"][2]] = spec["schedule"]
        image = container["image"]
        assert ":" in image and not image.endswith(":latest"), name
        assert container["resources"]["limits"], name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
    assert kinds == {"--type=full": "30 1 * * 0", "--type=diff": "30 1 * * 1-6"}


def test_the_backup_kustomization_lists_every_file_of_its_folder() -> None:
    folder = DEPLOY / "k8s" / "backup"
    k = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(k["resources"]) | {f for g in k["configMapGenerator"] for f in g["files"]}
    on_disk = {p.name for p in folder.iterdir()} - {"kustomization.yaml"}
    assert listed == on_disk
