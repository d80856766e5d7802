"""Zero downtime, continued: the first site run after the key that test_1_zero_downtime.py's (a) replaced expired.

(c) of test_1_zero_downtime.py, in a file of its own so that it runs after
test_2_bad_input.py: the old key's tokens (lifetime + the registry's leeway,
about 140 s after (a)) expire while the bad-input cases run, instead of in a
wait on the lane that ends last. The bad-input cases change nothing (they
fail in the site's check play), so this is still the first run after (a).
"""

from __future__ import annotations

import time

from conftest import (
    PULLER,
    REGISTRY_HOST,
    REPLACED_SIGNER,
    TOKEN_DIR,
    containers_of_stack,
    forged_token,
    http_status,
    manifest_path,
    report,
    run_site,
)

# What the first run after the replaced key's tokens expired changes, and
# nothing else: the key's certificate leaves the registry's trust (the bundle,
# so compose.yaml's label, so a recreate).
KEY_EXPIRY_CHANGES = {
    "selfhosted.registry.registry : Stop trusting them",
    "selfhosted.registry.registry : Give the registry the certificates it trusts tokens from",
    "selfhosted.registry.registry : Write the compose file of the registry",
    "selfhosted.registry.registry : Run the registry (and the Docker Hub mirror)",
}


def test_c_replaced_key_dropped_once_its_tokens_expired_and_nothing_else_changes(client, images):
    """The first site run after the old key's tokens expired stops trusting it: the registry is recreated again.

    A token signed with the old key is refused after. Nothing else changes
    (the scenario's idempotence check): only the tasks that drop the key
    report a change, and no other container restarts. Without the pull loop:
    the recreate is (a)'s and the upgrade's, which count every pull, and no
    client holds a token of the old key any more.
    """
    replaced = REPLACED_SIGNER
    trusted_until = float(REGISTRY_HOST.out(f"stat --format %Y {TOKEN_DIR}/retired/*.pem").strip())
    wait = trusted_until + 1 - time.time()
    assert wait < 200, f"the old key stays trusted {wait:.0f} s more"
    time.sleep(max(0.0, wait))
    before = containers_of_stack()
    run = run_site(label="c-replaced-key-expired")
    report(f"(c) the replaced key's tokens expired: site run {run.seconds:.1f}s, {run.recap.get('debian13')}")
    assert run.rc == 0, run.tail()
    assert run.changed_tasks() == KEY_EXPIRY_CHANGES, f"changed besides dropping the key: {run.changed_tasks() - KEY_EXPIRY_CHANGES}"
    certificate = REGISTRY_HOST.out(f"cat {TOKEN_DIR}/signing-certificate.pem")
    assert REGISTRY_HOST.out("cat /opt/registry/auth/token-bundle.pem") == certificate, "the registry trusts another key"
    assert REGISTRY_HOST.out(f"find {TOKEN_DIR} -name 'next-*' -o -path '*/retired/*'").strip() == "", "a key was left behind"
    assert http_status(client, manifest_path(images[0]), PULLER["name"], PULLER["password"])[0] == 200
    assert http_status(client, manifest_path(images[0]), bearer=forged_token(replaced, images[0]))[0] == 401, "a token of the replaced key passes"
    after = containers_of_stack()
    assert after["registry"].split()[0] != before["registry"].split()[0], "the registry container was not recreated"
    others = {service for service in before if service != "registry"}
    assert {s: after.get(s) for s in others} == {s: before[s] for s in others}, "another container was recreated or restarted"
    REGISTRY_HOST.out(f"rm -rf {replaced}")
