# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The several-node example inventory passes the settings checks of every role of the site playbook.

examples/inventory-several-nodes/, its CHANGE-ME secrets and the e-mail
address for Let's Encrypt replaced as its README says, goes through the real site playbook's check play, every host
of it run on this machine (ansible_connection local): the settings part of
every role's preflight (the registry's nodes agree, the balancer has nodes,
the cache's and certificates' settings) must pass for every host. The part
after it asks the host, and this machine is none of the example's hosts:
whatever it says there is not the example's fault. Check mode and a tag
that no role task has keep the plays after the check play from doing
anything here, should the host part pass. Once as written (IPv4), once
with the cache on IPv6. The single-host example is deployed for real by
the resilience scenario's first-deployment test.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys

import pytest
from targets import REPO  # pylint: disable=import-error

EXAMPLE = os.path.join(REPO, 'examples', 'inventory-several-nodes')
SETTINGS_TASK = 'Check the settings of every role'
HOST_TASK = 'Check what every role needs of the host'


# Extra vars over the example: as written; the cache reached over IPv6.
VARIANTS = {
    'as-written': [],
    'cache-on-ipv6': ['-e', 'registry_redis_address=[fd00:10::5]:6379', '-e', 'cache_bind_address=fd00:10::5'],
}


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_the_several_node_example_passes_every_settings_check(tmp_path, collections_path, variant):
    inventory = tmp_path / 'inventory'
    shutil.copytree(EXAMPLE, inventory)
    vault = inventory / 'group_vars' / 'all' / 'vault.yml'
    text = vault.read_text(encoding='utf-8')
    assert 'CHANGE-ME' in text, 'the example has no placeholders any more: update this test'
    vault.write_text(re.sub('CHANGE-ME', lambda _match: secrets.token_urlsafe(32), text), encoding='utf-8')
    acme = inventory / 'group_vars' / 'registry_balancer' / 'main.yml'
    text = acme.read_text(encoding='utf-8')
    assert 'hostmaster@example.com' in text, 'the example has another address: update this test'
    acme.write_text(text.replace('hostmaster@example.com', 'hostmaster@registry-team.org'), encoding='utf-8')
    playbook = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    done = subprocess.run(
        [playbook, '-i', str(inventory), '--check', '--tags', 'selfhosted-registry-example-check',
         '-e', 'ansible_connection=local', '-e', 'ansible_become=false', '-e', 'ansible_python_interpreter=' + sys.executable]
        + VARIANTS[variant] + ['selfhosted.registry.site'],
        capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0'))
    output = done.stdout + done.stderr
    # The tasks in the order they ran, and the failures with the task each came in (its place in that order).
    tasks, failures = [], []
    for line in output.splitlines():
        header = re.match(r'^TASK \[(.*?)\]', line)
        if header:
            tasks.append(header.group(1))
        elif re.match(r'^(fatal|failed): ', line):
            failures.append((len(tasks) - 1, line))
    hosts = re.findall(r'^(\S+)\s+: ok=', output, re.MULTILINE)
    assert sorted(hosts) == ['cache1', 'lb1', 'node1', 'node2'] and SETTINGS_TASK in tasks, output[-3000:]
    # Every host got past the settings: the play came to the host part, and
    # no failure came before it (or the run ended without one).
    if done.returncode != 0:
        assert HOST_TASK in tasks, output[-3000:]
        settings_failures = [line for place, line in failures if place < tasks.index(HOST_TASK)]
        assert not settings_failures, '\n'.join(settings_failures)[:3000]
