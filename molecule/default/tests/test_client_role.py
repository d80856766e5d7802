"""The client host as the client role set it up (converge): trust, logins, the Docker Hub mirror.

Nothing here trusts or logs in by hand: Docker Engine, containerd (ctr) and
skopeo use what the role wrote. The mirror's "Docker Hub" is the platform's
image mirror (molecule.yml: registry_mirror_upstream); the client cannot
reach Docker Hub, so a pull that did not go through our mirror fails.
"""

from __future__ import annotations

import json
import os
import pathlib
import tomllib
import uuid

import pytest
import testinfra
from conftest import PEBBLE_ROOT, run_ok

testinfra_hosts = ["ansible://client"]

# Docker Hub images that the platform's mirror serves (tests/platform/platform).
HUB_IMAGES = ("nginx:1.26.3", "registry:2.8.3", "nginx:1.30.6")
MIRROR_STORAGE = "/opt/registry/mirror/data/docker/registry/v2/repositories"


@pytest.fixture(scope="module")
def inventory(request):
    return request.config.option.ansible_inventory


@pytest.fixture(scope="module")
def mirror(inventory):
    """The registry host with the Docker Hub mirror, and the mirror's name."""
    host = testinfra.get_host("ansible://debian13", ansible_inventory=inventory)
    return host, host.ansible.get_variables()["registry_mirror_domain"]


@pytest.fixture(scope="module")
def registries(inventory):
    """{registry_domain: host} of the inventory's registry hosts."""
    found = {}
    for name in ("debian13", "debian12"):
        host = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
        found[host.ansible.get_variables()["registry_domain"]] = host
    return found


def as_user(user, command):
    return "sudo --login --user %s -- sh -c %s" % (user, json.dumps(command))


def test_every_engine_trusts_each_registry_and_the_mirror(host, registries, mirror):
    pebble_root = host.file(PEBBLE_ROOT).content_string.strip()
    for name in [*registries, mirror[1]]:
        for directory in ("/etc/docker/certs.d", "/etc/containerd/certs.d", "/etc/containers/certs.d"):
            ca = host.file(f"{directory}/{name}/ca.crt")
            assert ca.exists and ca.user == "root" and ca.mode == 0o644, ca.path
            assert ca.content_string.strip() == pebble_root, ca.path
        hosts_toml = tomllib.loads(host.file(f"/etc/containerd/certs.d/{name}/hosts.toml").content_string)
        assert hosts_toml["server"] == f"https://{name}"
        assert hosts_toml["host"][f"https://{name}"]["ca"] == f"/etc/containerd/certs.d/{name}/ca.crt"


def test_engines_send_docker_hub_pulls_to_the_mirror(host, mirror):
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon["registry-mirrors"] == [f"https://{mirror[1]}"]
    assert json.loads(run_ok(host, "docker info --format '{{json .RegistryConfig.Mirrors}}'")) == [f"https://{mirror[1]}/"]
    docker_hub = tomllib.loads(host.file("/etc/containerd/certs.d/docker.io/hosts.toml").content_string)
    assert docker_hub["server"] == "https://registry-1.docker.io"
    assert docker_hub["host"][f"https://{mirror[1]}"]["capabilities"] == ["pull", "resolve"]
    podman = tomllib.loads(host.file("/etc/containers/registries.conf.d/50-selfhosted-registry.conf").content_string)
    assert podman["registry"] == [{"prefix": "docker.io", "location": "docker.io", "mirror": [{"location": mirror[1]}]}]


def test_logins_are_in_the_users_docker_config(host, registries):
    config = host.file("/home/deploy/.docker/config.json")
    assert config.user == "deploy" and config.mode == 0o600
    assert host.file("/home/deploy/.docker").mode == 0o700
    auths = json.loads(config.content_string)["auths"]
    assert sorted(auths) == sorted(registries)


def test_a_logged_in_user_pushes_and_pulls_with_docker(host, registries):
    """deploy never ran docker login: the role did, for alice at the Debian 13 registry and ci at the Debian 12 one."""
    for domain in registries:
        tag = f"{domain}/ci/client-role:{uuid.uuid4().hex[:12]}"
        build_dir = f"/tmp/client-role-{uuid.uuid4().hex}"
        run_ok(host, as_user("deploy", f"mkdir -p {build_dir} && head -c 65536 /dev/urandom > {build_dir}/payload"
                                       f" && printf 'FROM scratch\\nCOPY payload /payload\\n' > {build_dir}/Dockerfile"))
        try:
            run_ok(host, as_user("deploy", f"docker build --quiet --tag {tag} {build_dir} && docker push {tag}"))
            digest = run_ok(host, as_user("deploy", f"docker image inspect --format '{{{{index .RepoDigests 0}}}}' {tag}")).strip()
            image_id = run_ok(host, as_user("deploy", f"docker image inspect --format '{{{{.Id}}}}' {tag}")).strip()
            run_ok(host, as_user("deploy", f"docker image rm --force {image_id} && docker pull {digest}"))
        finally:
            host.run(as_user("deploy", f"rm -rf {build_dir}; docker image rm --force {tag}"))


def upstream_address():
    """The platform's image mirror, the mirror's upstream (prepare.yml keeps its address)."""
    return pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "platform-mirror-address").read_text().strip()


def mirrored(mirror_host, image):
    """Whether the mirror stored the tag of a Docker Hub image (library/NAME:TAG)."""
    name, tag = image.split(":")
    return mirror_host.file(f"{MIRROR_STORAGE}/library/{name}/_manifests/tags/{tag}").is_directory


def test_docker_pulls_docker_hub_images_through_the_mirror_also_with_the_upstream_down(host, mirror):
    mirror_host, _name = mirror
    image = HUB_IMAGES[0]
    host.run("docker image rm --force %s", image)
    run_ok(host, "docker pull %s", image)
    assert mirrored(mirror_host, image), "the mirror did not store what it served"
    # The upstream refuses the mirror's connections, as a registry that is down
    # does (a firewall rule on the host, for the mirror alone: other scenarios
    # use the platform's mirror meanwhile).
    upstream = upstream_address()
    refuse = f"DOCKER-USER --destination {upstream} --protocol tcp --jump REJECT --reject-with tcp-reset"
    run_ok(mirror_host, "iptables --insert " + refuse)
    try:
        run_ok(host, "docker image rm %s", image)
        run_ok(host, "docker pull %s", image)
        listing = run_ok(mirror_host, "iptables --list DOCKER-USER --numeric --verbose --exact").splitlines()
        rule = next(line for line in listing if "REJECT" in line and upstream in line)
        assert int(rule.split()[0]) > 0, "the mirror did not try the upstream: " + rule
    finally:
        run_ok(mirror_host, "iptables --delete " + refuse)
        host.run("docker image rm --force %s", image)


def test_containerd_pulls_docker_hub_images_through_the_mirror(host, mirror):
    # Fetched, not unpacked: unpacking needs more privileges than a test host has.
    image = "docker.io/library/" + HUB_IMAGES[1]
    namespace = "selfhosted-test"
    try:
        run_ok(host, "ctr --namespace %s content fetch --hosts-dir /etc/containerd/certs.d %s", namespace, image)
    finally:
        host.run("ctr --namespace %s content ls --quiet | xargs --no-run-if-empty ctr --namespace %s content rm", namespace, namespace)
    assert mirrored(mirror[0], HUB_IMAGES[1])


def test_skopeo_reads_docker_hub_images_through_the_mirror(host, mirror):
    """containers-common's registries.conf.d and certs.d, as Podman reads them."""
    manifest = json.loads(run_ok(host, "skopeo inspect --raw docker://docker.io/library/%s", HUB_IMAGES[2]))
    assert manifest["schemaVersion"] == 2
    assert mirrored(mirror[0], HUB_IMAGES[2])


def test_the_mirror_refuses_pushes_with_a_message(host, mirror):
    output = run_ok(host, "curl --silent --show-error --cacert %s --request POST --write-out '\\n%%{http_code}' "
                          "https://%s/v2/library/pushed/blobs/uploads/", PEBBLE_ROOT, mirror[1])
    body, status = output.rsplit("\n", 1)
    assert status == "405"
    assert json.loads(body)["errors"][0]["code"] == "UNSUPPORTED"
