"""Several nodes: debian13 becomes a node of the registry on S3, behind the balancer on `lb`, which also runs the cache.

- the platform's Ceph (tests/platform/ceph) gives the S3 bucket; the registry's name moves from debian13 to `lb`,
  as a DNS record would;
- one site run with `lb` in the groups registry_balancer and registry_cache: debian13 becomes a node (S3, the
  cache on lb, one HTTP secret, a self-signed certificate for the registry's name), lb gets Valkey, a certificate
  from Pebble (HTTP-01 through haproxy's port 80 to certbot's own listener) and haproxy; a rerun changes nothing;
- through the balancer: a push, then pulls by digest; directly from the node (its own certificate, the same name):
  the same digests pull whole;
- the balancer's certificate renewed under a pull loop: 0 failed pulls, a new serial, haproxy reloaded, not
  restarted;
- haproxy's unit confined, its nodes checked.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import time

import pytest

from conftest import (
    DOCKER,
    DOMAIN,
    MANIFEST_ACCEPT,
    NETWORK,
    PEBBLE_ROOT,
    PULLER,
    PROJECT_DIR,
    REGISTRY_HOST,
    Container,
    Window,
    apply_overrides,
    assert_no_failed_pull,
    containers_of_stack,
    load_loop,
    load_state,
    manifest_path,
    measure,
    network,
    pull_all,
    push_image,
    report,
    run_site,
    save_state,
    served_serial,
    wait_until_served,
)

BALANCER = Container("lb")
# The host test_5_backup_restore.py restored debian13's backup on, stopped since: the second node.
SECOND = Container("restored")
NODES = ["debian13", "restored"]
# molecule.yml's certificates_acme_ca_bundle: certbot's trust for Pebble's API.
PEBBLE_LISTENER_CA = "/usr/local/share/selfhosted-test/pebble-listener-ca.pem"
CEPH = str(PROJECT_DIR / "tests" / "platform" / "ceph")
GROUPS = {"registry_balancer": ["lb"], "registry_cache": ["lb"]}
CACHE_PASSWORD = "resilience-cache-password-0123"  # noqa: S105 (a test value)
HTTP_SECRET = "resilience-http-secret-shared-by-every-node"  # noqa: S105
# The client trusts the node's own certificate for the registry's name here, beside Pebble's root.
NODE_CA = f"/etc/docker/certs.d/{DOMAIN}/node.crt"


def address(container: Container) -> str:
    return container.inspect(f'{{{{(index .NetworkSettings.Networks "{NETWORK}").IPAddress}}}}')


def ceph(*arguments: str) -> str:
    return subprocess.run(["bash", CEPH, *arguments], capture_output=True, text=True, check=True, timeout=300).stdout


@pytest.fixture(scope="module")
def node_settings() -> dict:
    """Ceph started; the registry's name moved to the balancer; the settings that make debian13 a node."""
    ceph("up")
    s3 = dict(line.split("=", 1) for line in ceph("credentials").splitlines() if "=" in line)
    network("disconnect", NETWORK, REGISTRY_HOST.name)
    network("connect", "--alias", "debian13", NETWORK, REGISTRY_HOST.name)
    network("disconnect", NETWORK, BALANCER.name)
    network("connect", "--alias", DOMAIN, "--alias", "lb", NETWORK, BALANCER.name)
    cache = address(BALANCER)
    return {
        "registry_load_balanced": True,
        "registry_http_secret": HTTP_SECRET,
        "registry_storage_driver": "s3",
        "registry_storage_s3_regionendpoint": s3["endpoint"],
        "registry_storage_s3_region": s3["region"],
        "registry_storage_s3_bucket": s3["bucket"],
        "registry_storage_s3_accesskey": s3["accesskey"],
        "registry_storage_s3_secretkey": s3["secretkey"],
        "registry_storage_s3_rootdirectory": "/resilience",
        "registry_storage_s3_secure": False,
        "registry_redis_address": f"{cache}:6379",
        "registry_redis_username": "registry",
        "registry_redis_password": CACHE_PASSWORD,
        "cache_bind_address": cache,
        "cache_password": CACHE_PASSWORD,
        "cache_maxmemory": "64mb",
        "balancer_metrics_enabled": True,
    }


@contextlib.contextmanager
def at_node(client: Container, node: Container):
    """The client meets `node` directly under the registry's name: the name pointed at it, its own certificate trusted."""
    client.run(f'printf "%s\\n" "$NODE_CERT" > {NODE_CA}', env={"NODE_CERT": node.out("cat /opt/registry/tls/fullchain.pem")})
    client.run(f"cp /etc/hosts /etc/hosts.resilience && echo '{address(node)} {DOMAIN}' >> /etc/hosts")
    try:
        yield
    finally:
        client.run(f"cat /etc/hosts.resilience > /etc/hosts && rm -f /etc/hosts.resilience {NODE_CA}", check=False)


def token_at_node(client: Container, repository: str) -> str:
    """A pull token for `repository` from the node the client meets (inside `at_node`)."""
    return json.loads(
        client.out(
            f"curl -fsS --cacert {NODE_CA} -u \"$RESILIENCE_CREDS\""
            f" 'https://{DOMAIN}/auth/token?service={DOMAIN}&scope=repository:{repository}:pull'",
            env={"RESILIENCE_CREDS": f"{PULLER['name']}:{PULLER['password']}"},
        )
    )["token"]


def pull_from_node(client: Container, images: list[dict], node: Container = REGISTRY_HOST) -> dict:
    """Pull by digest from `node` directly."""
    with at_node(client, node):
        return pull_all(client, images)


def test_a_node_behind_the_balancer(client, node_settings):
    started = time.time()
    run = run_site(node_settings, groups=GROUPS, label="several nodes: debian13 a node, lb balancer and cache")
    assert run.rc == 0, run.tail()
    apply_overrides(node_settings)
    assert wait_until_served(client, timeout=120), f"{DOMAIN} is not served through the balancer"
    issuer = client.out(
        f"openssl s_client -connect {DOMAIN}:443 -servername {DOMAIN} -CAfile {PEBBLE_ROOT} -verify_return_error"
        " </dev/null 2>/dev/null | openssl x509 -noout -issuer"
    )
    assert "Pebble" in issuer, f"the balancer does not serve Pebble's certificate: {issuer!r}"
    rerun = run_site(groups=GROUPS, label="several nodes: rerun")
    assert rerun.rc == 0, rerun.tail()
    changed = {host: counts["changed"] for host, counts in rerun.recap.items() if counts.get("changed")}
    assert not changed, f"a rerun changed {changed}: {sorted(rerun.changed_tasks())}"

    image = remember(push_image(client, "several-nodes/first", layers=2))
    through_balancer = pull_all(client, [image])
    assert not any(through_balancer.values()), through_balancer
    # The node sees the client's address, not the balancer's (its per-client limit, the failed logins).
    pulled = [line for line in REGISTRY_HOST.out("docker logs registry-proxy-1 2>&1").splitlines() if manifest_path(image) in line]
    assert pulled and all(line.startswith(address(client) + " ") for line in pulled), pulled[-3:]
    from_node = pull_from_node(client, [image])
    assert not any(from_node.values()), f"pulled through the balancer, not from the node: {from_node}"
    # Every blob is in the bucket, under the test's root directory.
    listing = subprocess.run(
        [DOCKER, "exec", "selfhosted-test-ceph", "radosgw-admin", "bucket", "list", "--bucket", node_settings["registry_storage_s3_bucket"],
         "--max-entries", "10000"],
        capture_output=True, text=True, check=True,
    ).stdout
    stored = {entry["name"] for entry in json.loads(listing)}
    blobs = {f"resilience/docker/registry/v2/blobs/sha256/{digest[7:9]}/{digest[7:]}/data" for digest in image["blobs"]}
    assert blobs <= stored, f"blobs not in the bucket: {sorted(blobs - stored)}"
    report(f"several nodes: debian13 a node on S3 behind lb in {run.seconds:.0f} s (rerun 0 changed); push through lb,"
           f" pull by digest through lb and from the node ({time.time() - started:.0f} s)")


def test_balancer_certificate_renewed_under_load(client):
    image = push_image(client, "several-nodes/load")
    serial = served_serial(client)
    master = BALANCER.out("systemctl show --property MainPID --value haproxy").strip()
    window, renewal = measure(
        client, image, "renewal on the balancer",
        lambda: BALANCER.run(
            f"env REQUESTS_CA_BUNDLE={PEBBLE_LISTENER_CA} certbot renew --force-renewal --no-random-sleep-on-renew --cert-name {DOMAIN} 2>&1",
            check=False,
            timeout=300,
        ),
    )
    assert renewal.returncode == 0, renewal.stdout[-2000:]
    assert_no_failed_pull(window)
    # Every connection: an old worker that kept serving would give some the old one.
    serials = {served_serial(client) for attempt in range(8)}
    assert serial not in serials and len(serials) == 1, f"the balancer serves {serials}, was {serial}"
    assert BALANCER.out("systemctl show --property MainPID --value haproxy").strip() == master, "haproxy was restarted"
    report(f"{window.summary()}; the balancer's certificate renewed, haproxy reloaded (same master)")


def test_balancer_confined():
    unit = BALANCER.out("systemctl show haproxy --property NoNewPrivileges,ProtectSystem,CapabilityBoundingSet,MemoryMax")
    assert "NoNewPrivileges=yes" in unit and "ProtectSystem=strict" in unit, unit
    assert "cap_net_bind_service" in unit and "cap_kill" in unit, unit
    assert "cap_sys_admin" not in unit and "cap_dac_override" not in unit, unit
    assert "MemoryMax=536870912" in unit, unit
    # The master stays root (ports, key, reloads); the one worker that meets clients does not, and the workers
    # of the configurations before the reloads have gone.
    deadline = time.time() + 60
    while (users := sorted(BALANCER.out("ps -o user= -C haproxy").split())) != ["haproxy", "root"] and time.time() < deadline:
        time.sleep(2)
    assert users == ["haproxy", "root"], f"haproxy's processes run as {users}"


def remember(image: dict) -> dict:
    """Keep an image pushed to the bucket for the later tests of this file (the state's images are on debian13's disk)."""
    state = load_state()
    state.setdefault("several_nodes_images", []).append(image)
    save_state(state)
    return image


def images_pushed_here() -> list[dict]:
    return load_state().get("several_nodes_images", [])


def balancer_servers() -> dict:
    """haproxy's view of its nodes: name -> {status, sessions served}, from its runtime socket."""
    script = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock');"
        " s.sendall(b'show stat\\n'); data = b''\n"
        "while chunk := s.recv(65536): data += chunk\n"
        "print(data.decode())"
    )
    lines = BALANCER.out(f"python3 -c {shlex.quote(script)}").splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line.startswith("nodes,")]
    return {row["svname"]: {"status": row["status"], "sessions": int(row["stot"] or 0)} for row in rows if row["svname"] != "BACKEND"}


def wait_for_balancer(status: dict, timeout: float = 180) -> dict:
    """Wait until haproxy sees each node in `status` (name -> UP or DOWN) so; its view at the end."""
    deadline = time.time() + timeout
    while (servers := balancer_servers()) and any(servers.get(name, {}).get("status", "").split(" ")[0] != want for name, want in status.items()):
        if time.time() > deadline:
            break
        time.sleep(1)
    return servers


def test_a_second_node_joins_under_load(client):
    """restored (debian13's backup, stopped since test_5) joins: 0 failed pulls, debian13's stack untouched, one key."""
    subprocess.run([DOCKER, "start", SECOND.name], capture_output=True, check=True)
    # It still answers to the registry's name from test_5: only to its own from now on.
    network("disconnect", NETWORK, SECOND.name)
    network("connect", "--alias", "restored", NETWORK, SECOND.name)
    SECOND.run("systemctl is-system-running --wait", check=False, timeout=180)
    image = remember(push_image(client, "several-nodes/join"))
    stack = containers_of_stack()
    window, run = measure(
        client, image, "a second node joins", lambda: run_site(groups=GROUPS, registry_hosts=NODES, label="several nodes: restored joins")
    )
    assert run.rc == 0, run.tail()
    assert_no_failed_pull(window)
    assert containers_of_stack() == stack, "debian13's stack changed when restored joined"
    signer = "cat /opt/registry/token/signing-certificate.pem"
    assert SECOND.out(signer) == REGISTRY_HOST.out(signer), "the nodes sign tokens with different keys"
    servers = wait_for_balancer({"debian13": "UP", "restored": "UP"})
    assert {name: server["status"] for name, server in servers.items()} == {"debian13": "UP", "restored": "UP"}, servers
    failed = {node.name: pull_from_node(client, [image], node) for node in (REGISTRY_HOST, SECOND)}
    assert not any(error for pulls in failed.values() for error in pulls.values()), failed
    # The balancer's metrics show each node's state.
    metrics = BALANCER.out("python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:9146/metrics\").read().decode())'")
    up = sorted(
        re.search(r'server="([^"]+)"', line).group(1)
        for line in metrics.splitlines()
        if line.startswith("haproxy_server_status{") and 'proxy="nodes"' in line and 'state="UP"' in line and line.endswith(" 1")
    )
    assert up == NODES, f"the balancer's metrics show these nodes up: {up}"
    report(f"{window.summary()}; restored joined in {run.seconds:.0f} s (debian13 untouched, one signing key), both UP, pulls from each")


def test_a_token_from_one_node_opens_the_other(client):
    image = images_pushed_here()[-1]
    repository = image["ref"].partition("/")[2].partition("@")[0]
    with at_node(client, REGISTRY_HOST):
        token = token_at_node(client, repository)
    with at_node(client, SECOND):
        status = client.out(
            f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {NODE_CA} -H \"Authorization: Bearer $TOKEN\""
            f" -H {shlex.quote('Accept: ' + MANIFEST_ACCEPT)} 'https://{DOMAIN}{manifest_path(image)}'",
            env={"TOKEN": token},
        )
    assert status == "200", f"restored answers {status} to a token from debian13"


def test_a_node_killed_and_back_under_load(client):
    """docker kill restored, then start it: pulls that retry (as docker's do) never fail; the node comes back by itself."""
    image = images_pushed_here()[-1]
    with load_loop(client, image, "a node killed and back", pull_retries=2) as loop:
        start = time.time()
        subprocess.run([DOCKER, "kill", SECOND.name], capture_output=True, check=True)
        killed = time.time()
        down = wait_for_balancer({"restored": "DOWN"}, timeout=30)
        out = time.time()
        loop.wait_for_pulls(3, after=time.time(), timeout=120)
        subprocess.run([DOCKER, "start", SECOND.name], capture_output=True, check=True)
        back = wait_for_balancer({"restored": "UP"}, timeout=240)
        rejoined = time.time()
        loop.wait_for_pulls(3, after=rejoined, timeout=120)
        end = time.time()
    window = Window("a node killed and back", start, end, loop.records())
    report(window.summary())
    assert down["restored"]["status"].startswith("DOWN"), down
    assert back["restored"]["status"] == "UP", back
    assert not window.failed("pull"), f"failed pulls: {window.failure_details('pull')}"
    # A probe is one request, never tried again: only those the kill cut, before haproxy took the node out.
    late = [a for a in window.failed("probe") if a.start > killed + 5]
    assert not late, f"probes failed after the node was out: {window.failure_details('probe')}"
    sessions = balancer_servers()["restored"]["sessions"]
    report(f"restored out {out - killed:.1f} s after the kill, back {rejoined - killed:.0f} s after it;"
           f" probes cut by the kill: {len(window.failed('probe'))}; restored served {sessions} sessions")


def test_storage_stopped_answers_errors_not_hangs(client):
    """radosgw stopped for 20 s: every request ends within 10 s, with an error; all is well again by itself."""
    image = images_pushed_here()[-1]
    with load_loop(client, image, "radosgw stopped") as loop:
        start = time.time()
        ceph("stop-rgw")
        time.sleep(20)
        ceph("start-rgw")
        restarted = time.time()
        recovered = loop.wait_until_pulls_succeed(2, after=restarted, timeout=120)
        end = time.time()
    window = Window("radosgw stopped 20 s", start, end, loop.records())
    report(window.summary())
    assert recovered, "pulls do not succeed again after radosgw is back"
    slow = [a for a in window.during("probe") if a.end - a.start > 10]
    assert not slow, f"requests that hung while radosgw was stopped: {[(a.end - a.start, a.detail) for a in slow[:3]]}"
    seen = sorted({a.detail[:60] for a in window.failed("probe")})
    assert window.failed("probe"), "no request failed while the storage was stopped: the check cannot see the outage"
    report(f"radosgw stopped 20 s: clients saw {seen[:3]}; pulls again {recovered - restarted:.1f} s after it was back")


def test_cache_stopped_costs_nothing(client):
    """Valkey stopped on lb: pulls and a push go on."""
    image = images_pushed_here()[-1]
    window, pushed = measure(
        client, image, "the cache stopped",
        lambda: (BALANCER.run("systemctl stop valkey-server"), remember(push_image(client, "several-nodes/without-cache")))[1],
    )
    BALANCER.run("systemctl start valkey-server")
    assert_no_failed_pull(window)
    assert not any(pull_all(client, [pushed]).values()), "an image pushed while the cache was down does not pull"


def node_answers(client: Container, node: Container, repository: str, paths: list[str]) -> dict:
    """path -> HTTP status of a HEAD at `node` directly, with a pull token for `repository` from that node."""
    with at_node(client, node):
        token = token_at_node(client, repository)
        statuses = client.out(
            "for path in " + " ".join(shlex.quote(path) for path in paths) + "; do"
            f" curl -sS -o /dev/null -w '%{{http_code}}\\n' --head --cacert {NODE_CA} -H \"Authorization: Bearer $TOKEN\""
            f" -H {shlex.quote('Accept: ' + MANIFEST_ACCEPT)} \"https://{DOMAIN}$path\"; done",
            env={"TOKEN": token},
        ).split()
    return dict(zip(paths, statuses))


def test_garbage_collection_across_both_nodes(client, node_settings):
    """The garbage_collect playbook on both nodes under a pull loop, with a retention policy: 0 failed pulls; what only
    an untagged image had is gone from both nodes at once (the shared cache flushed); the image that replaced it pulls
    from both; of two tags the policy keeps the newer (push dates read in the bucket). Run with -vvv, which shows
    every task's arguments: no secret of the inventory is among them (the cache's password, the S3 secret key, the HTTP
    secret, a user's password)."""
    repository = "several-nodes/gc"
    replaced = push_image(client, repository, tag="latest", layer_bytes=1 << 16)
    kept = remember(push_image(client, repository, tag="latest", layer_bytes=1 << 16))
    # A push takes more than the second that S3's dates count in.
    for tag in ("old", "new"):
        push_image(client, repository, tag=tag, layer_bytes=1 << 12)
    blob = f"/v2/{repository}/blobs/{{}}"
    gone, still = [blob.format(d) for d in replaced["blobs"]], [blob.format(d) for d in kept["blobs"]]
    # Both nodes have answered for the replaced blobs, so that the cache holds them.
    for node in (REGISTRY_HOST, SECOND):
        assert set(node_answers(client, node, repository, gone).values()) == {"200"}
    window, run = measure(
        client,
        images_pushed_here()[0],
        "garbage collection across the nodes",
        lambda: run_site(
            {"registry_retention_policies": [{"repositories": [repository], "keep_newest": 1}]},
            play="selfhosted.registry.garbage_collect",
            registry_hosts=NODES,
            groups=GROUPS,
            label="several nodes: garbage collection",
            verbosity=3,
        ),
    )
    assert run.rc == 0, run.tail()
    secret_values = {name: node_settings[name] for name in ("registry_redis_password", "registry_storage_s3_secretkey", "registry_http_secret")}
    secret_values["a user's password"] = PULLER["password"]
    shown = [name for name, value in secret_values.items() if value in run.output]
    assert shown == [], f"at -vvv the output shows {shown}"
    assert_no_failed_pull(window)
    # The collecting node reports what it deleted, as a single host does.
    reported = re.search(r"garbage-collect: \d+ blobs in use, (\d+) blobs and (\d+) manifests deleted", run.output)
    assert reported and int(reported.group(1)) >= len(gone), run.tail(60)
    assert re.search(rf"Deleted 1 tags:.*{repository}:old \(sha256:", run.output, re.DOTALL), run.tail(60)
    tags = [f"/v2/{repository}/manifests/{tag}" for tag in ("old", "new")]
    for node in (REGISTRY_HOST, SECOND):
        answers = node_answers(client, node, repository, gone + still + tags)
        assert {answers[path] for path in gone} == {"404"}, f"{node.name} still answers for collected blobs: {answers}"
        assert {answers[path] for path in still} == {"200"}, f"{node.name} lost blobs of the kept image: {answers}"
        assert [answers[path] for path in tags] == ["404", "200"], f"{node.name}: the tags old and new answer {answers}"
    failed = {node.name: pull_from_node(client, [kept], node) for node in (REGISTRY_HOST, SECOND)}
    assert not any(error for pulls in failed.values() for error in pulls.values()), failed
    report(
        f"{window.summary()}; collected on debian13 in a window on both nodes: {len(gone)} blobs gone from both, the kept"
        " image pulls from each; retention deleted the older of two tags"
    )


def test_key_rotated_and_a_node_drained_under_load(client):
    """One site run under a pull loop: the token key rotated on both nodes, restored drained at the balancer."""
    image = images_pushed_here()[0]
    signer = "cat /opt/registry/token/signing-certificate.pem"
    before = REGISTRY_HOST.out(signer)
    window, run = measure(
        client,
        image,
        "the key rotated, restored drained",
        lambda: run_site(
            {"registry_token_key_rotate": True},
            registry_hosts=NODES,
            groups=GROUPS,
            host_vars={"restored": {"registry_node_drained": True}},
            label="several nodes: key rotated, restored drained",
        ),
    )
    assert run.rc == 0, run.tail()
    assert_no_failed_pull(window)
    after = REGISTRY_HOST.out(signer)
    assert after != before and SECOND.out(signer) == after, "the nodes do not both sign with the new key"
    servers = balancer_servers()
    assert servers["restored"]["status"].startswith("MAINT") and servers["debian13"]["status"] == "UP", servers
    served = servers["restored"]["sessions"]
    assert not any(pull_all(client, [image]).values())
    assert balancer_servers()["restored"]["sessions"] == served, "the drained node still gets requests"
    report(f"{window.summary()}; both nodes sign with the new key, restored drained (no new requests)")


def test_a_drained_node_removed_under_load(client):
    """restored taken out of group registry: 0 failed pulls, the balancer forgets it, debian13 untouched."""
    image = images_pushed_here()[0]
    stack = containers_of_stack()
    window, run = measure(
        client, image, "restored removed", lambda: run_site(registry_hosts=["debian13"], groups=GROUPS, label="several nodes: restored removed")
    )
    assert run.rc == 0, run.tail()
    assert_no_failed_pull(window)
    assert list(balancer_servers()) == ["debian13"], balancer_servers()
    assert BALANCER.out("ls /etc/haproxy/selfhosted-registry-nodes").split() == ["debian13.pem"]
    assert containers_of_stack() == stack, "debian13's stack changed when restored was removed"
    report(f"{window.summary()}; restored removed, debian13 untouched")
