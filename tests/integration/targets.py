# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a Debian target gives the collection's modules, and a way to run them there.

Shared by the integration tests (tests/integration/*/) and the benchmarks.

Each supported Debian release is a virtualenv at the repository root,
.venv-target-<name>, with that release's Python and the python3-* packages
the modules import (requirements-target-<name>.txt beside this file), built
by scripts/bootstrap:

* debian12: Python 3.11, Docker SDK 5.0.3, bcrypt 3.2.2, cryptography 38.0.4, PyYAML (bookworm)
* debian13: Python 3.13, Docker SDK 7.1.0, bcrypt 4.2.0, cryptography 43.0.0, PyYAML (trixie)

SELFHOSTED_TEST_TARGETS="name=/path/to/python,..." replaces them.

run_module() runs one task of a module through ansible-playbook on localhost
with a target's interpreter, as a playbook would on that host, with the output
a user sees. run_module_directly() runs the module's code with the same
interpreter and arguments without ansible-playbook, at a tenth of the cost,
for the many runs whose printed output no test reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import ansible

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# The supported Debian releases (their Python versions: scripts/bootstrap).
TARGETS = ('debian12', 'debian13')
OVERRIDE = 'SELFHOSTED_TEST_TARGETS'


def run(cmd, **kwargs):
    kwargs.setdefault('check', True)
    kwargs.setdefault('capture_output', True)
    kwargs.setdefault('text', True)
    kwargs.setdefault('timeout', 300)
    return subprocess.run(cmd, **kwargs)  # pylint: disable=subprocess-run-check


def _overrides():
    return dict(item.split('=', 1) for item in os.environ.get(OVERRIDE, '').split(',') if item)


def target_names():
    """The targets to test on: SELFHOSTED_TEST_TARGETS's, else every supported release."""
    return sorted(_overrides() or TARGETS)


def target_python(name):
    """The interpreter of target `name`: SELFHOSTED_TEST_TARGETS's, else its virtualenv from scripts/bootstrap."""
    overrides = _overrides()
    if overrides:
        return overrides[name]
    python = os.path.join(REPO, '.venv-target-%s' % name, 'bin', 'python')
    if not os.path.exists(python):
        raise RuntimeError('%s is missing: run scripts/bootstrap, which builds the target virtualenvs' % python)
    return python


def collections_tree(base):
    """An ansible_collections tree under `base` with this work tree as selfhosted.registry.

    Beside it, a link to the controller's `ansible` package: with `base` as
    PYTHONPATH, a target's interpreter imports the modules, ansible-core's
    module_utils and nothing else of the controller (not its Docker SDK).
    """
    os.makedirs(os.path.join(base, 'ansible_collections', 'selfhosted'), exist_ok=True)
    links = {
        os.path.join(base, 'ansible_collections', 'selfhosted', 'registry'): REPO,
        os.path.join(base, 'ansible'): os.path.dirname(ansible.__file__),
    }
    for link, source in links.items():
        if not os.path.islink(link):
            os.symlink(source, link)
    return base


def run_module(module, args, python, collections, workdir, check=False, diff=True):
    """Run `module` once with `args` through ansible-playbook on localhost; return (result, output).

    The registered result is written to a file by a second task, so the
    result the test sees is exactly what a playbook registers. That task is
    `raw` (a shell here-document, one line of JSON): unlike `copy`, it runs
    no Python module, which would cost more than the module under test.
    """
    os.makedirs(workdir, exist_ok=True)
    number = len([name for name in os.listdir(workdir) if name.startswith('play-')]) + 1
    result_file = os.path.join(workdir, 'result-%d.json' % number)
    playbook = os.path.join(workdir, 'play-%d.yml' % number)
    play = [{
        'hosts': 'localhost',
        'gather_facts': False,
        'tasks': [
            {'name': module, module: args, 'register': 'result', 'ignore_errors': True},
            {'name': 'save the result', 'check_mode': False,
             'ansible.builtin.raw': "cat > '%s' <<'SELFHOSTED_TEST_RESULT'\n{{ result | to_json }}\nSELFHOSTED_TEST_RESULT" % result_file},
        ],
    }]
    with open(playbook, 'w') as handle:
        json.dump(play, handle)
    command = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
               '-e', 'ansible_python_interpreter=%s' % python, playbook]
    if check:
        command.append('--check')
    if diff:
        command.append('--diff')
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR='1',
               ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_LOCALHOST_WARNING='0',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='0')
    completed = run(command, env=env, check=False)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    with open(result_file) as handle:
        return json.load(handle), output


def run_module_directly(module, args, python, collections, check=False, diff=True):
    """Run module `module` (FQCN) once with `args` on target interpreter `python`; return its result.

    The way ansible-core runs a module for debugging (python -m <module>, the
    arguments as JSON on stdin), with what a task adds to the arguments
    (check mode, diff) and to the result (`changed` and `failed` default to
    false). No ansible-playbook: its start-up costs about 2 CPU-seconds per
    run, several times the module's own work.
    """
    namespace, name, plugin = module.split('.')
    internal = {'_ansible_check_mode': check, '_ansible_diff': diff, '_ansible_module_name': module}
    completed = run([python, '-m', 'ansible_collections.%s.%s.plugins.modules.%s' % (namespace, name, plugin)],
                    input=json.dumps({'ANSIBLE_MODULE_ARGS': dict(args, **internal)}), check=False,
                    env=dict(os.environ, PYTHONPATH=collections), cwd=collections)
    try:
        result = json.loads(completed.stdout)
    except ValueError:
        raise AssertionError('%s printed no JSON result (rc=%d): %s %s'
                             % (module, completed.returncode, completed.stdout[-2000:], completed.stderr[-2000:]))
    result.setdefault('changed', False)
    result.setdefault('failed', False)
    return result
