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

import json
import subprocess
import time

import pytest

from conftest import (
    DOCKER,
    DOMAIN,
    NETWORK,
    PEBBLE_ROOT,
    PROJECT_DIR,
    REGISTRY_HOST,
    Container,
    apply_overrides,
    assert_no_failed_pull,
    measure,
    network,
    pull_all,
    push_image,
    report,
    run_site,
    served_serial,
    wait_until_served,
)

BALANCER = Container("lb")
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
    }


def node_certificate() -> str:
    return REGISTRY_HOST.out("cat /opt/registry/tls/fullchain.pem")


def pull_from_node(client: Container, images: list[dict]) -> dict:
    """Pull by digest from debian13 directly: the registry's name pointed at it, its own certificate trusted."""
    client.run(f'printf "%s\\n" "$NODE_CERT" > {NODE_CA}', env={"NODE_CERT": node_certificate()})
    client.run(f"cp /etc/hosts /etc/hosts.resilience && echo '{address(REGISTRY_HOST)} {DOMAIN}' >> /etc/hosts")
    try:
        return pull_all(client, images)
    finally:
        client.run(f"cat /etc/hosts.resilience > /etc/hosts && rm -f /etc/hosts.resilience {NODE_CA}", check=False)


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

    image = push_image(client, "several-nodes/first", layers=2)
    through_balancer = pull_all(client, [image])
    assert not any(through_balancer.values()), through_balancer
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
