"""Upgrade from registry 2.8 to 3.x while a client pulls: nothing lost, no failed pull.

The scenario converges the host on registry 2.8.3 (molecule.yml). Images go
in first: several repositories, a multi-arch image index and one large
layer. Then the site playbook runs with `registry_image: registry:3.1.1`
(the role's default) while the client pulls in a loop. The registry role
starts the new container beside the old one and stops the old one only once
the new one is healthy and nginx has found it, so no pull or probe may fail.
Afterwards every digest pushed before pulls again (every platform of the
index, every byte of the large layer), the configuration is where 3.x reads
it and nowhere else, and authentication is still on.

What the store holds is first given to root, as versions of the collection
that ran the registry as root left it: the upgrade run gives it to the registry's user in
place (the pull loop keeps reading meanwhile), and everything in it belongs
to that user afterwards.

The later test files run on the upgraded host: registry 3.1.1 from here on.
"""

from __future__ import annotations

import json

from conftest import (
    CI_USER,
    DOMAIN,
    PULLER,
    REGISTRY_HOST,
    apply_overrides,
    assert_no_failed_pull,
    containers_of_stack,
    http_status,
    load_state,
    measure,
    pull_all,
    push_image,
    report,
    run_site,
    save_state,
    walk_registry,
)

OLD_IMAGE = "registry:2.8.3"
NEW_IMAGE = "registry:3.1.1"
CONTAINER = "registry-registry-1"
# Above the 1000 MiB limit of the tutorial's nginx would cost a minute more
# per pull; what matters here is a layer stored as many chunks by 2.8.
LARGE_LAYER_BYTES = 600 << 20
DATA_DIR = "/opt/registry/data"
REGISTRY_IDS = (10500, 10500)  # the registry role's registry_uid, registry_gid


def registry_version() -> str:
    return REGISTRY_HOST.out(f"docker exec {CONTAINER} registry --version").strip()


def test_upgrade_from_2_8_to_3_loses_nothing_and_fails_no_pull(client, images):
    before = containers_of_stack()
    assert before["registry"].split()[1] == OLD_IMAGE, f"the scenario must start on {OLD_IMAGE}: {before}"
    assert "2.8.3" in registry_version()

    # What a 2.8 user has stored: the session's images (several repositories),
    # a multi-arch index and a large layer.
    index = push_image(client, "multi/arch", layers=1, layer_bytes=1 << 20, platforms="amd64,arm64,arm")
    large = push_image(client, "big/layer", layers=1, layer_bytes=LARGE_LAYER_BYTES, timeout=600)
    state = load_state()
    state["images"].append(index)
    save_state(state)
    stored = load_state()["images"] + [large]

    # What is in the store as a root-run registry wrote it (files 0644, directories 0755, still readable by
    # the registry that runs now; its top directory, which an earlier role made root's, keeps its owner here:
    # made root's, it would shut out the running registry, which a real old host runs as root).
    REGISTRY_HOST.out(f"chown -R 0:0 {DATA_DIR}/docker")
    # The TLS files as earlier releases left them: links into certbot's live/ (the run makes them copies).
    REGISTRY_HOST.out(f"for f in fullchain.pem privkey.pem; do ln -sfn /etc/letsencrypt/live/{DOMAIN}/$f /opt/registry/tls/$f; done")
    window, run = measure(client, images[0], "upgrade 2.8.3 -> 3.1.1", lambda: run_site({"registry_image": NEW_IMAGE}, label="upgrade"))
    assert run.rc == 0, run.tail()
    apply_overrides({"registry_image": NEW_IMAGE})
    assert_no_failed_pull(window)

    after = containers_of_stack()
    assert after["registry"].split()[0] != before["registry"].split()[0], "the registry container was not recreated"
    assert after["registry"].split()[1] == NEW_IMAGE
    assert after["proxy"] == before["proxy"], "the proxy container was recreated or restarted"
    assert "3.1.1" in registry_version()
    foreign = REGISTRY_HOST.out(f"find {DATA_DIR} ! -uid {REGISTRY_IDS[0]} -o ! -gid {REGISTRY_IDS[1]}")
    assert not foreign, f"not given to the registry's user: {foreign[:2000]}"
    assert REGISTRY_HOST.out(f"docker inspect --format '{{{{.Config.User}}}}' {CONTAINER}").strip() == "%d:%d" % REGISTRY_IDS
    links = REGISTRY_HOST.out("find /opt/registry/tls -type l")
    assert not links, f"links into /etc/letsencrypt left in tls/: {links}"

    # Every digest stored by 2.8 pulls from 3.1.1, every link of the API resolves.
    failed = {ref: error for ref, error in pull_all(client, stored).items() if error}
    assert not failed, failed
    walk = walk_registry(client)
    assert not walk["errors"], walk["errors"]
    report(f"upgrade: {len(stored)} images stored by 2.8.3 pull by digest from 3.1.1; API walk {walk['counts']}")
    drop_large_image()


def drop_large_image() -> None:
    """The large image has served its purpose: out of the store, so the later tests that copy all of it (onto a
    tmpfs, into the backup, onto the restored host) do not copy 600 MiB each time; it was never in the state."""
    v2 = f"{DATA_DIR}/docker/registry/v2"
    REGISTRY_HOST.out(
        f"rm -rf {v2}/repositories/big && find {v2}/blobs -name data -size +{(LARGE_LAYER_BYTES >> 20) - 1}M -printf '%h\\n' | xargs -r rm -rf"
    )
    assert not REGISTRY_HOST.out(f"find {v2}/blobs -name data -size +100M"), "the large layer is still stored"


def test_the_2_x_config_location_is_no_trap():
    """3.x reads /etc/distribution/config.yml, and the container is told so; nothing sits at the 2.x path."""
    info = json.loads(REGISTRY_HOST.out(f"docker inspect {CONTAINER}"))[0]
    assert info["Config"]["Cmd"] == ["/etc/distribution/config.yml"], info["Config"]["Cmd"]
    destinations = {mount["Destination"] for mount in info["Mounts"]}
    assert "/etc/distribution" in destinations
    assert not any(d.startswith("/etc/docker") for d in destinations), destinations
    assert REGISTRY_HOST.run(f"docker exec {CONTAINER} test -e /etc/docker/registry/config.yml", check=False).returncode != 0


def test_authentication_and_private_ports_survive_the_upgrade(client):
    status, headers = http_status(client, "/v2/")
    assert status == 401, f"anonymous /v2/ answered {status} after the upgrade"
    assert headers.get("www-authenticate", "").startswith("Basic ")
    # 3.x has a debug server with metrics; it must stay off: nothing but :5000
    # listens (besides Docker's embedded DNS on 127.0.0.11, in every container).
    listening = REGISTRY_HOST.out(f"docker exec {CONTAINER} netstat -ltn")
    addresses = [line.split()[3] for line in listening.splitlines() if line.startswith("tcp")]
    ports = sorted({address.rsplit(":", 1)[1] for address in addresses if not address.startswith("127.0.0.11:")})
    assert ports == ["5000"], listening


def test_switch_to_token_authentication_keeps_every_password(client):
    """An htpasswd deployment (the scenario starts as one) moves to token authentication, the role's default.

    Every user logs in with the password they had; every image pulls; the
    registry now challenges for a token and no longer reads the users file.
    The later test files run in token mode.
    """
    assert http_status(client, "/v2/")[1].get("www-authenticate", "").startswith("Basic ")
    users = [PULLER, CI_USER]  # molecule.yml's registry_users
    run = run_site({"registry_auth_mode": "token"}, label="switch-to-token")
    assert run.rc == 0, run.tail()
    apply_overrides({"registry_auth_mode": "token"})

    status, headers = http_status(client, "/v2/")
    assert status == 401 and headers["www-authenticate"] == f'Bearer realm="https://{DOMAIN}/auth/token",service="{DOMAIN}"'
    for user in users:
        assert http_status(client, "/v2/", user["name"], user["password"])[0] == 200, user["name"]
    assert http_status(client, "/v2/", PULLER["name"], "not-the-password")[0] == 401
    failed = {ref: error for ref, error in pull_all(client, load_state()["images"]).items() if error}
    assert not failed, failed
    walk = walk_registry(client)
    assert not walk["errors"], walk["errors"]
    report(f"switch to token authentication: {len(users)} users log in with their passwords; API walk {walk['counts']}")
