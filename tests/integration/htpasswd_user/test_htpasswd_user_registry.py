# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""selfhosted.registry.htpasswd_user against the real registry, no mocks.

The module runs on localhost as a task would (and through ansible-playbook
where a test reads what it prints) and writes an htpasswd
file in a temporary directory. A container of the platform's registry fixture
image (Debian's docker-registry package, tests/platform/images/registry) reads
that file through a directory mount, with htpasswd auth; the tests log in with
HTTP basic auth as a client would.

Each test runs once per Debian target, with the Python and bcrypt it has
(../targets.py, fixture target_python in ../conftest.py): Debian 12's
bcrypt 3.2.2 on Python 3.11, Debian 13's 4.2.0 on Python 3.13.
HTPASSWD_USER_REGISTRY_IMAGE overrides the registry image;
by default the newest selfhosted-test/registry:* is used, built with
`tests/platform/platform images` when missing.

Run: PATH=$PWD/.venv/bin:$PATH .venv/bin/pytest -q tests/integration/htpasswd_user
"""

from __future__ import annotations

import concurrent.futures
import json
import os

import pytest

from registry_container import Registry, registry_config, registry_image as newest_registry_image  # pylint: disable=import-error
from targets import run_module, run_module_directly  # pylint: disable=import-error

REGISTRY_CONFIG = registry_config(
    '  htpasswd:\n'
    '    realm: htpasswd-it\n'
    '    path: /auth/htpasswd\n'
)


@pytest.fixture(scope='session')
def registry_image():
    return os.environ.get('HTPASSWD_USER_REGISTRY_IMAGE') or newest_registry_image()


class HtpasswdRegistry(Registry):
    """A registry reading <root>/auth/htpasswd through a directory mount."""

    def __init__(self, root, image):
        auth_dir = os.path.join(root, 'auth')
        os.makedirs(auth_dir)
        super().__init__(root, image, REGISTRY_CONFIG, {auth_dir: '/auth'})
        self.htpasswd = os.path.join(auth_dir, 'htpasswd')


# --------------------------------------------------------------------------
# the module, run as a task would run it


class Module:
    """Runs selfhosted.registry.htpasswd_user once per call and returns its result.

    With `printed`, through ansible-playbook, keeping what it printed (the
    diff and result a user sees) in last_output.
    """

    def __init__(self, root, python, collections, printed=False):
        self.root = root
        self.python = python
        self.collections = collections
        self.printed = printed
        self.last_output = ''

    def __call__(self, check=False, diff=True, **args):
        if not self.printed:
            return run_module_directly('selfhosted.registry.htpasswd_user', args, self.python, self.collections,
                                       check=check, diff=diff)
        result, self.last_output = run_module('selfhosted.registry.htpasswd_user', args, self.python, self.collections,
                                              self.root, check=check, diff=diff)
        return result


@pytest.fixture
def registry(tmp_path, registry_image):  # pylint: disable=redefined-outer-name
    created = HtpasswdRegistry(str(tmp_path), registry_image)
    yield created
    created.remove()


@pytest.fixture
def module(tmp_path, target_python, collections_path):  # pylint: disable=redefined-outer-name
    return Module(str(tmp_path / 'runs'), target_python, collections_path)


@pytest.fixture
def module_in_playbook(tmp_path, target_python, collections_path):  # pylint: disable=redefined-outer-name
    return Module(str(tmp_path / 'runs'), target_python, collections_path, printed=True)


def changes(result):
    return {key: result[key] for key in ('changed', 'added', 'removed', 'updated')}


def apply(module, check_rerun=False, **args):  # pylint: disable=redefined-outer-name
    """Check mode, real run, rerun: the check predicts the run exactly, the rerun changes nothing
    (and, with check_rerun, neither does a check-mode rerun)."""
    predicted = module(check=True, **args)
    assert not predicted.get('failed'), predicted
    done = module(**args)
    assert not done.get('failed'), done
    assert changes(predicted) == changes(done)
    assert done['changed'] is True
    again = module(**args)
    assert changes(again) == {'changed': False, 'added': [], 'removed': [], 'updated': []}
    if check_rerun:
        assert changes(module(check=True, **args)) == changes(again)
    return done


ALICE = 'alice-Pa55word-1'
BOB = 'bob-Pa55word-2'
CAROL = 'carol-Pa55word-3'


def test_users_log_in_and_change_without_restart(registry, module):  # pylint: disable=redefined-outer-name
    done = apply(module, check_rerun=True, path=registry.htpasswd, mode='0644', exclusive=True,
                 users=[{'name': 'alice', 'password': ALICE}, {'name': 'bob', 'password': BOB}])
    assert (done['added'], done['removed'], done['updated']) == (['alice', 'bob'], [], [])

    registry.start()
    assert registry.status('alice', ALICE) == 200
    assert registry.status('bob', BOB) == 200
    assert registry.status('alice', 'wrong-password') == 401
    assert registry.status('alice', BOB) == 401
    assert registry.status('nobody', ALICE) == 401
    assert registry.status() == 401
    started = registry.started()

    # A new user can log in at once: the registry sees the new file through the directory mount.
    done = apply(module, path=registry.htpasswd, name='carol', password=CAROL)
    assert (done['added'], done['removed'], done['updated']) == (['carol'], [], [])
    assert registry.status('carol', CAROL) == 200
    assert registry.status('carol', 'wrong-password') == 401

    # A new password replaces the old one.
    done = apply(module, path=registry.htpasswd, name='bob', password=BOB + '-new')
    assert (done['added'], done['removed'], done['updated']) == ([], [], ['bob'])
    assert registry.status('bob', BOB + '-new') == 200
    assert registry.status('bob', BOB) == 401

    # Removed users are locked out.
    done = apply(module, path=registry.htpasswd, name='alice', state='absent')
    assert (done['added'], done['removed'], done['updated']) == ([], ['alice'], [])
    assert registry.status('alice', ALICE) == 401
    assert registry.status('carol', CAROL) == 200

    assert registry.started() == started, 'the registry container restarted'


def test_exclusive_list_and_non_bcrypt_entries(registry, module):  # pylint: disable=redefined-outer-name
    # A file written by hand: a comment, an Apache MD5 user the registry cannot verify, a bcrypt user.
    with open(registry.htpasswd, 'w') as handle:
        handle.write('# written by hand\nlegacy:$apr1$abcdefgh$0123456789abcdefghijkl\n')
    os.chmod(registry.htpasswd, 0o644)
    registry.start()
    assert registry.status('legacy', 'legacy-Pa55word') == 401

    done = apply(module, path=registry.htpasswd, exclusive=True, users=[
        {'name': 'legacy', 'password': 'legacy-Pa55word'},
        {'name': 'carol', 'password': CAROL},
        {'name': 'ghost', 'state': 'absent'},
    ])
    assert (done['added'], done['removed'], done['updated']) == (['carol'], [], ['legacy'])
    assert registry.status('legacy', 'legacy-Pa55word') == 200
    assert registry.status('carol', CAROL) == 200
    with open(registry.htpasswd) as handle:
        lines = handle.read().splitlines()
    assert lines[0] == '# written by hand'
    assert [line.split(':')[0] for line in lines[1:]] == ['legacy', 'carol']
    assert all(line.split(':', 1)[1].startswith('$2y$05$') for line in lines[1:])


def test_diff_and_output_never_show_secrets(registry, module_in_playbook):  # pylint: disable=redefined-outer-name
    module_in_playbook(path=registry.htpasswd, name='alice', password=ALICE, mode='0644')
    with open(registry.htpasswd) as handle:
        stored = handle.read().split(':', 1)[1].strip()
    result = module_in_playbook(path=registry.htpasswd, name='alice', password=ALICE + '-new')
    assert result['updated'] == ['alice']
    output = module_in_playbook.last_output
    assert '+alice (new password)' in output and '-alice' in output
    for secret in (ALICE, stored, stored[7:]):
        assert secret not in output
        assert secret not in json.dumps(result)


def test_concurrent_runs_keep_each_others_users(tmp_path, module):  # pylint: disable=redefined-outer-name
    """Two runs at once on one file: the second waits for the first and plans from what it wrote.

    Each adds its own users at a cost that keeps it hashing for a while after
    it read the file: without the lock, the run that writes last would write
    over the other's users with a plan made from the file before them.
    """
    htpasswd_file = str(tmp_path / 'htpasswd')
    batches = {side: [{'name': '%s%d' % (side, n), 'password': '%s-password-%d' % (side, n)} for n in range(6)]
               for side in ('left', 'right')}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda users: module(path=htpasswd_file, users=users, cost=12), batches.values()))
    assert all(result['changed'] and not result['failed'] for result in results), results
    with open(htpasswd_file) as handle:
        names = sorted(line.split(':')[0] for line in handle.read().splitlines())
    assert names == sorted(user['name'] for users in batches.values() for user in users)


def test_cost_is_applied_and_changes_are_rehashed(registry, module):  # pylint: disable=redefined-outer-name
    module(path=registry.htpasswd, name='alice', password=ALICE, mode='0644', cost=10)
    with open(registry.htpasswd) as handle:
        assert handle.read().startswith('alice:$2y$10$')
    registry.start()
    assert registry.status('alice', ALICE) == 200
    done = apply(module, path=registry.htpasswd, name='alice', password=ALICE)  # back to the default cost
    assert done['updated'] == ['alice']
    with open(registry.htpasswd) as handle:
        assert handle.read().startswith('alice:$2y$05$')
    assert registry.status('alice', ALICE) == 200


def test_bad_input_fails_before_writing(registry, module):  # pylint: disable=redefined-outer-name
    module(path=registry.htpasswd, name='alice', password=ALICE)
    with open(registry.htpasswd) as handle:
        before = handle.read()
    result = module(path=registry.htpasswd, users=[{'name': 'bob', 'password': BOB}, {'name': 'bad:name', 'password': BOB}])
    assert result['failed'] is True
    assert "users[1]: user name 'bad:name' contains ':'" in result['msg']
    result = module(path=registry.htpasswd, name='bob', password='x' * 73)
    assert result['failed'] is True and 'bcrypt uses only the first 72 bytes' in result['msg']
    with open(registry.htpasswd) as handle:
        assert handle.read() == before
