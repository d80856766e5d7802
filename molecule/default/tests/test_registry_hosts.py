"""The registry hosts: certificate from Pebble through HTTP-01, renewal set up, registry port closed."""

from __future__ import annotations

import json
import re

from conftest import auth_mode, run_ok

testinfra_hosts = ["ansible://registry"]

BASE_DIR = "/opt/registry"


def hostvars(host):
    return host.ansible.get_variables()


def test_tls_holds_copies_of_certbots_lineage(host):
    domain = hostvars(host)["registry_domain"]
    for name, mode in (("fullchain.pem", 0o644), ("privkey.pem", 0o600)):
        copy = host.file(f"{BASE_DIR}/tls/{name}")
        assert not copy.is_symlink and copy.is_file, copy.path
        assert (copy.user, copy.group, copy.mode) == ("root", "root", mode)
        assert copy.sha256sum == host.file(f"/etc/letsencrypt/live/{domain}/{name}").sha256sum


def test_nginx_sees_only_its_files_of_the_host(host):
    """Not /etc/letsencrypt: the ACME account key and the host's other keys stay out of the proxy."""
    mounts = json.loads(run_ok(host, "docker inspect --format '{{json .Mounts}}' registry-proxy-1"))
    sources = sorted(mount["Source"] for mount in mounts if mount["Type"] == "bind")
    expected = [f"{BASE_DIR}/nginx", f"{BASE_DIR}/tls", f"{BASE_DIR}/acme"]
    if auth_mode(hostvars(host)) == "token":
        expected.append("/run/selfhosted-registry-token")  # the token service's socket
    if hostvars(host).get("registry_metrics_enabled", False):
        expected.append(f"{BASE_DIR}/metrics")  # the host's figures, for /metrics/host
    assert sources == sorted(expected), sources


def test_lineage_was_made_with_pebble_and_the_webroot(host):
    domain = hostvars(host)["registry_domain"]
    conf = host.file(f"/etc/letsencrypt/renewal/{domain}.conf").content_string
    assert "server = https://pebble:14000/dir\n" in conf
    assert "authenticator = webroot\n" in conf
    assert f"webroot_path = {BASE_DIR}/acme," in conf
    assert "key_type = ecdsa\n" in conf


def test_acme_account_is_bound_with_the_key_from_a_root_only_file(host):
    """External account binding where asked for: the key in a file root alone reads, never on certbot's command line.

    certbot's debug logs (every run's) hold its command line and the CA's
    answers: the account Pebble created carries the binding it verified.
    """
    variables = hostvars(host)
    domain, kid, key = variables["registry_domain"], variables.get("certificates_acme_eab_kid", ""), variables.get("certificates_acme_eab_hmac_key", "")
    eab_file = host.file(f"/etc/letsencrypt/selfhosted-registry-eab-{domain}.ini")
    logs = run_ok(host, "cat /var/log/letsencrypt/letsencrypt.log*")
    if not kid:
        assert not eab_file.exists
        assert '"externalAccountBinding"' not in logs
        return
    assert (eab_file.user, eab_file.group, eab_file.mode) == ("root", "root", 0o600)
    assert eab_file.content_string == f"eab-kid = {kid}\neab-hmac-key = {key}\n"
    assert '"externalAccountBinding"' in logs, "no account with a binding in certbot's logs"
    assert key not in logs
    # Nor in certbot's renewal settings, which any user may read.
    assert key not in host.file(f"/etc/letsencrypt/renewal/{domain}.conf").content_string


def test_certbot_answered_an_http01_challenge(host):
    # certbot's debug log (rotated at every run) names the challenge type it performed.
    logs = run_ok(host, "cat /var/log/letsencrypt/letsencrypt.log*")
    assert "http-01" in logs


def test_nginx_served_the_challenge_to_pebble(host):
    logs = run_ok(host, "docker logs registry-proxy-1 2>&1")
    served = [line for line in logs.splitlines() if "GET /.well-known/acme-challenge/" in line and '" 200 ' in line and "Pebble-VA" in line]
    assert served, "nginx never answered Pebble's validation of an HTTP-01 challenge with 200"


def test_renewal_timer_is_enabled(host):
    timer = host.service("certbot.timer")
    assert timer.is_enabled
    assert timer.is_running


def test_renewal_service_trusts_pebble(host):
    ca_bundle = hostvars(host)["certificates_acme_ca_bundle"]
    dropin = host.file("/etc/systemd/system/certbot.service.d/selfhosted-registry.conf")
    assert dropin.mode == 0o644
    assert f'Environment="REQUESTS_CA_BUNDLE={ca_bundle}"' in dropin.content_string
    assert f"REQUESTS_CA_BUNDLE={ca_bundle}" in run_ok(host, "systemctl show --property=Environment certbot.service")


def test_deploy_hook_is_installed(host):
    hook = host.file("/etc/letsencrypt/renewal-hooks/deploy/selfhosted-registry-reload-proxy")
    assert hook.is_file
    assert (hook.user, hook.group, hook.mode) == ("root", "root", 0o755)


def test_acme_webroot_and_tls_directory(host):
    webroot = host.file(f"{BASE_DIR}/acme")
    assert webroot.is_directory and webroot.mode == 0o755
    tls = host.file(f"{BASE_DIR}/tls")
    assert tls.is_directory and tls.mode == 0o750 and tls.user == "root"


def test_registry_publishes_no_port(host):
    registry = json.loads(run_ok(host, "docker inspect registry-registry-1"))[0]
    assert not registry["HostConfig"]["PortBindings"]
    assert not any(registry["NetworkSettings"]["Ports"].values())
    # Nothing on the host listens on the registry's port either.
    assert run_ok(host, "ss --tcp --listening --numeric --no-header 'sport = :5000'").strip() == ""


# What each host runs: the roles' defaults on Debian 13, the older majors on Debian 12.
EXPECTED_VERSIONS = {"debian13": ("3.1.1", "1.30.6"), "debian12": ("2.8.3", "1.26.3")}
CONFIG_MOUNTS = {"3": "/etc/distribution", "2": "/etc/docker/registry"}


def test_registry_and_nginx_versions(host):
    registry_version, nginx_version = EXPECTED_VERSIONS[host.backend.get_hostname()]
    assert registry_version in run_ok(host, "docker exec registry-registry-1 registry --version")
    assert f"nginx/{nginx_version}" in run_ok(host, "docker exec registry-proxy-1 nginx -v 2>&1")


def test_registry_reads_the_config_where_its_major_version_looks(host):
    major = EXPECTED_VERSIONS[host.backend.get_hostname()][0].split(".")[0]
    registry = json.loads(run_ok(host, "docker inspect registry-registry-1"))[0]
    mount = CONFIG_MOUNTS[major]
    assert registry["Config"]["Cmd"] == [f"{mount}/config.yml"]
    assert {m["Destination"]: m["Source"] for m in registry["Mounts"]}[mount] == f"{BASE_DIR}/config"


def test_nginx_finds_a_recreated_registry_the_way_its_version_needs(host):
    conf = host.file(f"{BASE_DIR}/nginx/nginx.conf").content_string
    resolves = host.backend.get_hostname() == "debian13"
    assert ("registry:5000 resolve " in conf) == resolves
    assert ("resolver 127.0.0.11" in conf) == resolves
    # Both addresses stay in use while the registry is recreated (no 10 s ban
    # after a refused connection).
    assert re.search(r"server registry:5000 .*max_fails=0;", conf)


def test_reload_script_tests_the_configuration_then_reloads(host):
    """The one way every role reloads nginx: nginx -t in the running proxy, then SIGHUP, no restart."""
    script = host.file("/usr/local/sbin/selfhosted-registry-reload-proxy")
    assert (script.user, script.group, script.mode) == ("root", "root", 0o755)
    before = json.loads(run_ok(host, "docker inspect registry-proxy-1"))[0]
    output = run_ok(host, "/usr/local/sbin/selfhosted-registry-reload-proxy registry 2>&1")
    assert f"reloaded nginx in container {before['Id'][:12]}" in output
    after = json.loads(run_ok(host, "docker inspect registry-proxy-1"))[0]
    assert (after["Id"], after["State"]["StartedAt"], after["RestartCount"]) == (
        before["Id"], before["State"]["StartedAt"], before["RestartCount"])
    # Another project has no proxy here: nothing to reload, not an error.
    output = run_ok(host, "/usr/local/sbin/selfhosted-registry-reload-proxy no-such-project 2>&1")
    assert "no running proxy container in project no-such-project" in output


def test_the_rotate_playbook_replaced_the_signing_key(host):
    """side_effect_rotate_token_key.yml (token mode, Debian 13): a new key signs, and the registry trusts its
    certificate alone, the old key's tokens having expired when the playbook ended; htpasswd mode has no key."""
    certificate = host.file(f"{BASE_DIR}/token/signing-certificate.pem")
    replaced = host.file("/var/tmp/replaced-signing-certificate.pem")
    if auth_mode(hostvars(host)) == "htpasswd":
        assert not certificate.exists and not replaced.exists
        return
    assert replaced.exists, "the side effect did not run"
    assert certificate.content_string != replaced.content_string, "the key was not replaced"
    assert host.file(f"{BASE_DIR}/auth/token-bundle.pem").content_string == certificate.content_string
    assert run_ok(host, "find %s/token -name 'next-*' -o -path '*/retired/*'", BASE_DIR).strip() == ""
