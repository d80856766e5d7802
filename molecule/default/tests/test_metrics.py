"""Metrics (registry_metrics_enabled), scraped by Prometheus from Debian as an operator would.

The Debian 13 host has metrics on, published on every address of the host
for one network: the client's address (molecule.yml, prepare.yml). On the
client, Prometheus runs with the collection's example configuration and
alert rules (examples/prometheus/), its target the Debian 13 host, a shorter
interval. The tests query Prometheus for a registry storage figure, an nginx
request count and the certificate's expiry, and check that nothing of it is
reachable on the registry's name, from an address not listed (the Debian 12
host), or on the registry's own debug port. The Debian 12 host keeps metrics
off (the default): no exporter, no timer, no port, no debug server.
"""

from __future__ import annotations

import base64
import json
import pathlib
import ssl
import time
import urllib.parse

import pytest
import yaml
from conftest import PEBBLE_ROOT, registry_hosts, run_ok

testinfra_hosts = ["ansible://client"]

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples" / "prometheus"
WORK = "/var/tmp/selfhosted-test-prometheus"
# Not 9090, in case the package's own service runs (the client image turns it off).
PROMETHEUS = "http://127.0.0.1:9095"
METRICS_PORT = 9145  # the proxy role's default proxy_metrics_port
JOBS = ("registry", "registry-nginx", "registry-host")
# Prints the status of a GET of the URL given (%r), an error's too.
STATUS_OF = """
import urllib.error, urllib.request
try:
    print(urllib.request.urlopen(%r, timeout=10).status)
except urllib.error.HTTPError as error:
    print(error.code)
"""
# What the public side may not show: the text format's markers and our names.
METRIC_TEXT = ("# TYPE", "registry_http_requests_total", "nginx_http_requests_total", "selfhosted_registry_")


def metrics_on(registry) -> bool:
    return bool(registry.host.ansible.get_variables().get("registry_metrics_enabled", False))


@pytest.fixture(scope="module")
def scraped(request):
    """The registry host with metrics on (the Debian 13 host)."""
    registries = [registry for registry in registry_hosts(request.config) if metrics_on(registry)]
    assert registries, "no registry host of the scenario has registry_metrics_enabled (molecule.yml)"
    return registries[0]


def write_file(host, path: str, text: str) -> None:
    run_ok(host, "echo %s | base64 -d > %s", base64.b64encode(text.encode()).decode(), path)


def api(host, path: str, **query) -> dict:
    url = f"{PROMETHEUS}/api/v1/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    answer = json.loads(run_ok(host, "curl --silent --show-error --fail %s", url))
    assert answer["status"] == "success", answer
    return answer["data"]


def wait_for(what: str, check, timeout: float = 120):
    """check() until it returns something true, at most `timeout` seconds; fails naming `what` and the last answer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        # A list: each of its items must be true.
        if all(last) if isinstance(last, list) else last:
            return last
        time.sleep(2)
    pytest.fail(f"{what} within {timeout:.0f} s; last: {last}")


@pytest.fixture(scope="module")
def prometheus(host, scraped):
    """Prometheus on the client, scraping the host as examples/prometheus/ says; stopped afterwards."""
    config = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="5s", evaluation_interval="5s")
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"{scraped.name}:{METRICS_PORT}"]}]
    run_ok(host, "rm -rf %s && mkdir -p %s/data", WORK, WORK)
    write_file(host, f"{WORK}/prometheus.yml", yaml.safe_dump(config))
    write_file(host, f"{WORK}/alerts.yml", (EXAMPLES / "alerts.yml").read_text())
    # Prometheus refuses to start on a rule file it cannot load.
    run_ok(host, "promtool check rules %s/alerts.yml", WORK)
    run_ok(host, "cd %s && setsid -f prometheus --config.file=prometheus.yml --storage.tsdb.path=data"
                 " --web.listen-address=127.0.0.1:9095 >prometheus.log 2>&1", WORK)
    wait_for("Prometheus answering", lambda: host.run("curl --silent --fail %s/-/ready", PROMETHEUS).rc == 0, 60)
    yield host
    host.run("pkill -f 'prometheus --config.file=prometheus.yml'")
    host.run("rm -rf %s", WORK)


def query(host, expression: str) -> list:
    return api(host, "query", query=expression)["result"]


def test_prometheus_scrapes_every_path_of_the_host(prometheus):
    def targets():
        active = api(prometheus, "targets")["activeTargets"]
        return [target["health"] == "up" for target in active if target["labels"]["job"] in JOBS] or [False]

    wait_for("every target up", targets)
    active = api(prometheus, "targets")["activeTargets"]
    assert sorted(target["labels"]["job"] for target in active) == sorted(JOBS), active


def test_prometheus_has_a_storage_figure_a_request_count_and_the_certificate_expiry(prometheus, scraped):
    """A registry storage metric, an nginx request count and the certificate's expiry, as Prometheus stores them."""
    wait_for("the figures in Prometheus", lambda: [
        query(prometheus, "registry_storage_action_seconds_count"),
        query(prometheus, "nginx_http_requests_total"),
        query(prometheus, "selfhosted_registry_certificate_expiry_timestamp_seconds"),
        query(prometheus, "selfhosted_registry_storage_available_bytes"),
    ])
    storage = query(prometheus, 'sum(registry_storage_action_seconds_count{driver="filesystem"})')
    assert storage and float(storage[0]["value"][1]) > 0, storage
    requests = query(prometheus, "nginx_http_requests_total")
    assert float(requests[0]["value"][1]) > 0, requests
    assert query(prometheus, "nginx_up")[0]["value"][1] == "1"

    # The expiry is the notAfter of the certificate the registry's name serves.
    served = run_ok(prometheus, "openssl s_client -connect %s:443 -servername %s -CAfile %s </dev/null 2>/dev/null"
                                " | openssl x509 -noout -enddate", scraped.domain, scraped.domain, PEBBLE_ROOT)
    not_after = ssl.cert_time_to_seconds(served.strip().split("=", 1)[1])

    def expiry():
        result = query(prometheus, "selfhosted_registry_certificate_expiry_timestamp_seconds")
        return float(result[0]["value"][1]) == not_after and result

    # The file is written every minute: an earlier test may have renewed the certificate since.
    wait_for(f"the served certificate's expiry ({served.strip()}) in Prometheus", expiry, 90)
    available = query(prometheus, "selfhosted_registry_storage_available_bytes")
    size = query(prometheus, "selfhosted_registry_storage_size_bytes")
    assert 0 < float(available[0]["value"][1]) <= float(size[0]["value"][1]), (available, size)


def test_the_alert_rules_load_and_evaluate(prometheus):
    """examples/prometheus/alerts.yml: every rule loaded and evaluated without an error."""
    def evaluated():
        groups = api(prometheus, "rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return [rule["health"] == "ok" for rule in rules] or [False]

    wait_for("every alert rule evaluated", evaluated, 60)
    groups = api(prometheus, "rules")["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"RegistryCertificateExpiresSoon", "RegistryDiskNearlyFull", "RegistryServerErrors",
            "RegistryGarbageCollectionFailed"} <= names, names
    # The host is healthy: none of the rules that need no waiting period fires.
    firing = [alert for alert in api(prometheus, "alerts")["alerts"] if alert["state"] == "firing"]
    assert not firing, firing


def body(host, url: str) -> tuple[int, str]:
    """Status and body of one GET from the client (status 0: no connection)."""
    result = host.run("curl --silent --max-time 10 --cacert %s --write-out '\\n%%{http_code}' %s", PEBBLE_ROOT, url)
    text, _sep, status = result.stdout.rpartition("\n")
    return int(status or 0), text


@pytest.mark.parametrize("path", ["/metrics", "/metrics/registry", "/metrics/nginx", "/metrics/host", "/debug/vars",
                                  "/stub_status"])
def test_the_registry_name_serves_no_metrics(host, scraped, path):
    status, text = body(host, f"https://{scraped.domain}{path}")
    assert status != 0, f"https://{scraped.domain} did not answer"
    assert not [marker for marker in METRIC_TEXT if marker in text], (status, text[:500])
    assert "Active connections" not in text, text[:500]


def test_the_metrics_port_lets_in_the_listed_address_only(host, scraped, request):
    """The client (listed) reads every path; the Debian 12 host, on the same network but not listed, gets 403."""
    for path in ("/metrics/registry", "/metrics/nginx", "/metrics/host"):
        status, text = body(host, f"http://{scraped.name}:{METRICS_PORT}{path}")
        assert status == 200 and "# TYPE" in text, (path, status, text[:300])
    assert body(host, f"http://{scraped.name}:{METRICS_PORT}/debug/vars")[0] == 404
    other = next(registry for registry in registry_hosts(request.config) if registry.name != scraped.name)
    # The hosts have Python, not curl.
    refused = other.host.run("python3 -c %s", STATUS_OF % f"http://{scraped.name}:{METRICS_PORT}/metrics/registry")
    assert refused.stdout.strip() == "403", f"from {other.name}: {refused.stdout} {refused.stderr}"


def test_the_registry_debug_port_is_not_reachable(host, scraped):
    """The registry's debug server (5001) answers on network backend only (test_registry_hosts.py: no port published)."""
    assert host.run("curl --silent --max-time 5 http://%s:5001/metrics", scraped.name).rc != 0
    assert run_ok(scraped.host, "ss -Hltn 'sport = :5001'").strip() == "", "something listens on the host's port 5001"


def test_hosts_with_metrics_off_have_none_of_it(request):
    """The default (the Debian 12 host): no exporter, no timer, no debug server, no metrics port."""
    off = [registry for registry in registry_hosts(request.config) if not metrics_on(registry)]
    assert off, "every registry host of the scenario has metrics on: nothing shows the default"
    for registry in off:
        host = registry.host
        assert not host.file("/opt/registry/compose.metrics.yaml").exists
        assert host.run("docker container inspect registry-nginx-exporter-1").rc != 0
        assert not host.file("/etc/systemd/system/selfhosted-registry-metrics.timer").exists
        assert "debug" not in run_ok(host, "cat /opt/registry/config/config.yml")
        assert run_ok(host, f"ss -Hltn 'sport = :{METRICS_PORT}'").strip() == "", "something listens on the metrics port"
