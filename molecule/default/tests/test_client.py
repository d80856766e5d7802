"""From a separate client on the network, as a user: TLS, login, push, pull, big layers, renewal.

Runs on the client container once per registry host (fixture `registry`).
Trust: Pebble's issuing root in /etc/docker/certs.d/<domain>/ca.crt (docker,
skopeo) and /usr/local/share/selfhosted-test/pebble-root.pem (curl, openssl).
"""

from __future__ import annotations

import base64
import json
import shlex
import time
import uuid

import pytest
from conftest import PEBBLE_ROOT, curl_headers, role_defaults, run_ok

testinfra_hosts = ["ansible://client"]

# One layer of incompressible data, larger than 1 GiB (nginx's old 1000m limit).
BIG_LAYER_BYTES = 1100 * 1024 * 1024
BIG_IMAGE_DIR = "/var/tmp/selfhosted-test-big-image"


def served_certificate(client, domain):
    """The server certificate nginx presents (PEM), verified against Pebble's root."""
    output = run_ok(
        client,
        "openssl s_client -connect %s:443 -servername %s -CAfile %s -verify_return_error -verify_hostname %s </dev/null 2>/dev/null",
        domain,
        domain,
        PEBBLE_ROOT,
        domain,
    )
    begin = output.index("-----BEGIN CERTIFICATE-----")
    end = output.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return output[begin:end] + "\n"


def certificate_field(client, pem, *options):
    return run_ok(client, "echo %s | openssl x509 -noout " + " ".join(options), pem).strip()


def container_state(registry):
    return run_ok(registry.host, "docker inspect --format '{{.Id}} {{.State.StartedAt}}' registry-registry-1 registry-proxy-1").splitlines()


# --- TLS -------------------------------------------------------------------------------------


def test_certificate_is_issued_by_pebble(host, registry):
    pem = served_certificate(host, registry.domain)
    assert "Pebble Intermediate CA" in certificate_field(host, pem, "-issuer")
    assert f"DNS:{registry.domain}" in certificate_field(host, pem, "-ext", "subjectAltName")


def test_tls_with_the_system_trust_only_fails(host, registry):
    """Pebble's root is not a public CA: without it, clients refuse the certificate."""
    result = host.run("curl --silent --output /dev/null https://%s/v2/", registry.domain)
    assert result.rc == 60  # peer certificate cannot be authenticated


# --- HTTP --------------------------------------------------------------------------------------


def token_status(client, registry, user, password, scope=None):
    """Status and body of a token request to /auth/token with basic auth, as docker makes it."""
    query = f"service={registry.domain}" + (f"&scope={scope}" if scope else "")
    result = client.run(
        "curl --silent --show-error --cacert %s --user %s --write-out '\n%%{http_code}' %s",
        PEBBLE_ROOT, f"{user}:{password}", f"https://{registry.domain}/auth/token?{query}",
    )
    assert result.rc == 0, result.stderr
    body, _sep, status = result.stdout.rpartition("\n")
    return int(status), body


def authorization(client, registry, user, scope=None):
    """The Authorization header that lets `user` in the registry's way: basic auth, or a token from /auth/token."""
    if registry.auth_mode == "htpasswd":
        return "Basic " + base64.b64encode(f"{user['name']}:{user['password']}".encode()).decode()
    status, body = token_status(client, registry, user["name"], user["password"], scope)
    assert status == 200, body
    return "Bearer " + json.loads(body)["token"]


def credentials(client, registry, user, scope=None):
    """curl arguments with that header."""
    return ["--header", "Authorization: " + authorization(client, registry, user, scope)]


def test_unauthenticated_request_is_challenged(host, registry):
    status, headers = curl_headers(host, f"https://{registry.domain}/v2/")
    assert status == 401
    if registry.auth_mode == "token":
        assert headers["www-authenticate"] == f'Bearer realm="https://{registry.domain}/auth/token",service="{registry.domain}"'
    else:
        assert headers["www-authenticate"].startswith("Basic realm=")
    assert headers["docker-distribution-api-version"] == "registry/2.0"


def test_wrong_password_is_refused(host, registry):
    user = registry.users[0]["name"]
    if registry.auth_mode == "token":
        status, body = token_status(host, registry, user, "not-the-password")
        assert status == 401 and json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
        return
    status, headers = curl_headers(host, "--user", f"{user}:not-the-password", f"https://{registry.domain}/v2/")
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic realm=")
    assert headers["docker-distribution-api-version"] == "registry/2.0"


def test_right_password_is_accepted(host, registry):
    status, headers = curl_headers(host, *credentials(host, registry, registry.users[0]), f"https://{registry.domain}/v2/")
    assert status == 200
    assert headers["docker-distribution-api-version"] == "registry/2.0"


def token_claims(authorization_header):
    """The claims of a bearer token (not verified: the registry does that)."""
    payload = authorization_header.split(" ", 1)[1].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_rights_follow_the_access_rules(host, registry):
    """Token mode: ci pulls anything but pushes only under ci/ (molecule.yml's rules); htpasswd mode: anywhere."""
    ci = next(user for user in registry.users if user["name"] == "ci")
    for repository, may_push in ((f"team/{uuid.uuid4().hex[:12]}", registry.auth_mode == "htpasswd"), (f"ci/{uuid.uuid4().hex[:12]}", True)):
        header = authorization(host, registry, ci, f"repository:{repository}:pull,push")
        if registry.auth_mode == "token":
            assert token_claims(header)["access"] == [
                {"type": "repository", "name": repository, "actions": ["pull", "push"] if may_push else ["pull"]}
            ]
        status, headers = curl_headers(host, "--header", f"Authorization: {header}", "--request", "POST",
                                       f"https://{registry.domain}/v2/{repository}/blobs/uploads/")
        assert status == (202 if may_push else 401), (repository, status)
        if status == 202:
            curl_headers(host, "--header", f"Authorization: {header}", "--request", "DELETE", f"https://{registry.domain}{headers['location']}")


def test_catalog_only_for_the_users_allowed(host, registry):
    alice, ci = registry.users[0], next(user for user in registry.users if user["name"] == "ci")
    for user, allowed in ((alice, True), (ci, registry.auth_mode == "htpasswd")):
        status, _headers = curl_headers(host, *credentials(host, registry, user, "registry:catalog:*"), f"https://{registry.domain}/v2/_catalog")
        assert status == (200 if allowed else 401), user["name"]


def test_registry_port_is_closed_from_outside(host, registry):
    for url in (f"http://{registry.domain}:5000/v2/", f"https://{registry.domain}:5000/v2/"):
        result = host.run("curl --silent --max-time 10 --output /dev/null %s", url)
        assert result.rc in (7, 28), f"{url} answered (curl exit {result.rc})"  # 7: refused, 28: timeout


def test_http_redirects_to_https(host, registry):
    status, headers = curl_headers(host, f"http://{registry.domain}/v2/some/path?x=1")
    assert status == 301
    assert headers["location"] == f"https://{registry.domain}/v2/some/path?x=1"


def test_http_serves_acme_challenges_without_redirect(host, registry):
    token = uuid.uuid4().hex
    directory = "/opt/registry/acme/.well-known/acme-challenge"
    run_ok(registry.host, "mkdir -p %s && echo %s > %s/%s", directory, token, directory, token)
    try:
        body = run_ok(host, "curl --silent --show-error --fail http://%s/.well-known/acme-challenge/%s", registry.domain, token)
        assert body.strip() == token
    finally:
        registry.host.run("rm -f %s/%s", directory, token)
    status, _headers = curl_headers(host, f"http://{registry.domain}/.well-known/acme-challenge/{uuid.uuid4().hex}")
    assert status == 404


def test_other_names_are_refused(host, registry):
    """Only the registry's name is served: no certificate for another name, no answer for another Host."""
    address = run_ok(host, "getent hosts %s", registry.domain).split()[0]
    other = "not-the-registry.selfhosted.test"
    # TLS for another name (SNI): the handshake is refused, no certificate shown.
    result = host.run("curl --silent --insecure --output /dev/null --resolve %s:443:%s https://%s/v2/", other, address, other)
    assert result.rc == 35, f"TLS for {other} was not refused (curl exit {result.rc})"
    # Another Host over a connection made for the registry's name: 421 Misdirected Request.
    status, _headers = curl_headers(host, "--header", f"Host: {other}", f"https://{registry.domain}/v2/")
    assert status == 421
    # Plain HTTP for another name, or by address: the connection closes without an answer.
    for url in (f"http://{address}/v2/", f"http://{other}/"):
        result = host.run("curl --silent --output /dev/null --resolve %s:80:%s %s", other, address, url)
        assert result.rc == 52, f"{url} answered (curl exit {result.rc})"  # 52: empty reply


def test_forwarded_headers_of_clients_do_not_reach_the_registry(host, registry):
    """The registry's URLs and log hold what nginx saw, not what a client claims in forwarded headers.

    Upload locations are relative (http.relativeurls): right for the name
    and port the client used, with no host a header could name.
    """
    user = registry.users[0]
    forged = "203.0.113.66"
    repository = f"forwarded/{uuid.uuid4().hex[:12]}"
    auth = credentials(host, registry, user, f"repository:{repository}:pull,push")
    status, headers = curl_headers(
        host,
        *auth,
        "--request", "POST",
        "--header", f"X-Forwarded-For: {forged}",
        "--header", "X-Forwarded-Host: evil.selfhosted.test",
        "--header", "X-Forwarded-Proto: http",
        "--header", "Forwarded: for=203.0.113.66;host=evil.selfhosted.test;proto=http",
        f"https://{registry.domain}/v2/{repository}/blobs/uploads/",
    )
    assert status == 202, headers
    location = headers["location"]
    try:
        assert location.startswith(f"/v2/{repository}/blobs/uploads/"), location
    finally:
        curl_headers(host, *auth, "--request", "DELETE", f"https://{registry.domain}{location}")
    logs = run_ok(registry.host, "docker logs registry-registry-1 2>&1")
    assert repository in logs, "the upload is not in the registry's log"
    assert forged not in logs, "the registry logged the address a client forged"


# --- limits per client -----------------------------------------------------------------------

# The proxy role's defaults, which the registry hosts of this scenario keep.
PROXY_DEFAULTS = role_defaults("proxy")
CLIENT_HEADER_TIMEOUT = PROXY_DEFAULTS["proxy_client_header_timeout"]
REQUESTS_PER_CLIENT = PROXY_DEFAULTS["proxy_requests_per_client"]

# Sends the start of a request's headers and waits: seconds until nginx
# closes the connection.
SLOW_HEADERS = r"""
import socket, ssl, sys, time
domain, cafile = sys.argv[1:3]
context = ssl.create_default_context(cafile=cafile)
with context.wrap_socket(socket.create_connection((domain, 443), timeout=60), server_hostname=domain) as tls:
    tls.sendall(("GET /v2/ HTTP/1.1\r\nHost: %s\r\n" % domain).encode())
    start = time.monotonic()
    try:
        while tls.recv(4096):
            pass
    except (ssl.SSLError, ConnectionError):
        pass
    print(round(time.monotonic() - start, 1))
"""

# Opens COUNT upload sessions, then sends a PATCH to each on its own
# connection without the body, so that every request stays in progress;
# prints the statuses nginx answered at once (None: still waiting), then
# cancels the sessions.
HELD_REQUESTS = r"""
import http.client, json, socket, ssl, sys, time
domain, auth, cafile, repository, count = sys.argv[1:5] + [int(sys.argv[5])]
context = ssl.create_default_context(cafile=cafile)
api = http.client.HTTPSConnection(domain, context=context, timeout=30)
locations = []
for _ in range(count):
    api.request("POST", "/v2/%s/blobs/uploads/" % repository, headers={"Authorization": auth})
    response = api.getresponse()
    response.read()
    assert response.status == 202, response.status
    locations.append(response.getheader("Location"))
api.close()
held = []
for location in locations:
    tls = context.wrap_socket(socket.create_connection((domain, 443), timeout=30), server_hostname=domain)
    tls.sendall(("PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n"
                 "Content-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\n" % (location, domain, auth)).encode())
    held.append(tls)
time.sleep(3)
statuses = []
for tls in held:
    # Readable may mean TLS 1.3 session tickets only: no answer yet.
    tls.setblocking(False)
    try:
        statuses.append(int(tls.recv(64).split()[1]))
    except ssl.SSLWantReadError:
        statuses.append(None)
    tls.close()
api = http.client.HTTPSConnection(domain, context=context, timeout=30)
for location in locations:
    api.request("DELETE", location, headers={"Authorization": auth})
    api.getresponse().read()
print(json.dumps(statuses))
"""


def test_slow_request_headers_are_cut_off(host, registry):
    """A client that sends its headers slowly loses the connection after the header timeout, not nginx's 60 s."""
    seconds = float(run_ok(host, "python3 -c %s %s %s", SLOW_HEADERS, registry.domain, PEBBLE_ROOT))
    assert CLIENT_HEADER_TIMEOUT - 1 <= seconds <= CLIENT_HEADER_TIMEOUT + 8, seconds


def test_requests_in_progress_per_client_are_limited(host, registry):
    """Beyond the limit, requests of one client get 429 at once; those within it are all served."""
    extra = 8
    repository = f"limits/{uuid.uuid4().hex[:12]}"
    output = run_ok(
        host, "python3 -c %s %s %s %s %s %s",
        HELD_REQUESTS, registry.domain, authorization(host, registry, registry.users[0], f"repository:{repository}:pull,push"),
        PEBBLE_ROOT, repository, str(REQUESTS_PER_CLIENT + extra),
    )
    statuses = json.loads(output)
    assert statuses.count(429) == extra, statuses
    assert statuses.count(None) == REQUESTS_PER_CLIENT, statuses


# --- docker, skopeo, crane -------------------------------------------------------------------------


def write_build_dir(client, build_dir, size):
    """A Dockerfile for an image of one layer: `size` random bytes."""
    run_ok(
        client,
        "mkdir -p {d} && head -c {size} /dev/urandom > {d}/payload && printf 'FROM scratch\\nCOPY payload /payload\\n' > {d}/Dockerfile".format(
            d=build_dir, size=size),
    )


def docker_login(client, registry, user):
    run_ok(client, "echo %s | docker login --username %s --password-stdin %s", user["password"], user["name"], registry.domain)


def test_docker_login_build_push_pull_by_digest(host, registry):
    user = registry.users[0]
    tag = f"{registry.domain}/smoke/built:{uuid.uuid4().hex[:12]}"
    build_dir = f"/var/tmp/build-{uuid.uuid4().hex}"
    write_build_dir(host, build_dir, 1048576)
    try:
        docker_login(host, registry, user)
        run_ok(host, "docker build --quiet --tag %s %s", tag, build_dir)
        image_id = run_ok(host, "docker image inspect --format '{{.Id}}' %s", tag).strip()
        run_ok(host, "docker push %s", tag)
        digests = json.loads(run_ok(host, "docker image inspect --format '{{json .RepoDigests}}' %s", tag))
        repository = tag.rsplit(":", 1)[0]
        pushed = [d for d in digests if d.startswith(f"{repository}@sha256:")]
        assert pushed, digests
        # By ID: the tag and the digest reference go, and with them the image.
        run_ok(host, "docker image rm --force %s", image_id)
        assert host.run("docker image inspect %s", image_id).rc != 0, "the image is still there locally"
        run_ok(host, "docker pull %s", pushed[0])
        assert run_ok(host, "docker image inspect --format '{{.Id}}' %s", pushed[0]).strip() == image_id
    finally:
        host.run("docker logout %s", registry.domain)
        host.run("rm -rf %s", build_dir)


def test_anonymous_pulls_only_what_the_rules_make_public(host, registry):
    """Token mode: an image under public/ pulls without login, one elsewhere does not; htpasswd mode: nothing without login."""
    user = registry.users[0]
    build_dir = f"/var/tmp/build-{uuid.uuid4().hex}"
    name = uuid.uuid4().hex[:12]
    public, private = f"{registry.domain}/public/{name}:1", f"{registry.domain}/smoke/{name}:1"
    write_build_dir(host, build_dir, 4096)
    try:
        docker_login(host, registry, user)
        run_ok(host, "docker build --quiet --tag %s --tag %s %s", public, private, build_dir)
        run_ok(host, "docker push --quiet %s && docker push --quiet %s", public, private)
        run_ok(host, "docker logout %s", registry.domain)
        run_ok(host, "docker image rm %s %s", public, private)
        anonymous_public = host.run("docker pull --quiet %s", public)
        assert (anonymous_public.rc == 0) == (registry.auth_mode == "token"), anonymous_public.stderr
        anonymous_private = host.run("docker pull --quiet %s", private)
        assert anonymous_private.rc != 0
        # docker's words: "denied"/"unauthorized" after a token request, "no basic auth credentials" in htpasswd mode.
        assert any(words in anonymous_private.stderr for words in ("denied", "unauthorized", "no basic auth credentials")), anonymous_private.stderr
    finally:
        host.run("docker logout %s", registry.domain)
        host.run("docker image rm %s %s", public, private)
        host.run("rm -rf %s", build_dir)


def crane(client, user, *args):
    """crane as `user` (its own credentials file), trusting Pebble's root the way Go programs do; the command's result."""
    config = f"/var/tmp/crane-{user['name']}"
    environment = f"DOCKER_CONFIG={config} SSL_CERT_FILE={PEBBLE_ROOT}"
    if not client.file(f"{config}/config.json").exists:
        run_ok(client, "mkdir -p %s && echo %s | env " + environment + " crane auth login --username %s --password-stdin %s",
               config, user["password"], user["name"], args[-1].split("/")[0])
    return client.run("env " + environment + " crane " + shlex.join(args))


def test_clients_get_what_the_rules_allow(host, registry):
    """docker, skopeo and crane as ci, who pulls everything but pushes only under ci/ and deletes nothing (token mode;
    htpasswd mode: everything), and as alice, who deletes where deletes are on.

    Refusals must reach the user as the client reports them: denied or unauthorized, never a success.
    """
    alice, ci = registry.users[0], next(user for user in registry.users if user["name"] == "ci")
    token_mode = registry.auth_mode == "token"
    refused = ("denied", "unauthorized", "UNAUTHORIZED", "DENIED")
    name = uuid.uuid4().hex[:12]
    pushed, elsewhere, own = (f"{registry.domain}/{path}/{name}:1" for path in ("smoke", "team", "ci"))
    build_dir = f"/var/tmp/build-{uuid.uuid4().hex}"
    write_build_dir(host, build_dir, 65536)
    try:
        docker_login(host, registry, alice)
        run_ok(host, "docker build --quiet --tag %s --tag %s %s", pushed, elsewhere, build_dir)
        run_ok(host, "docker push --quiet %s", pushed)
        run_ok(host, "docker logout %s && docker image rm %s", registry.domain, pushed)
        docker_login(host, registry, ci)
        # Pulls: docker, and crane's digest the same.
        run_ok(host, "docker pull --quiet %s", pushed)
        digest = run_ok(host, "docker image inspect --format '{{index .RepoDigests 0}}' %s", pushed).strip().split("@")[1]
        assert crane(host, ci, "digest", pushed).stdout.strip() == digest
        # Pushes: nowhere but under ci/ in token mode.
        denied_push = host.run("docker push --quiet %s", elsewhere)
        assert (denied_push.rc == 0) != token_mode, denied_push.stderr
        if token_mode:
            assert any(words in denied_push.stderr for words in refused), denied_push.stderr
        copied = crane(host, ci, "copy", pushed, own)
        assert copied.rc == 0, copied.stderr
        assert crane(host, ci, "digest", own).stdout.strip() == digest
        # Deletes: never ci's (token mode); alice's where the registry has them on.
        for client_delete in (
            lambda: host.run("skopeo delete --creds %s docker://%s", f"{ci['name']}:{ci['password']}", own),
            lambda: crane(host, ci, "delete", f"{own.rsplit(':', 1)[0]}@{digest}"),
        ):
            result = client_delete()
            if token_mode:
                assert result.rc != 0 and any(words in result.stderr for words in refused), result.stderr
        deleted = crane(host, alice, "delete", f"{pushed.rsplit(':', 1)[0]}@{digest}")
        assert (deleted.rc == 0) == registry.deletes, deleted.stderr
        gone = host.run("skopeo inspect --raw --creds %s docker://%s", f"{alice['name']}:{alice['password']}", pushed)
        assert (gone.rc != 0) == registry.deletes, gone.stdout
    finally:
        host.run("docker logout %s", registry.domain)
        host.run("docker image rm %s %s", pushed, elsewhere)
        host.run("rm -rf %s /var/tmp/crane-%s /var/tmp/crane-%s", build_dir, alice["name"], ci["name"])


@pytest.fixture(scope="module")
def big_image(host):
    """An OCI layout with one gzip layer of random data larger than 1 GiB, made once on the client.

    The gzip stream uses level 0 (stored blocks): fast to make, and skopeo keeps
    an already gzip-compressed layer as it is instead of compressing it again.
    """
    script = f"""
import gzip, hashlib, json, os
out = {BIG_IMAGE_DIR!r}
os.makedirs(out + "/blobs/sha256", exist_ok=True)
raw, tmp = hashlib.sha256(), out + "/layer.tmp"
with open(tmp, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=0, mtime=0) as z:
    left = {BIG_LAYER_BYTES}
    while left:
        chunk = os.urandom(min(left, 8 << 20))
        raw.update(chunk)
        z.write(chunk)
        left -= len(chunk)
def blob(data=None, path=None):
    h = hashlib.sha256()
    if path:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(8 << 20), b""):
                h.update(chunk)
        size = os.path.getsize(path)
        os.rename(path, out + "/blobs/sha256/" + h.hexdigest())
    else:
        h.update(data)
        size = len(data)
        with open(out + "/blobs/sha256/" + h.hexdigest(), "wb") as f:
            f.write(data)
    return {{"digest": "sha256:" + h.hexdigest(), "size": size}}
layer = dict(blob(path=tmp), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
config = json.dumps({{"architecture": "amd64", "os": "linux",
                      "rootfs": {{"type": "layers", "diff_ids": ["sha256:" + raw.hexdigest()]}}}}).encode()
config = dict(blob(data=config), mediaType="application/vnd.oci.image.config.v1+json")
manifest = json.dumps({{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": config, "layers": [layer]}}).encode()
manifest = dict(blob(data=manifest), mediaType="application/vnd.oci.image.manifest.v1+json",
                annotations={{"org.opencontainers.image.ref.name": "big"}})
with open(out + "/index.json", "w") as f:
    json.dump({{"schemaVersion": 2, "manifests": [manifest]}}, f)
with open(out + "/oci-layout", "w") as f:
    json.dump({{"imageLayoutVersion": "1.0.0"}}, f)
print(json.dumps(layer))
"""
    host.run("rm -rf %s", BIG_IMAGE_DIR)
    layer = json.loads(run_ok(host, "python3 -c %s", script))
    yield layer
    host.run("rm -rf %s", BIG_IMAGE_DIR)


def test_skopeo_pushes_a_layer_over_1_gib(host, registry, big_image):
    assert big_image["size"] > 1024**3
    user = registry.users[0]
    repository = f"smoke/big-{uuid.uuid4().hex[:8]}"
    run_ok(
        host,
        "skopeo copy --quiet --dest-creds %s oci:%s:big docker://%s/%s:big",
        f"{user['name']}:{user['password']}",
        BIG_IMAGE_DIR,
        registry.domain,
        repository,
    )
    manifest = json.loads(run_ok(host, "skopeo inspect --raw --creds %s docker://%s/%s:big", f"{user['name']}:{user['password']}", registry.domain, repository))
    assert [layer["digest"] for layer in manifest["layers"]] == [big_image["digest"]]
    status, headers = curl_headers(
        host, "--head", *credentials(host, registry, user, f"repository:{repository}:pull"),
        f"https://{registry.domain}/v2/{repository}/blobs/{big_image['digest']}",
    )
    assert status == 200
    assert int(headers["content-length"]) == big_image["size"]


# --- renewal -----------------------------------------------------------------------------------


def test_renewal_is_served_without_restart(host, registry):
    """certbot renew on the host: its deploy hook reloads nginx, which serves the new certificate."""
    before_serial = certificate_field(host, served_certificate(host, registry.domain), "-serial")
    before_containers = container_state(registry)
    ca_bundle = registry.host.ansible.get_variables()["certificates_acme_ca_bundle"]
    output = run_ok(registry.host, "env REQUESTS_CA_BUNDLE=%s certbot renew --force-renewal --no-random-sleep-on-renew 2>&1", ca_bundle)
    assert "selfhosted-registry-reload-proxy" in output, f"the deploy hook did not run: {output}"
    serial = before_serial
    for _attempt in range(20):
        serial = certificate_field(host, served_certificate(host, registry.domain), "-serial")
        if serial != before_serial:
            break
        time.sleep(1)
    assert serial != before_serial, "nginx still serves the old certificate"
    assert container_state(registry) == before_containers


def test_a_stale_certificate_is_served_after_the_next_certbot_run(host, registry):
    """A reload after a renewal failed: the check that ends every certbot.service run makes nginx serve tls/ again.

    Stands in for a failed reload: tls/ gets the lineage's previous certificate
    (after the renewal above) without a reload; the served one is then stale.
    The check runs as certbot.service runs it after `certbot renew` (whose own
    decision to renew depends on the CA's validity periods, not on this test).
    """
    domain = registry.domain
    tls = "/opt/registry/tls"
    check = "/usr/local/sbin/selfhosted-registry-reload-proxy --if-stale"
    assert check in run_ok(registry.host, "systemctl show certbot.service --property=ExecStartPost")
    served_before = served_certificate(host, domain)
    # Written in place (same inode) and left with the modification time of
    # what it replaces, as two writes within one second leave a file: nginx
    # 1.27.2 and later keep such a certificate from before a reload, unless
    # told not to (the proxy role's nginx.conf).
    loaded = run_ok(registry.host, "stat --format %%Y %s/fullchain.pem", tls).strip()
    run_ok(registry.host, "cp /etc/letsencrypt/archive/%s/fullchain1.pem %s/fullchain.pem", domain, tls)
    run_ok(registry.host, "cp /etc/letsencrypt/archive/%s/privkey1.pem %s/privkey.pem", domain, tls)
    run_ok(registry.host, "touch --no-create --date @%s %s/fullchain.pem %s/privkey.pem", loaded, tls, tls)
    stale = run_ok(registry.host, "cat %s/fullchain.pem", tls).split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    try:
        assert served_certificate(host, domain) == served_before != stale, "nginx reloaded by itself, or the lineage has one version"
        output = run_ok(registry.host, check)
        assert "serves another certificate than" in output and "reloaded nginx" in output, output
        # The script returns once new connections get the certificate of the disk.
        assert f"serves the certificate of {tls} now" in output, output
        assert served_certificate(host, domain) == stale
        # Once more: nothing stale, nothing reloaded, the end date printed.
        output = run_ok(registry.host, check)
        assert f"serves the certificate of {tls} (notAfter=" in output and "reloaded" not in output, output
    finally:
        run_ok(registry.host, "cp /etc/letsencrypt/live/%s/fullchain.pem /etc/letsencrypt/live/%s/privkey.pem %s/", domain, domain, tls)
        run_ok(registry.host, check)


# --- logins ------------------------------------------------------------------------------------
# Last in this file: the failed logins below lock this client's address out
# of new logins on the registry host for a minute.

REGISTRY_DEFAULTS = role_defaults("registry")


def test_a_burst_of_good_logins_is_not_limited(host, registry):
    """30 logins, 10 at a time, as a CI runner starting many pulls makes them: all pass."""
    user = registry.users[0]
    url = f"https://{registry.domain}/auth/token?service={registry.domain}" if registry.auth_mode == "token" else f"https://{registry.domain}/v2/"
    output = run_ok(
        host,
        "seq 30 | xargs -P 10 -I{} curl --silent --output /dev/null --write-out '%%{http_code}\\n' --cacert %s --user %s %s",
        PEBBLE_ROOT, f"{user['name']}:{user['password']}", url,
    )
    assert output.split() == ["200"] * 30, output


def test_failed_logins_are_limited(host, registry):
    """Token mode: after the limit of failures, logins from the address are refused unchecked; one checked before passes."""
    limit = REGISTRY_DEFAULTS["registry_login_failures_limit"]
    alice = registry.users[0]
    if registry.auth_mode == "htpasswd":
        # The registry checks every request's password itself: nothing counts failures.
        statuses = [curl_headers(host, "--user", f"mallory:guess-{number}", f"https://{registry.domain}/v2/")[0] for number in range(limit + 3)]
        assert statuses == [401] * (limit + 3)
        return
    statuses = [token_status(host, registry, "mallory", f"guess-{number}")[0] for number in range(limit + 3)]
    # test_wrong_password_is_refused failed once from this address too, maybe
    # within the window still: the limit comes after limit - 1 or limit guesses.
    first_refused = statuses.index(429) if 429 in statuses else len(statuses)
    assert limit - 1 <= first_refused <= limit, statuses
    assert statuses == [401] * first_refused + [429] * (len(statuses) - first_refused)
    assert token_status(host, registry, alice["name"], alice["password"])[0] == 200
