"""The operator's `docker compose` beside the site playbook, on Debian 13 (compose v2).

side_effect_compose_cli.yml, right after converge, checked that `docker compose
up -d` left the playbook's containers alone, then let compose recreate the
registry's; the idempotence step ran the site playbook again, which had to
change nothing.
"""

from __future__ import annotations

from conftest import run_ok

testinfra_hosts = ["ansible://debian13"]

PROJECT_DIR = "/opt/registry"
# Written by side_effect_compose_cli.yml: service=container ID after compose recreated the registry's.
COMPOSE_MADE = "/var/tmp/selfhosted-test-compose-made"


def containers(host) -> list[str]:
    return sorted(run_ok(host, "cd %s && docker compose ps --all --format '{{.Service}}={{.ID}}'", PROJECT_DIR).split())


def test_the_playbook_kept_the_container_compose_made(host):
    made = sorted(host.file(COMPOSE_MADE).content_string.split())
    assert [entry.split("=")[0] for entry in made] == ["mirror", "nginx-exporter", "proxy", "registry", "ui"]
    assert containers(host) == made, "the site playbook recreated a container that compose made from the same files"
    labels = host.docker("registry-registry-1").inspect()["Config"]["Labels"]
    assert "io.selfhosted.registry.compose-stack.definition" not in labels, "the registry's container is not compose's"


def test_compose_recreates_nothing_after_the_playbook(host):
    before = containers(host)
    output = run_ok(host, "cd %s && docker compose up --detach 2>&1", PROJECT_DIR)
    assert "Recreate" not in output, output
    assert containers(host) == before


def test_env_file_names_the_project_and_its_files(host):
    env = host.file(f"{PROJECT_DIR}/.env")
    assert env.mode == 0o644
    # The files of every run, in the order first seen: the registry role's (with the mirror's, the UI's and the
    # nginx exporter's), then the proxy's.
    files = "compose.yaml:compose.mirror.yaml:compose.ui.yaml:compose.metrics.yaml:compose.proxy.yaml"
    assert env.content_string == f"COMPOSE_FILE={files}\nCOMPOSE_PROJECT_NAME=registry\n"
