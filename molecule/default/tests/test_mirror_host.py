"""The Docker Hub mirror on the Debian 13 host (registry_mirror_domain): confined like the registry, its own
configuration and storage, and the only container with a way out. Its use: test_client_role.py."""

from __future__ import annotations

import json
import os
import pathlib

import yaml
from conftest import run_ok

testinfra_hosts = ["ansible://debian13"]

REGISTRY_IDS = (10500, 10500)  # the role's defaults: registry_uid, registry_gid


def inspect(host, container):
    return json.loads(run_ok(host, "docker inspect %s", container))[0]


def test_mirror_container_is_confined_like_the_registry(host):
    mirror, registry = inspect(host, "registry-mirror-1"), inspect(host, "registry-registry-1")
    assert mirror["Config"]["User"] == "%d:%d" % REGISTRY_IDS
    assert mirror["Config"]["Image"] == registry["Config"]["Image"]
    for key in ("ReadonlyRootfs", "CapDrop", "CapAdd", "SecurityOpt", "Memory", "PidsLimit", "Ulimits"):
        assert mirror["HostConfig"][key] == registry["HostConfig"][key], key
    assert mirror["HostConfig"]["PortBindings"] in ({}, None), "the mirror publishes a port"


def test_only_the_mirror_has_a_way_out(host):
    networks = {name: json.loads(run_ok(host, "docker network inspect %s", name))[0]
                for name in ("registry_backend", "registry_upstream")}
    assert networks["registry_backend"]["Internal"] is True
    assert networks["registry_upstream"]["Internal"] is False
    assert sorted(inspect(host, "registry-mirror-1")["NetworkSettings"]["Networks"]) == ["registry_backend", "registry_upstream"]
    assert sorted(inspect(host, "registry-registry-1")["NetworkSettings"]["Networks"]) == ["registry_backend"]


def test_mirror_configuration(host):
    config_file = host.file("/opt/registry/mirror/config/config.yml")
    assert (config_file.user, config_file.gid, config_file.mode) == ("root", REGISTRY_IDS[1], 0o640)
    config = yaml.safe_load(config_file.content_string)
    upstream = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "platform-mirror-address").read_text().strip()
    assert config["proxy"] == {"remoteurl": f"http://{upstream}:5000", "ttl": "168h"}
    assert "auth" not in config, "registry_mirror_pull anyone: the proxy limits the client networks instead"
    assert "secret" not in config["http"]
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    assert config["storage"]["delete"] == {"enabled": True}, "without it the expiry deletes nothing"
    mounts = {m["Destination"]: m["Source"] for m in inspect(host, "registry-mirror-1")["Mounts"]}
    assert mounts["/var/lib/registry"] == "/opt/registry/mirror/data"
    assert host.file("/opt/registry/mirror/data").user == "selfhosted-registry"


def test_certificate_names_the_mirror_too(host):
    names = run_ok(host, "openssl x509 -in /opt/registry/tls/fullchain.pem -noout -ext subjectAltName")
    assert "DNS:registry13.selfhosted.test" in names and "DNS:mirror13.selfhosted.test" in names
