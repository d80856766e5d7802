"""The registry hosts are Debian servers of the platform's images on its network, healthy after the roles ran.

The platform's own smoke test (it had a scenario of two hosts of its own):
here on this scenario's hosts after converge, which also shows that no unit
the roles installed has failed.
"""

from __future__ import annotations

import json

import pytest

testinfra_hosts = ["ansible://registry"]

RELEASES = {"debian13": "13", "debian12": "12"}


@pytest.fixture(scope="module")
def name(host):
    return host.backend.get_hostname()


def test_systemd_is_pid_1_and_no_unit_failed(host):
    assert host.process.get(pid=1).comm == "systemd"
    state = host.run("systemctl is-system-running")
    assert state.stdout.strip() == "running", host.run("systemctl --failed").stdout


def test_sshd_runs_as_a_service(host):
    assert host.service("ssh").is_running


def test_debian_release_matches_the_image(host, name):
    assert host.file("/etc/debian_version").content_string.startswith(RELEASES[name])


def test_hostname_is_the_platform_name(host, name):
    assert host.check_output("hostname") == name


def test_mirror_serves_the_fixture_images(host):
    # No curl or wget on the hosts: Python's urllib is there.
    catalog = host.check_output(
        "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://mirror:5000/v2/_catalog\").read().decode())'"
    )
    repositories = json.loads(catalog)["repositories"]
    assert {"library/registry", "library/nginx"} <= set(repositories)


def test_hosts_resolve_each_other_and_the_extra_aliases(host):
    for name in ("debian13", "debian12", "client", "registry13.selfhosted.test", "registry12.selfhosted.test"):
        assert host.addr(name).is_resolvable, name
