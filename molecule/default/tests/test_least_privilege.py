"""Least privilege, seen on the registry hosts: what each container may do, and who owns what it reads and writes.

docker inspect says how the engine was asked to start a container; /proc of
the processes inside says what they really have; a write where nothing may
be written must fail.
"""

from __future__ import annotations

import json

import pytest
from conftest import auth_mode as registry_auth_mode
from conftest import run, run_ok

testinfra_hosts = ["ansible://registry"]

BASE_DIR = "/opt/registry"
REGISTRY_IDS = (10500, 10500)  # the role's defaults: registry_uid, registry_gid
NGINX_UID = 101
# Capability bits (linux/capability.h) nginx's master keeps.
NGINX_CAPABILITIES = {"NET_BIND_SERVICE": 10, "SETGID": 6, "SETUID": 7}


def inspect(host, container: str) -> dict:
    return json.loads(run_ok(host, "docker inspect %s", container))[0]


def process_status(host, container: str) -> list[dict]:
    """Uid and effective capabilities of every process in the container, from /proc."""
    output = run_ok(host, "docker exec %s sh -c 'cat /proc/[0-9]*/status'", container)
    processes, current = [], {}
    for line in output.splitlines():
        key, dummy, value = line.partition(":")
        if key == "Name":
            current = {"name": value.strip()}
            processes.append(current)
        elif key in ("Uid", "CapEff", "CapBnd", "NoNewPrivs"):
            current[key] = value.split()
    # Leave out the sh and cat of this very command.
    return [p for p in processes if p["name"] not in ("sh", "cat")]


def test_registry_container_is_confined(host):
    registry = inspect(host, "registry-registry-1")
    host_config, config = registry["HostConfig"], registry["Config"]
    assert config["User"] == "%d:%d" % REGISTRY_IDS
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["CapDrop"] == ["ALL"] and not host_config["CapAdd"]
    assert host_config["SecurityOpt"] == ["no-new-privileges:true"]
    assert host_config["Memory"] == 2 << 30
    assert host_config["PidsLimit"] == 1024
    assert host_config["Ulimits"] == [{"Name": "nofile", "Soft": 16384, "Hard": 16384}]


def test_registry_process_has_its_user_and_no_capabilities(host):
    processes = process_status(host, "registry-registry-1")
    registry = [p for p in processes if p["name"] == "registry"]
    assert len(registry) == 1, processes
    assert registry[0]["Uid"] == [str(REGISTRY_IDS[0])] * 4
    assert int(registry[0]["CapEff"][0], 16) == 0 and int(registry[0]["CapBnd"][0], 16) == 0
    assert registry[0]["NoNewPrivs"] == ["1"]


def test_nginx_container_is_confined(host):
    host_config = inspect(host, "registry-proxy-1")["HostConfig"]
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["CapDrop"] == ["ALL"]
    assert sorted(host_config["CapAdd"]) in (sorted(NGINX_CAPABILITIES), sorted("CAP_" + c for c in NGINX_CAPABILITIES))
    assert host_config["SecurityOpt"] == ["no-new-privileges:true"]
    assert host_config["Tmpfs"] == {"/run": "size=1m", "/var/cache/nginx": "size=64m,uid=%d,mode=0700" % NGINX_UID}
    assert host_config["Memory"] == 256 << 20
    assert host_config["PidsLimit"] == 256
    assert host_config["Ulimits"] == [{"Name": "nofile", "Soft": 16384, "Hard": 16384}]


def test_nginx_master_keeps_three_capabilities_and_workers_none(host):
    processes = [p for p in process_status(host, "registry-proxy-1") if p["name"] == "nginx"]
    masters = [p for p in processes if p["Uid"][0] == "0"]
    workers = [p for p in processes if p["Uid"][0] == str(NGINX_UID)]
    assert len(masters) == 1 and workers and len(masters) + len(workers) == len(processes), processes
    expected = sum(1 << bit for bit in NGINX_CAPABILITIES.values())
    assert int(masters[0]["CapEff"][0], 16) == expected
    assert all(int(worker["CapEff"][0], 16) == 0 for worker in workers)


@pytest.mark.parametrize("container, path", [
    ("registry-registry-1", "/etc/written-by-test"),
    ("registry-registry-1", "/tmp/written-by-test"),
    ("registry-proxy-1", "/etc/nginx/written-by-test"),
])
def test_nothing_is_writable_outside_the_mounts_meant_for_it(host, container, path):
    result = run(host, "docker exec %s touch %s", container, path)
    assert result.rc != 0, f"{container} could write {path}"
    assert "Read-only file system" in result.stderr


def auth_mode(host):
    return registry_auth_mode(host.ansible.get_variables())


def test_the_registry_writes_its_storage_and_reads_but_cannot_change_its_configuration(host):
    run_ok(host, "docker exec registry-registry-1 touch /var/lib/registry/.written-by-test")
    run_ok(host, "rm %s/data/.written-by-test", BASE_DIR)
    readable = {"htpasswd": "/auth/htpasswd", "token": "/auth/token-bundle.pem"}[auth_mode(host)]
    for path in (readable, "/etc/distribution/config.yml", "/etc/docker/registry/config.yml"):
        result = run(host, "docker exec registry-registry-1 sh -c 'test ! -e %s || cat %s >/dev/null && ! test -w %s'",
                     path, path, path)
        assert result.rc == 0, f"{path}: {result.stderr}"


@pytest.mark.parametrize("path, owner, mode", [
    (f"{BASE_DIR}/config", ("root", "selfhosted-registry"), 0o750),
    (f"{BASE_DIR}/config/config.yml", ("root", "selfhosted-registry"), 0o640),
    (f"{BASE_DIR}/secrets", ("root", "root"), 0o700),
    (f"{BASE_DIR}/data", ("selfhosted-registry", "selfhosted-registry"), 0o750),
])
def test_owners_and_modes(host, path, owner, mode):
    item = host.file(path)
    assert ((item.user, item.group), item.mode) == (owner, mode)


def test_the_users_file_is_for_whoever_checks_passwords(host):
    """htpasswd mode: the registry reads it; token mode: the token service alone, the registry not even that."""
    if auth_mode(host) == "htpasswd":
        expected = {"auth": (("root", "selfhosted-registry"), 0o750), "auth/htpasswd": (("root", "selfhosted-registry"), 0o640)}
    else:
        expected = {
            "auth": (("root", "selfhosted-registry"), 0o751),
            "auth/htpasswd": (("root", "selfhosted-registry-token"), 0o640),
            "auth/token-bundle.pem": (("root", "selfhosted-registry"), 0o640),
            "token": (("root", "selfhosted-registry-token"), 0o750),
            "token/signing-key.pem": (("selfhosted-registry-token", "selfhosted-registry-token"), 0o400),
            "token/config.json": (("root", "selfhosted-registry-token"), 0o640),
        }
        result = run(host, "docker exec registry-registry-1 cat /auth/htpasswd")
        assert result.rc != 0 and "Permission denied" in result.stderr, "the registry reads the users file in token mode"
    for path, (owner, mode) in expected.items():
        item = host.file(f"{BASE_DIR}/{path}")
        assert ((item.user, item.group), item.mode) == (owner, mode), path


def test_the_token_service_runs_confined_as_its_own_user(host):
    """Token mode: its own user, no network of its own, a read-only system; htpasswd mode: no such service."""
    unit = host.service("selfhosted-registry-token.socket")
    if auth_mode(host) == "htpasswd":
        assert not host.file("/etc/systemd/system/selfhosted-registry-token.service").exists
        return
    assert unit.is_enabled and unit.is_running
    properties = dict(
        line.split("=", 1)
        for line in run_ok(host, "systemctl show selfhosted-registry-token.service "
                                 "-p User -p PrivateNetwork -p ProtectSystem -p NoNewPrivileges -p CapabilityBoundingSet -p ActiveState").splitlines()
    )
    assert properties == {
        "User": "selfhosted-registry-token", "PrivateNetwork": "yes", "ProtectSystem": "strict",
        "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "ActiveState": "active",
    }
    pid = run_ok(host, "systemctl show -p MainPID --value selfhosted-registry-token.service").strip()
    assert run_ok(host, "stat -c %%U /proc/%s", pid).strip() == "selfhosted-registry-token"


def test_the_registry_owns_everything_in_its_storage(host):
    uid, gid = REGISTRY_IDS
    assert run_ok(host, f"find {BASE_DIR}/data ! -uid {uid} -o ! -gid {gid}") == ""
    # ... which is not empty: the client pushed into it.
    assert run_ok(host, f"find {BASE_DIR}/data -type f -name link -print -quit").strip()


def test_the_registry_user_is_a_system_user_without_a_shell(host):
    user = host.user("selfhosted-registry")
    assert (user.uid, user.gid, user.shell) == (*REGISTRY_IDS, "/usr/sbin/nologin")


def confined_part(host, variable: str, compose_name: str, container: str, user: str, memory: int):
    """A part beside the registry (registry_ui_enabled, registry_metrics_enabled): where its variable is on, its
    container runs as `user` with no capability, `no-new-privileges`, `memory` bytes, no port, on backend only, and
    is returned (inspected); off: no container and no compose file, and None."""
    compose_file = host.file(f"{BASE_DIR}/{compose_name}")
    if not host.ansible.get_variables().get(variable, False):
        assert not compose_file.exists
        assert host.run("docker container inspect %s", container).rc != 0
        return None
    assert (compose_file.user, compose_file.group, compose_file.mode) == ("root", "root", 0o640)
    info = inspect(host, container)
    host_config = info["HostConfig"]
    assert info["Config"]["User"] == user
    assert host_config["CapDrop"] == ["ALL"] and not host_config["CapAdd"]
    assert host_config["SecurityOpt"] == ["no-new-privileges:true"]
    assert host_config["Memory"] == memory
    assert not host_config["PortBindings"]
    assert sorted(info["NetworkSettings"]["Networks"]) == ["registry_backend"]
    return info


def test_ui_container_is_confined_where_it_runs(host):
    """registry_ui_enabled: the image's nginx user, no capabilities, network backend only, no port. Its root file
    system stays writable (its start script edits index.html). UI off: no container and no compose file."""
    if confined_part(host, "registry_ui_enabled", "compose.ui.yaml", "registry-ui-1", "%d:%d" % (NGINX_UID, NGINX_UID), 64 << 20):
        processes = process_status(host, "registry-ui-1")
        assert processes and all(p["Uid"] == [str(NGINX_UID)] * 4 and int(p["CapEff"][0], 16) == 0 for p in processes), processes


def test_nginx_exporter_is_confined_where_it_runs(host):
    """registry_metrics_enabled: nobody, no capabilities, read-only, network backend only, no port. Metrics off: no
    container and no compose file."""
    exporter = confined_part(host, "registry_metrics_enabled", "compose.metrics.yaml", "registry-nginx-exporter-1", "65534:65534", 32 << 20)
    if exporter:
        assert exporter["HostConfig"]["ReadonlyRootfs"] is True
