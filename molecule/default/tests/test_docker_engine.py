"""Verify selfhosted.registry.docker on the registry hosts, as a user of the host would.

The site playbook installed the engine there (group_vars: docker_users, and
the shared config's mirror and dockerd environment).
"""

from __future__ import annotations

import json
import time

import pytest

testinfra_hosts = ["ansible://registry"]

# Fixture image served by the test mirror under its Docker Hub name
# (docs/contracts.md): pulled by that name, it can only come from the mirror.
HUB_IMAGE = "registry:2.8.3"


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def debian_major(host):
    return int(host.system_info.release.split(".")[0])


def run_ok(host, command, *args):
    result = host.run(command, *args)
    assert result.rc == 0, f"{result.command!r} failed ({result.rc}): {result.stderr or result.stdout}"
    return result.stdout


def test_engine_running_and_enabled(host):
    service = host.service("docker")
    assert service.is_running
    assert service.is_enabled


def test_daemon_json(host, hostvars):
    daemon_json = host.file("/etc/docker/daemon.json")
    assert daemon_json.user == "root"
    assert daemon_json.group == "root"
    assert daemon_json.mode == 0o644
    config = json.loads(daemon_json.content_string)
    assert config["live-restore"] is True
    assert config["log-driver"] == "json-file"
    assert config["log-opts"]["max-size"] == "10m"
    assert config["log-opts"]["max-file"] == "3"
    assert config["registry-mirrors"] == hostvars["docker_registry_mirrors"]
    assert hostvars["docker_registry_mirrors"], "the shared config should give the hosts a mirror"


def test_docker_info_reports_the_configuration(host, hostvars):
    info = json.loads(run_ok(host, "docker info --format '{{json .}}'"))
    assert info["ServerVersion"]
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    mirrors = [mirror.rstrip("/") for mirror in info["RegistryConfig"]["Mirrors"]]
    assert mirrors == [mirror.rstrip("/") for mirror in hostvars["docker_registry_mirrors"]]


def test_dockerd_environment_file(host, hostvars):
    """dockerd's environment in a file only root reads: `systemctl show`, open to every user, does not show it."""
    env_file = host.file("/etc/docker/selfhosted-registry.env")
    assert (env_file.user, env_file.group, env_file.mode) == ("root", "root", 0o600)
    environment = hostvars["docker_service_environment"]
    assert environment.get("DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE") == "1"
    for name, value in environment.items():
        assert f'{name}="{value}"' in env_file.content_string
    dropin = host.file("/etc/systemd/system/docker.service.d/environment.conf")
    assert "EnvironmentFile=/etc/docker/selfhosted-registry.env" in dropin.content_string
    assert "DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE" not in dropin.content_string
    # systemd has loaded it (daemon-reload ran), shows the file and not the values, and dockerd got them (restarted).
    assert "/etc/docker/selfhosted-registry.env" in run_ok(host, "systemctl show docker.service --property=EnvironmentFiles")
    assert "DOCKER_ALLOW_IPV6" not in run_ok(host, "systemctl show docker.service --property=Environment")
    pid = run_ok(host, "systemctl show docker.service --property=MainPID --value").strip()
    process_environment = host.file(f"/proc/{pid}/environ").content.split(b"\0")
    assert b"DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1" in process_environment


def test_python_sdk_talks_to_the_engine(host, debian_major):
    version = run_ok(
        host,
        "python3 -c 'import docker; client = docker.from_env(); assert client.ping(); print(docker.__version__)'",
    ).strip()
    assert version == {12: "5.0.3", 13: "7.1.0"}[debian_major]


def test_compose_v2_where_packaged(host, debian_major):
    if debian_major == 12:
        # Debian 12 only packages compose v1: the role must not install it.
        assert not host.package("docker-compose").is_installed
        assert host.run("docker compose version").rc != 0
    else:
        assert host.package("docker-compose").is_installed
        assert run_ok(host, "docker compose version --short").strip().startswith("2.")


def test_only_the_recommends_a_registry_host_needs(host):
    """Of docker.io's Recommends, AppArmor's parser (without it the engine runs containers unconfined where AppArmor
    is on), CA certificates and xz; not git or needrestart, nor the Perl they bring."""
    missing = [name for name in ("apparmor", "ca-certificates", "xz-utils") if not host.package(name).is_installed]
    extra = [name for name in ("git", "needrestart") if host.package(name).is_installed]
    assert not missing, f"not installed: {missing}"
    assert not extra, f"installed with docker.io's Recommends: {extra}"


def test_docker_users_can_use_the_engine(host):
    groups = host.user("registry-admin").groups
    assert "docker" in groups
    assert "users" in groups, "the role must keep the user's other groups"
    run_ok(host, "runuser -u registry-admin -- docker version --format '{{.Server.Version}}'")


def test_pull_by_docker_hub_name_through_the_mirror(host):
    host.run("docker image rm --force %s", HUB_IMAGE)
    run_ok(host, "docker pull %s", HUB_IMAGE)
    version = run_ok(host, "docker run --rm %s --version", HUB_IMAGE)
    assert "2.8.3" in version


def test_container_from_the_mirror_serves(host):
    name = "selfhosted-test-verify-registry"
    host.run("docker rm --force %s", name)
    run_ok(host, "docker run --detach --name %s --publish 127.0.0.1::5000 %s", name, HUB_IMAGE)
    try:
        port = run_ok(host, "docker port %s 5000/tcp", name).splitlines()[0].rsplit(":", 1)[1]
        probe = (
            "import urllib.request; "
            f"print(urllib.request.urlopen('http://127.0.0.1:{port}/v2/', timeout=5).status)"
        )
        for _attempt in range(30):
            result = host.run("python3 -c %s", probe)
            if result.rc == 0:
                break
            time.sleep(1)
        assert result.rc == 0, result.stderr
        assert result.stdout.strip() == "200"
    finally:
        host.run("docker rm --force %s", name)
