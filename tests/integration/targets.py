# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a Debian target gives the collection's modules, and a way to run them there.

Shared by the integration tests (tests/integration/*/) and the benchmarks.

Each supported Debian release is a virtualenv at the repository root,
.venv-target-<name>, with that release's Python and the python3-* packages
the modules import (requirements-target-<name>.txt beside this file):

* debian12: Python 3.11, Docker SDK 5.0.3, bcrypt 3.2.2, PyYAML (bookworm)
* debian13: Python 3.13, Docker SDK 7.1.0, bcrypt 4.2.0, PyYAML (trixie)

They are built on first use and rebuilt when their requirements change.
SELFHOSTED_TEST_TARGETS="name=/path/to/python,..." replaces them.

run_module() runs one task of a module through ansible-playbook on localhost
with a target's interpreter, as a playbook would on that host.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# name -> Python version of that Debian release
TARGETS = {
    'debian12': '3.11',
    'debian13': '3.13',
}
OVERRIDE = 'SELFHOSTED_TEST_TARGETS'


def run(cmd, **kwargs):
    kwargs.setdefault('check', True)
    kwargs.setdefault('capture_output', True)
    kwargs.setdefault('text', True)
    kwargs.setdefault('timeout', 300)
    return subprocess.run(cmd, **kwargs)  # pylint: disable=subprocess-run-check


def find_python(version):
    """An interpreter of this version that can make a virtualenv: pyenv's first, then the system's."""
    versions = os.path.join(os.environ.get('PYENV_ROOT', '/root/.pyenv'), 'versions')
    candidates = []
    if os.path.isdir(versions):
        candidates = sorted(os.path.join(versions, v, 'bin', 'python' + version)
                            for v in os.listdir(versions) if v.startswith(version + '.'))
    for candidate in candidates + ['/usr/bin/python' + version]:
        if os.access(candidate, os.X_OK) and run([candidate, '-c', 'import venv'], check=False).returncode == 0:
            return candidate
    return None


def _overrides():
    return dict(item.split('=', 1) for item in os.environ.get(OVERRIDE, '').split(',') if item)


def target_names():
    """The targets to test on: SELFHOSTED_TEST_TARGETS's, else every supported release."""
    return sorted(_overrides() or TARGETS)


def target_python(name):
    """The interpreter of target `name`, its virtualenv built first if needed."""
    overrides = _overrides()
    if overrides:
        return overrides[name]
    # Test processes running side by side (pytest -n) build each one once.
    with open(os.path.join(REPO, '.venv-target-%s.lock' % name), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _target_venv(name)


def _target_venv(name):
    requirements = os.path.join(HERE, 'requirements-target-%s.txt' % name)
    venv = os.path.join(REPO, '.venv-target-%s' % name)
    python = os.path.join(venv, 'bin', 'python')
    with open(requirements, 'rb') as handle:
        stamp = hashlib.sha256(handle.read()).hexdigest()
    stamp_file = os.path.join(venv, '.requirements.sha256')
    if os.path.exists(stamp_file) and os.path.exists(python):
        with open(stamp_file) as handle:
            if handle.read().strip() == stamp:
                return python
    interpreter = find_python(TARGETS[name])
    if interpreter is None:
        raise RuntimeError('no Python %s to build the %s target virtualenv (install it, e.g. with pyenv)'
                           % (TARGETS[name], name))
    shutil.rmtree(venv, ignore_errors=True)
    run([interpreter, '-m', 'venv', venv])
    run([os.path.join(venv, 'bin', 'pip'), 'install', '--quiet', '--disable-pip-version-check', '-r', requirements],
        timeout=600)
    with open(stamp_file, 'w') as handle:
        handle.write(stamp + '\n')
    return python


def collections_tree(base):
    """An ansible_collections tree under `base` with this work tree as selfhosted.registry."""
    os.makedirs(os.path.join(base, 'ansible_collections', 'selfhosted'), exist_ok=True)
    link = os.path.join(base, 'ansible_collections', 'selfhosted', 'registry')
    if not os.path.islink(link):
        os.symlink(REPO, link)
    return base


def run_module(module, args, python, collections, workdir, check=False, diff=True):
    """Run `module` once with `args` through ansible-playbook on localhost; return (result, output).

    The registered result is written to a file by a second task, so the
    result the test sees is exactly what a playbook registers.
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
            {'name': 'save the result', 'ansible.builtin.copy': {'content': '{{ result | to_json }}', 'dest': result_file},
             'check_mode': False, 'diff': False},
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
