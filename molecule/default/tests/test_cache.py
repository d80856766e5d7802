"""The cache role on the client host (group registry_cache): Valkey as the nodes of one registry share it.

Converged by the site playbook (its reruns in apply and check mode change
nothing: molecule.yml's SELFHOSTED_TEST_RERUNS). The registry's own use of
such a cache (a blob deleted through one node, gone on the other; outages) is
tests/integration/registry_cluster; here: the role's confinement, its one
user and its reach.
"""

from __future__ import annotations

import os
import pathlib

import pytest
import testinfra

testinfra_hosts = ["ansible://client"]

CONFIG = "/etc/valkey/selfhosted-registry.conf"


@pytest.fixture(scope="module")
def settings(host):
    """cache_bind_address (molecule.yml reads it from the file prepare.yml writes: testinfra gets the
    template, not its value) and cache_password."""
    address = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "client-address").read_text().strip()
    return address, host.ansible.get_variables()["cache_password"]


def cli(host, address, *command, user=None, password=None):
    """valkey-cli's answer (stdout and stderr) to one command at the address, as `user` or unauthenticated."""
    words = ["valkey-cli", "-h", address, "--no-auth-warning", *(["--user", user, "--pass", password] if user else []), *command]
    done = host.run(" ".join(["%s"] * len(words)), *words)
    return (done.stdout + done.stderr).strip()


def test_valkey_runs_confined_with_nothing_persisted(host, settings):
    address, password = settings
    service = host.service("valkey-server")
    assert service.is_running and service.is_enabled
    shown = dict(
        line.split("=", 1)
        for line in host.check_output("systemctl show valkey-server -p User -p MemoryMax -p ReadOnlyPaths -p ExecStart -p CapabilityBoundingSet").splitlines()
    )
    assert shown["User"] == "valkey" and shown["MemoryMax"] == str(512 * 1024 * 1024)
    assert "/etc/valkey" in shown["ReadOnlyPaths"] and CONFIG in shown["ExecStart"]
    assert shown["CapabilityBoundingSet"] == ""
    config = host.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("root", "valkey", 0o640)
    assert password not in config.content_string, "the configuration holds the password"
    assert 'save ""' in config.content_string and "appendonly no" in config.content_string
    listening = {line.split()[3].rsplit(":", 1)[0] for line in host.check_output("ss -Hltn 'sport = :6379'").splitlines()}
    assert listening <= {address, "127.0.0.1", "[::1]"} and address in listening, listening


def test_only_the_registry_user_gets_in_and_may_flush_but_not_administer(host, settings):
    address, password = settings
    assert "NOAUTH" in cli(host, address, "PING"), "the default user gets in"
    assert "WRONGPASS" in cli(host, address, "PING", user="registry", password=password + "x")
    as_registry = {"user": "registry", "password": password}
    assert cli(host, address, "SET", "selfhosted-test", "1", **as_registry) == "OK"
    assert cli(host, address, "GET", "selfhosted-test", **as_registry) == "1"
    assert cli(host, address, "FLUSHDB", **as_registry) == "OK"
    assert cli(host, address, "GET", "selfhosted-test", **as_registry) == ""
    for command in (("CONFIG", "SET", "save", "60 1"), ("SHUTDOWN",), ("ACL", "LIST"), ("KEYS", "*")):
        assert "NOPERM" in cli(host, address, *command, **as_registry), command
    assert "maxmemory:67108864" in cli(host, address, "INFO", "memory", **as_registry).replace("\r", "")


def test_a_registry_node_reaches_it(request, settings):
    """From debian13, as a node's registry would: its address and port, the user's password."""
    address, password = settings
    node = testinfra.get_host("ansible://debian13", ansible_inventory=request.config.option.ansible_inventory)
    script = (
        "import socket,sys;"
        "s=socket.create_connection((sys.argv[1],6379),5);"
        "w=[b'AUTH',b'registry',sys.argv[2].encode()];"
        "s.sendall(b'*3\\r\\n'+b''.join(b'$%d\\r\\n%s\\r\\n'%(len(x),x) for x in w)+b'PING\\r\\n');"
        "import time;time.sleep(0.5);print(s.recv(100))"
    )
    answer = node.check_output("python3 -c %s %s %s", script, address, password)
    assert answer == "b'+OK\\r\\n+PONG\\r\\n'", answer
