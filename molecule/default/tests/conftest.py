"""Shared fixtures: the registry hosts of the inventory, seen from any test host."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest
import testinfra
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner


ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"


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


def run_ok(host, command: str, *args) -> str:
    """Run a command, fail the test with its output unless it succeeds."""
    result = host.run(command, *args)
    assert result.rc == 0, f"{result.command!r} failed ({result.rc}): {result.stderr or result.stdout}"
    return result.stdout
