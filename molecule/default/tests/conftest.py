"""Shared fixtures: the registry hosts of the inventory, seen from any test host."""

from __future__ import annotations

import dataclasses

import pytest
import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner


@dataclasses.dataclass
class Registry:
    name: str
    domain: str
    users: list
    host: testinfra.host.Host  # the registry host itself, for commands there
    auth_mode: str = "token"  # registry_auth_mode


def _inventory(config: pytest.Config) -> str:
    return config.option.ansible_inventory


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that asks for `registry` once per host of group `registry`."""
    if "registry" in metafunc.fixturenames:
        names = AnsibleRunner(_inventory(metafunc.config)).get_hosts("registry")
        metafunc.parametrize("registry", names, indirect=True, scope="module")


@pytest.fixture(scope="module")
def registry(request: pytest.FixtureRequest) -> Registry:
    name = request.param
    host = testinfra.get_host(f"ansible://{name}", ansible_inventory=_inventory(request.config))
    variables = host.ansible.get_variables()
    return Registry(
        name=name,
        domain=variables["registry_domain"],
        users=variables["registry_users"],
        host=host,
        auth_mode=variables.get("registry_auth_mode", "token"),  # the role's default
    )


def run_ok(host, command: str, *args) -> str:
    """Run a command, fail the test with its output unless it succeeds."""
    result = host.run(command, *args)
    assert result.rc == 0, f"{result.command!r} failed ({result.rc}): {result.stderr or result.stdout}"
    return result.stdout
