"""Zero downtime: the site playbook runs again while a client pulls in a loop.

The client (files/resilience_client.py `load`) pulls one image (two 2 MiB
layers) by digest with skopeo into a fresh directory (every blob really
transferred and checked against its digest), one pull after another but at
most one a second, and GETs its manifest every 0.25 s (probe). Each change
below runs while the loop runs; the loop goes on for two more pulls after the
change is done. Bounded: the loop stops after 15 minutes or 2000 pulls
whatever happens, each pull after 60 s.

Neither (a) nor (b) may fail a single pull or probe, (a) included,
although it recreates the registry container: the new one starts beside the
old one (test_0_upgrade.py does the same for a new image), and no pushed
image may be lost. (a) also rotates the token signing key
(registry_token_key_rotate: the registry trusts both keys, the new one
signs); (c), the first run after the old key's tokens expired, is in
test_2_zero_downtime_key_expiry.py, after the bad-input cases.
"""

from __future__ import annotations

from conftest import (
    CI_USER,
    PULLER,
    REGISTRY_HOST,
    TOKEN_DIR,
    apply_overrides,
    assert_no_failed_pull,
    containers_of_stack,
    forged_token,
    http_status,
    load_state,
    manifest_path,
    measure,
    pull_all,
    report,
    run_site,
    save_signer,
    served_serial,
    walk_registry,
)

NEW_USER = {"name": "late", "password": "late-test-password"}
REMOVED_USER = CI_USER
NEW_HSTS_MAX_AGE = 600
# A new config.yml (http.draintimeout) and stop grace period: the registry is recreated.
NEW_DRAIN_TIMEOUT = 30
# A secret in the registry's environment (the registry makes no outgoing
# connection with filesystem storage): the run with --diff must not show it.
PROXY_SECRET = "proxy-secret-c0ffee"
TOKEN_SERVICE_PID = "systemctl show --property MainPID --value selfhosted-registry-token.service"


def test_a_users_an_nginx_and_a_registry_setting_changed(client, images):
    """Users, access rules and nginx.conf reach the running services (the users file, the token service restarted
    behind its socket, nginx reloaded); a new config.yml and a new token signing key recreate the registry.

    One site run for all of them, as an operator would change them: no pull
    may fail, the proxy stays, and no pushed image may be lost.
    """
    before = containers_of_stack()
    changes = {
        "registry_users": [PULLER, NEW_USER],
        # Token mode (test_0_upgrade.py switched to it): the new user may push
        # under late/ too.
        "registry_access_rules": [
            {"users": ["*"], "repositories": ["**"], "actions": ["pull", "push"]},
            {"users": [NEW_USER["name"]], "repositories": ["late/*"], "actions": ["pull", "push", "delete"]},
            {"anonymous": True, "repositories": ["load/*"], "actions": ["pull"]},
        ],
        "proxy_hsts_max_age": NEW_HSTS_MAX_AGE,
        "registry_drain_timeout": NEW_DRAIN_TIMEOUT,
        "registry_environment": {"HTTPS_PROXY": f"http://registry:{PROXY_SECRET}@proxy.invalid:3128"},
    }
    label = "(a) user added + user removed + access rules + nginx setting + registry config changed + key rotated"
    token_service_pid = REGISTRY_HOST.out(TOKEN_SERVICE_PID).strip()
    replaced = save_signer()
    assert http_status(client, manifest_path(images[0]), bearer=forged_token(replaced, images[0]))[0] == 200, "a token of the current key is refused"
    # For this run only: the rotation is not a setting the later runs keep.
    rotate = dict(changes, registry_token_key_rotate=True)
    window, run = measure(client, images[0], label, lambda: run_site(rotate, label="a-users-nginx-config-key", diff=True))
    assert run.rc == 0, run.tail()
    assert PROXY_SECRET not in run.output, "--diff showed a value of registry_environment"
    apply_overrides(changes)
    assert_no_failed_pull(window)
    assert http_status(client, "/v2/", NEW_USER["name"], NEW_USER["password"])[0] == 200
    assert http_status(client, "/v2/", REMOVED_USER["name"], REMOVED_USER["password"])[0] == 401
    _status, headers = http_status(client, "/v2/")
    assert headers["strict-transport-security"] == f"max-age={NEW_HSTS_MAX_AGE}"
    # The token service runs again with the new rules.
    assert REGISTRY_HOST.out(TOKEN_SERVICE_PID).strip() not in ("0", token_service_pid), "the token service was not restarted"
    assert '"late/*"' in REGISTRY_HOST.out("cat /opt/registry/token/config.json")
    # Anonymous clients pull what the new rule makes public, and nothing else.
    for image, status in ((images[0], 200), (images[1], 401)):
        assert http_status(client, manifest_path(image))[0] == status, image["ref"]
    # The new key signs, the registry trusts both until the old key's tokens
    # expired: the lifetime (molecule.yml), 60 s of the registry's leeway, 10 s.
    certificate = REGISTRY_HOST.out(f"cat {TOKEN_DIR}/signing-certificate.pem")
    assert certificate != REGISTRY_HOST.out(f"cat {replaced}/signing-certificate.pem"), "the key was not replaced"
    assert REGISTRY_HOST.out("grep -c 'BEGIN CERTIFICATE' /opt/registry/auth/token-bundle.pem").strip() == "2"
    trusted_until = float(REGISTRY_HOST.out(f"stat --format %Y {TOKEN_DIR}/retired/*.pem").strip())
    assert run.start + 60 + 70 - 1 <= trusted_until <= run.end + 60 + 70 + 1, (run.start, trusted_until, run.end)
    assert http_status(client, manifest_path(images[0]), bearer=forged_token(replaced, images[0]))[0] == 200, "the old key's tokens no longer pass"
    after = containers_of_stack()
    assert after["registry"].split()[0] != before["registry"].split()[0], "the registry container was not recreated"
    assert after["proxy"] == before["proxy"], "the proxy container was recreated or restarted"
    # No data lost: every image pushed so far pulls by digest, every link resolves.
    state = load_state()
    failed = {ref: error for ref, error in pull_all(client, state["images"]).items() if error}
    assert not failed, failed
    walk = walk_registry(client)
    report(f"(a) after the changes: {len(state['images'])} images pull by digest; API walk {walk['counts']}")
    assert not walk["errors"], walk["errors"]


def test_b_forced_certificate_renewal(client, images):
    before = containers_of_stack()
    serial_before = served_serial(client)
    ca_bundle = "/usr/local/share/selfhosted-test/pebble-listener-ca.pem"

    def renew():
        return REGISTRY_HOST.run(
            f"env REQUESTS_CA_BUNDLE={ca_bundle} certbot renew --force-renewal --no-random-sleep-on-renew 2>&1",
            check=False,
            timeout=300,
        )

    window, result = measure(client, images[0], "(b) certbot renew --force-renewal", renew)
    assert result.returncode == 0, result.stdout
    assert "selfhosted-registry-reload-proxy" in result.stdout, f"the deploy hook did not run: {result.stdout}"
    assert_no_failed_pull(window)
    assert served_serial(client) != serial_before, "nginx still serves the old certificate"
    assert containers_of_stack() == before
