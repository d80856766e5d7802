"""Shared fixtures: the registry hosts of the inventory, seen from any test host."""

from __future__ import annotations

import dataclasses
import pathlib
import shlex

import pytest
import testinfra
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner


ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"
# Pebble's root on the client (prepare.yml), for curl and openssl.
PEBBLE_ROOT = "/usr/local/share/selfhosted-test/pebble-root.pem"


def role_defaults(role: str) -> dict:
    """A role's defaults/main.yml: what the scenario's hosts get where molecule.yml sets nothing."""
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


def auth_mode(variables: dict) -> str:
    """A registry host's registry_auth_mode: molecule.yml's, else the role's default."""
    return variables.get("registry_auth_mode", role_defaults("registry")["registry_auth_mode"])


@dataclasses.dataclass
class Registry:
    name: str
    domain: str
    users: list
    host: testinfra.host.Host  # the registry host itself, for commands there
    auth_mode: str  # registry_auth_mode
    deletes: bool  # registry_storage_delete
    ui: bool  # registry_ui_enabled
    ui_title: str  # registry_ui_title


def _inventory(config: pytest.Config) -> str:
    return config.option.ansible_inventory


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that asks for `registry` once per host of group `registry`."""
    if "registry" in metafunc.fixturenames:
        names = AnsibleRunner(_inventory(metafunc.config)).get_hosts("registry")
        metafunc.parametrize("registry", names, indirect=True, scope="module")


def registry_host(config: pytest.Config, name: str) -> Registry:
    """A registry host of the inventory, with the settings the tests need (molecule.yml's, else the defaults)."""
    host = testinfra.get_host(f"ansible://{name}", ansible_inventory=_inventory(config))
    variables = host.ansible.get_variables()
    defaults = role_defaults("registry")
    return Registry(
        name=name,
        domain=variables["registry_domain"],
        users=variables["registry_users"],
        host=host,
        auth_mode=auth_mode(variables),
        deletes=variables.get("registry_storage_delete", defaults["registry_storage_delete"]),
        ui=variables.get("registry_ui_enabled", defaults["registry_ui_enabled"]),
        # The default is the registry's domain.
        ui_title=variables.get("registry_ui_title", variables["registry_domain"]),
    )


def registry_hosts(config: pytest.Config) -> list:
    """Every host of group `registry`."""
    return [registry_host(config, name) for name in AnsibleRunner(_inventory(config)).get_hosts("registry")]


@pytest.fixture(scope="module")
def registry(request: pytest.FixtureRequest) -> Registry:
    return registry_host(request.config, request.param)


def run(host, command: str, *args):
    """host.run, once more where the engine could not start a `docker exec` at all (runc's "read init-p: connection
    reset by peer", seen once in CI): the command never ran, so that says nothing of what it tests."""
    result = host.run(command, *args)
    if result.rc == 126 and "OCI runtime exec failed" in result.stderr:
        result = host.run(command, *args)
    return result


def run_ok(host, command: str, *args) -> str:
    """Run a command, fail the test with its output unless it succeeds."""
    result = run(host, command, *args)
    assert result.rc == 0, f"{result.command!r} failed ({result.rc}): {result.stderr or result.stdout}"
    return result.stdout


def curl_headers(client, *args):
    """Status and headers (lowercase names) of one request with Pebble's root trusted."""
    # run_ok formats the command with %: a % in the arguments (a URL-encoded query) is doubled.
    output = run_ok(client, "curl --silent --show-error --cacert %s --output /dev/null --dump-header - " + shlex.join(args).replace("%", "%%"), PEBBLE_ROOT)
    lines = output.replace("\r", "").strip().splitlines()
    headers = {}
    for line in lines[1:]:
        name, _sep, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers
