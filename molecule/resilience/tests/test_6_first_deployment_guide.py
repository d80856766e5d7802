"""docs/first-deployment.md, steps 4 to 8, as written, against the scenario's host (the last test: it replaces the users).

What stands in for the world outside: the collection's git repository is a
bare clone of this work tree's HEAD (file:// URL), the server is the
scenario's registry host (its SSH connection from molecule's inventory), and
the platform's settings go into one more group_vars file: Pebble instead of
Let's Encrypt, the platform's image mirror and dockerd environment. Every
command runs in a clean environment (no ANSIBLE_* or MOLECULE_* variables),
with the controller's ansible-core of the tests' virtualenv.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CLIENT, DOMAIN, INVENTORY_DIR, PROJECT_DIR, REGISTRY_HOST, report

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module", name="controller")
def fixture_controller(tmp_path_factory) -> dict:
    """A controller's home and environment: nothing of molecule's, the collection installed as step 4 says."""
    home = tmp_path_factory.mktemp("guide-controller")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(HOME=str(home), PATH=f"{BIN}:{env.get('PATH', '')}", ANSIBLE_NOCOLOR="1")
    return {"home": home, "env": env}


def guide_random(size: int) -> str:
    """`openssl rand -base64 SIZE`, as the guide makes its passwords: never starting with "-", which
    ansible-vault would take for an option (token_urlsafe did, one run in about 30)."""
    return base64.b64encode(secrets.token_bytes(size)).decode()


def run(on: dict, argv: list, cwd: Path | None = None, timeout: float = 300) -> str:
    """Run a command on the controller `on` (the fixture's home and environment); its stdout."""
    result = subprocess.run(argv, cwd=cwd, env=on["env"], capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{argv[:3]} failed ({result.returncode}): {result.stdout[-3000:]} {result.stderr[-3000:]}"
    return result.stdout


def edit(path: Path, line: str, replacement: str) -> None:
    """Replace one line of a file, as the guide tells the user to; the line must be there."""
    text = path.read_text()
    assert re.search(f"^{re.escape(line)}$", text, re.M), f"{path} has no line {line!r}: the guide no longer matches the example"
    path.write_text(re.sub(f"^{re.escape(line)}$", lambda _match: replacement, text, count=1, flags=re.M))


def test_the_first_deployment_guide(controller):
    home = controller["home"]

    # Step 4: the collection from its git repository.
    repository = home / "registry.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(PROJECT_DIR), str(repository)], check=True)
    branch = subprocess.run(["git", "-C", str(repository), "symbolic-ref", "--short", "HEAD"], capture_output=True, text=True, check=True)
    run(controller, ["ansible-galaxy", "collection", "install", f"git+file://{repository},{branch.stdout.strip()}"])
    installed = home / ".ansible/collections/ansible_collections/selfhosted/registry"
    assert (installed / "playbooks/site.yml").is_file(), "the collection is not where step 5 copies the example from"

    # Step 5: the example inventory, copied and edited.
    inventory = home / "registry-inventory"
    shutil.copytree(installed / "examples/inventory", inventory)
    molecule_hosts = yaml.safe_load((INVENTORY_DIR / "ansible_inventory.yml").read_text())["all"]["hosts"]["debian13"]
    connection = {key: value for key, value in molecule_hosts.items() if key.startswith("ansible_")}
    connection["ansible_port"] = REGISTRY_HOST.ssh_port()
    edit(inventory / "hosts.yml", "      ansible_host: 203.0.113.10", "\n".join(f"      {key}: {json.dumps(value)}" for key, value in connection.items()))
    main = inventory / "group_vars/registry/main.yml"
    edit(main, "registry_domain: registry.example.com", f"registry_domain: {DOMAIN}")
    edit(main, "certificates_acme_email: hostmaster@example.com", "certificates_acme_email: hostmaster@resilience.test")
    platform = yaml.safe_load((INVENTORY_DIR / "group_vars/all").read_text())
    platform.update(
        # Pebble in place of Let's Encrypt's staging CA, which the example starts with.
        certificates_acme_staging=False,
        certificates_acme_directory_url="https://pebble:14000/dir",
        certificates_acme_ca_bundle="/usr/local/share/selfhosted-test/pebble-listener-ca.pem",
    )
    platform = {key: value for key, value in platform.items() if not key.startswith("selfhosted_test_")}
    (inventory / "group_vars/registry/platform.yml").write_text(yaml.safe_dump(platform))

    # Step 6: a vault password, a random password per user, encrypted over CHANGE-ME.
    vault_password_file = home / ".config/registry-vault-password"
    vault_password_file.parent.mkdir(parents=True)
    vault_password_file.write_text(guide_random(32) + "\n")
    vault_password_file.chmod(0o600)
    vault = inventory / "group_vars/registry/vault.yml"
    for name in ("vault_registry_ci_password", "vault_registry_alice_password"):
        encrypted = run(
            controller,
            ["ansible-vault", "encrypt_string", "--vault-password-file", str(vault_password_file), "--name", name, guide_random(24)],
        )
        edit(vault, f"{name}: CHANGE-ME", encrypted.rstrip())
    shown = run(
        controller,
        ["ansible", "-i", ".", "registry1", "-m", "ansible.builtin.debug", "-a", "var=vault_registry_alice_password",
         "--vault-password-file", str(vault_password_file)],
        cwd=inventory,
    )
    password = re.search(r'"vault_registry_alice_password": "([^"]+)"', shown).group(1)

    # Step 7: the site playbook, then the quick check.
    site = run(
        controller,
        ["ansible-playbook", "-i", ".", "--vault-password-file", str(vault_password_file), "selfhosted.registry.site"],
        cwd=inventory,
        timeout=900,
    )
    report("first-deployment guide: site run " + next(line for line in site.splitlines() if line.startswith("registry1 ")))
    status = CLIENT.out(f"curl -sk -o /dev/null -w '%{{http_code}}' https://{DOMAIN}/v2/")
    assert status == "401", status

    # Step 8: docker login, tag, push, pull from the client (an image made there: Docker Hub is out of reach).
    image = f"{DOMAIN}/tools/guide:1"
    CLIENT.run(
        f"echo {shlex.quote(password)} | docker login {DOMAIN} -u alice --password-stdin"
        f" && tar -c -C /etc hostname | docker import - {image}"
        f" && docker push {image} && docker rmi {image} && docker pull {image} && docker logout {DOMAIN}",
        timeout=300,
    )
    assert password not in site, "the site run printed a password"
    assert f"WARNING: {DOMAIN} resolves to" not in site, "the name points at this host, yet the run warned it does not"
