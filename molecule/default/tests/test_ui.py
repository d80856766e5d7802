"""The web UI (registry_ui_enabled), from the client as a user with a browser.

Headless Chromium (selfhosted-test-browse, tests/platform/images/client)
opens https://<registry domain>/ through the proxy, answers the login prompt
with a user's password and reads what the page shows. Its screenshots are
kept in ~/.cache/selfhosted-test/logs/ui-*.png on the machine that runs the
tests. The Debian 12 host keeps the UI off (the default): its name serves
the API and nothing else, as before.
"""

from __future__ import annotations

import base64
import json
import pathlib
import shlex
import urllib.parse
import uuid

import pytest
from conftest import PEBBLE_ROOT, curl_headers, registry_hosts, run_ok

testinfra_hosts = ["ansible://client"]

# The home of the browser's user, who added Pebble's root to their browser
# (its NSS database), and of one who did not.
TRUSTING_HOME = "/var/tmp/selfhosted-test-browser"
UNTRUSTING_HOME = "/var/tmp/selfhosted-test-browser-untrusting"
SCREENSHOTS = pathlib.Path.home() / ".cache" / "selfhosted-test" / "logs"
# An image of the platform's mirror, copied to the registry for the UI to show.
SOURCE_IMAGE = "docker://mirror:5000/library/nginx:1.30.6"


@pytest.fixture(scope="module")
def ui_registry(request):
    """The registry host with the UI on (molecule.yml: the Debian 13 host)."""
    registries = [registry for registry in registry_hosts(request.config) if registry.ui]
    assert registries, "no registry host of the scenario has registry_ui_enabled (molecule.yml)"
    return registries[0]


@pytest.fixture(scope="module")
def browse(host):
    """browse(url, user=None, expect=(), screenshot=None, home=TRUSTING_HOME): the browser's report."""
    run_ok(host, "rm -rf {0} {1} && mkdir -p {0}/.pki/nssdb {1}/.pki/nssdb"
           " && certutil -d sql:{0}/.pki/nssdb -N --empty-password"
           " && certutil -d sql:{0}/.pki/nssdb -A -t C,, -n selfhosted-test-pebble -i {2}"
           .format(TRUSTING_HOME, UNTRUSTING_HOME, PEBBLE_ROOT))

    def open_page(url, user=None, expect=(), screenshot=None, home=TRUSTING_HOME):
        command = ["env", f"HOME={home}", "selfhosted-test-browse", url, "--timeout", "45"]
        if user:
            command += ["--user", user["name"], "--password", user["password"]]
        for text in expect:
            command += ["--expect", text]
        if screenshot:
            command += ["--screenshot", f"{home}/screenshot.png"]
        report = json.loads(run_ok(host, shlex.join(command)))
        if screenshot:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            png = base64.b64decode(run_ok(host, "base64 -w0 %s", f"{home}/screenshot.png"))
            (SCREENSHOTS / f"ui-{screenshot}.png").write_bytes(png)
        return report

    yield open_page
    host.run("rm -rf %s %s", TRUSTING_HOME, UNTRUSTING_HOME)


def user(registry, name):
    return next(user for user in registry.users if user["name"] == name)


@pytest.fixture(scope="module")
def pushed(host, ui_registry):
    """A repository alice pushed for the UI to show: its name."""
    repository = f"ui-test/{uuid.uuid4().hex[:12]}"
    alice = user(ui_registry, "alice")
    run_ok(host, "skopeo copy --quiet --src-tls-verify=false --dest-creds %s %s %s",
           f"alice:{alice['password']}", SOURCE_IMAGE, f"docker://{ui_registry.domain}/{repository}:v1")
    return repository


def other_origins(report, domain):
    return [url for dummy, url in report["requests"] if urllib.parse.urlsplit(url).netloc != domain]


def test_a_user_with_rights_sees_the_repositories_and_tags(ui_registry, browse, pushed):
    """alice (every right, and the catalog) logs in at the browser's prompt and sees the repository, then its tag."""
    alice = user(ui_registry, "alice")
    page = browse(f"https://{ui_registry.domain}/", alice, expect=[pushed], screenshot="alice-repositories")
    assert pushed in page["text"], page["text"]
    assert f"Repositories of {ui_registry.ui_title}" in page["text"], page["text"]
    assert page["auth_challenges"] >= 1, "the browser was never asked for a password"
    # Same origin only: the API and the token service at the registry's name, no version check elsewhere.
    assert not other_origins(page, ui_registry.domain), other_origins(page, ui_registry.domain)
    assert not [status for status, dummy in page["responses"] if status >= 500], page["responses"]

    tags = browse(f"https://{ui_registry.domain}/#!/taglist/{pushed}", alice, expect=[f"Tags of {pushed}", "v1"],
                  screenshot="alice-tags")
    assert "v1" in tags["text"], tags["text"]
    # registry_ui_delete follows registry_storage_delete (on for this host).
    assert ("delete" in tags["text"]) == ui_registry.deletes, tags["text"]


def test_a_user_without_rights_sees_no_repository(ui_registry, browse, pushed):
    """bob (no access rule, not a catalog user) logs in and sees no repository: the registry refuses the catalog."""
    page = browse(f"https://{ui_registry.domain}/", user(ui_registry, "bob"), screenshot="bob-repositories")
    assert "Repositories of" in page["text"], page["text"]
    assert pushed not in page["text"] and "ui-test" not in page["text"], page["text"]
    catalog = [status for status, url in page["responses"] if "/v2/_catalog" in url]
    assert catalog and all(status in (401, 403) for status in catalog), page["responses"]


def test_the_browser_refuses_the_registry_without_its_ca(ui_registry, browse):
    """The same browser without Pebble's root gets no page: the test's browser really checks TLS."""
    page = browse(f"https://{ui_registry.domain}/", home=UNTRUSTING_HOME)
    assert page["requests"], page
    # Chromium's error page (its own data: images) is all that loads.
    served = [url for dummy, url in page["responses"] if url.startswith(f"https://{ui_registry.domain}/")]
    assert not served, served


def test_the_ui_is_served_only_where_it_is_on(host, registry):
    """UI on: its page at /, in no frame, GET only. UI off (the default): / stays a 404, as before the UI existed."""
    url = f"https://{registry.domain}/"
    status, headers = curl_headers(host, url)
    body = run_ok(host, "curl --silent --show-error --cacert %s %s", PEBBLE_ROOT, url)
    if registry.ui:
        assert status == 200 and "<docker-registry-ui" in body, (status, body[:300])
        assert "frame-ancestors 'none'" in headers["content-security-policy"], headers
        assert headers["x-frame-options"] == "DENY", headers
        posted = curl_headers(host, "--request", "POST", "--data", "x=1", url)[0]
        assert posted == 403, posted
    else:
        assert status == 404 and "docker-registry-ui" not in body, (status, body[:300])
    # The API is where it was, either way.
    assert curl_headers(host, f"{url}v2/")[0] == 401
