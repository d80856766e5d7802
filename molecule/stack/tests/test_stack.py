"""Verify the registry behind nginx from the outside, as a client of the host would."""

from __future__ import annotations

import json
import shlex
import uuid

import pytest

BASE_DIR = "/opt/registry"


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def domain(hostvars):
    return hostvars["registry_domain"]


@pytest.fixture(scope="module")
def user(hostvars):
    return hostvars["stack_test_users"][0]


def run_ok(host, command, *args):
    result = host.run(command, *args)
    assert result.rc == 0, f"{result.command!r} failed ({result.rc}): {result.stderr or result.stdout}"
    return result.stdout


def curl_headers(host, *args):
    """Status line and headers of one request, header names in lowercase."""
    output = run_ok(host, "curl --silent --show-error --output /dev/null --dump-header - " + shlex.join(args))
    lines = output.replace("\r", "").strip().splitlines()
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def inspect(host, name):
    return json.loads(run_ok(host, "docker inspect %s", name))[0]


def test_only_the_proxy_publishes_ports(host):
    registry = inspect(host, "registry-registry-1")
    assert registry["HostConfig"]["PortBindings"] in (None, {})
    assert not any(registry["NetworkSettings"]["Ports"].values())
    proxy = inspect(host, "registry-proxy-1")
    published = {port: [b["HostPort"] for b in bindings] for port, bindings in proxy["NetworkSettings"]["Ports"].items() if bindings}
    assert set(published) == {"80/tcp", "443/tcp"}
    assert all(ports for ports in published.values())


def test_registry_is_only_on_the_internal_backend_network(host):
    registry = inspect(host, "registry-registry-1")
    assert list(registry["NetworkSettings"]["Networks"]) == ["registry_backend"]
    backend = json.loads(run_ok(host, "docker network inspect registry_backend"))[0]
    assert backend["Internal"] is True


def test_files_are_owned_and_private(host):
    for path, mode in [
        (f"{BASE_DIR}/config/config.yml", 0o600),
        (f"{BASE_DIR}/secrets/http_secret", 0o600),
        (f"{BASE_DIR}/auth/htpasswd", 0o600),
        (f"{BASE_DIR}/compose.yaml", 0o640),
        (f"{BASE_DIR}/compose.proxy.yaml", 0o644),
        (f"{BASE_DIR}/nginx/nginx.conf", 0o644),
    ]:
        file = host.file(path)
        assert file.is_file, path
        assert (file.user, file.group, file.mode) == ("root", "root", mode), path


def test_config_has_the_kept_secret(host):
    secret = host.file(f"{BASE_DIR}/secrets/http_secret").content_string.strip()
    assert len(secret) == 64
    assert f"secret: {secret}" in host.file(f"{BASE_DIR}/config/config.yml").content_string


def test_directories_are_mounted_not_files(host):
    mounts = {m["Destination"]: m for m in inspect(host, "registry-registry-1")["Mounts"]}
    assert mounts["/auth"]["Source"] == f"{BASE_DIR}/auth"
    assert mounts["/etc/docker/registry"]["Source"] == f"{BASE_DIR}/config"
    mounts = {m["Destination"]: m for m in inspect(host, "registry-proxy-1")["Mounts"]}
    assert mounts["/etc/nginx/selfhosted"]["Source"] == f"{BASE_DIR}/nginx"
    assert mounts["/etc/nginx/tls"]["RW"] is False


def test_registry_is_healthy(host):
    assert inspect(host, "registry-registry-1")["State"]["Health"]["Status"] == "healthy"


def test_unauthenticated_request_is_challenged(host, domain):
    status, headers = curl_headers(host, f"https://{domain}/v2/")
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="Registry"'
    assert headers["docker-distribution-api-version"] == "registry/2.0"
    assert headers["strict-transport-security"].startswith("max-age=")


def test_authenticated_request_succeeds(host, domain, user):
    status, headers = curl_headers(host, "--user", f"{user['name']}:{user['password']}", f"https://{domain}/v2/")
    assert status == 200
    assert headers["docker-distribution-api-version"] == "registry/2.0"


def test_wrong_password_is_refused(host, domain, user):
    status, _ = curl_headers(host, "--user", f"{user['name']}:wrong", f"https://{domain}/v2/")
    assert status == 401


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_tls_versions(host, domain, version):
    status, _ = curl_headers(host, f"--tlsv{version}", "--tls-max", version, f"https://{domain}/v2/")
    assert status == 401


def test_only_current_tls_is_configured(host):
    config = host.file(f"{BASE_DIR}/nginx/nginx.conf").content_string
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in config


def test_http_redirects_to_https(host, domain):
    status, headers = curl_headers(host, f"http://{domain}/v2/some/path?x=1")
    assert status == 301
    assert headers["location"] == f"https://{domain}/v2/some/path?x=1"


def test_http_serves_acme_challenges(host, domain):
    token = uuid.uuid4().hex
    directory = f"{BASE_DIR}/acme/.well-known/acme-challenge"
    run_ok(host, f"mkdir -p {directory} && echo {token} > {directory}/{token}")
    try:
        body = run_ok(host, "curl --silent --show-error --fail http://%s/.well-known/acme-challenge/%s", domain, token)
        assert body.strip() == token
    finally:
        host.run(f"rm -f {directory}/{token}")


def test_docker_login_push_pull(host, domain, user):
    repository = f"{domain}/smoke/registry"
    run_ok(host, "echo %s | docker login --username %s --password-stdin %s", user["password"], user["name"], domain)
    run_ok(host, "docker tag registry:2.8.3 %s:pushed", repository)
    run_ok(host, "docker push %s:pushed", repository)
    digests = json.loads(run_ok(host, "docker inspect --format '{{json .RepoDigests}}' %s:pushed", repository))
    pushed = [digest for digest in digests if digest.startswith(f"{repository}@sha256:")]
    assert pushed, digests
    digest = pushed[0]
    run_ok(host, "docker rmi %s:pushed", repository)
    run_ok(host, "docker pull %s", digest)
    run_ok(host, "docker logout %s", domain)
