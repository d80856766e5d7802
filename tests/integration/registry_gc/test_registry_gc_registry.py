# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Retention and garbage collection (roles/registry/files/registry_gc.py) on the real registry 3.1.1.

A registry container as the registry role runs it (a compose project's
labels, the name `registry` on its network, a health check, filesystem
storage in a host directory, the in-memory blob-descriptor cache), images
pushed over its API, and registry_gc.py run by each Debian target's Python
and Docker SDK, as root on the host would:
- the dry run lists exactly the tags the real run deletes, and changes nothing;
- kept images pull whole (shared layers too), deleted tags are gone, the
  bytes freed are those of the layers only deleted images had;
- the registry container is the same one afterwards, restarted, and no
  read-only copy is left; writes are refused by the copy during the window;
- the stale-cache hazard: after a plain garbage-collect in a running
  registry, HEAD of a collected layer still answers 200 (its cache), so a
  client would skip the upload; after registry_gc.py it is 404, and pushing
  the same image again works.
The first test runs with each target's Python and Docker SDK, the others
with the newest target's. Pulls under load, behind nginx with its paused
writes: the resilience scenario.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import uuid

import pytest

import registry_api  # pylint: disable=import-error
from registry_api import MANIFEST_TYPE, ImageClient  # pylint: disable=import-error
from registry_container import DOCKER, registry_image  # pylint: disable=import-error
from targets import REPO, run  # pylint: disable=import-error

PROGRAM = os.path.join(REPO, 'roles', 'registry', 'files', 'registry_gc.py')
DAY = 86400
CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  cache:
    blobdescriptor: inmemory
http:
  addr: :5000
  draintimeout: 5s
"""


class Stack(ImageClient):
    """The registry container of compose project `project`, found the way registry_gc.py finds it."""

    def __init__(self, root):
        self.project = 'gc-it-' + uuid.uuid4().hex[:8]
        self.name = self.project + '-registry-1'
        self.network = self.project + '_backend'
        self.storage = os.path.join(root, 'data')
        self.config_dir = os.path.join(root, 'config')
        os.makedirs(self.storage)
        os.makedirs(self.config_dir)
        with open(os.path.join(self.config_dir, 'config.yml'), 'w', encoding='utf-8') as handle:
            handle.write(CONFIG)
        run([DOCKER, 'network', 'create', self.network])
        run([DOCKER, 'run', '--detach', '--name', self.name, '--network', self.network, '--network-alias', 'registry',
             '--label', 'com.docker.compose.project=' + self.project, '--label', 'com.docker.compose.service=registry',
             '--health-cmd', 'wget -q --spider http://127.0.0.1:5000/', '--health-interval', '1s',
             '--health-start-period', '10s', '--restart', 'unless-stopped', '--stop-timeout', '10', '--read-only',
             '--volume', self.storage + ':/var/lib/registry', '--volume', self.config_dir + ':/etc/distribution:ro',
             registry_image('3.1.1'), '/etc/distribution/config.yml'])
        self.settings = {'project': self.project, 'service': 'registry', 'config_path': '/etc/distribution/config.yml',
                         'storage': {'filesystem': {'rootdirectory': self.storage}}, 'protected_tags': ['latest'], 'overlap_seconds': 1,
                         'proxy_reload_script': '', 'policies': [],
                         # Its own: tests run side by side (pytest -n 2).
                         'lock_file': os.path.join(root, 'gc.lock')}
        assert self.answers(), 'the registry did not answer'

    def inspect(self, name=None):
        return json.loads(run([DOCKER, 'inspect', name or self.name]).stdout)[0]

    def address(self):
        return self.inspect()['NetworkSettings']['Networks'][self.network]['IPAddress']

    def request(self, method, path, body=None, headers=None, address=None):
        return registry_api.request(address or self.address(), method, path, body, headers)

    def set_pushed(self, repository, tag, days_ago):
        link = os.path.join(self.storage, 'docker/registry/v2/repositories', repository, '_manifests/tags', tag, 'current/link')
        when = time.time() - days_ago * DAY
        os.utime(link, (when, when))

    def gc(self, python, *arguments):
        """registry_gc.py with these settings (stdin) under a target's Python: (exit code, JSON result or None, log)."""
        done = subprocess.run([python, PROGRAM, '--json', '-', *arguments], input=json.dumps(self.settings),
                              capture_output=True, text=True, timeout=300, check=False)
        return done.returncode, (json.loads(done.stdout) if done.stdout.strip() else None), done.stderr

    def remove(self):
        for name in (self.name, self.name.replace('-registry-1', '-registry-maintenance')):
            run([DOCKER, 'rm', '--force', name], check=False)
        run([DOCKER, 'network', 'rm', self.network], check=False)


@pytest.fixture
def stack(tmp_path):
    made = Stack(str(tmp_path))
    try:
        yield made
    finally:
        made.remove()


def layer(seed, size=64 * 1024):
    return (seed.encode() * (size // len(seed) + 1))[:size]


def test_retention_and_gc_delete_what_the_dry_run_said_and_keep_the_rest_whole(stack, target_python):
    shared = layer('shared by everything')
    digests = {}
    # ci/app: 6 builds and a release; team/web: 3 tags, no policy; old/thing: all old.
    for number in range(6):
        digests['ci/app', 'b%d' % number] = stack.push_image('ci/app', 'b%d' % number, [shared, layer('ci %d' % number)])
        stack.set_pushed('ci/app', 'b%d' % number, 10 - number)
    digests['ci/app', 'v1.2.3'] = stack.push_image('ci/app', 'v1.2.3', [shared, layer('release')])
    stack.set_pushed('ci/app', 'v1.2.3', 50)
    digests['ci/app', 'latest'] = digests['ci/app', 'b5']
    stack.push_image('ci/app', 'latest', [shared, layer('ci 5')])
    for tag in ('x', 'y', 'z'):
        digests['team/web', tag] = stack.push_image('team/web', tag, [shared, layer('web ' + tag)])
    digests['old/thing', 'a'] = stack.push_image('old/thing', 'a', [layer('old a', 256 * 1024)])
    stack.set_pushed('old/thing', 'a', 400)
    stack.settings['policies'] = [
        {'repositories': ['ci/*'], 'keep_newest': 3, 'keep_tags': [r'v[0-9]+(\.[0-9]+){2}']},
        {'repositories': ['old/**'], 'delete_older_than': '52w'},
    ]
    registry_before = stack.inspect()

    code, dry, log = stack.gc(target_python, '--dry-run')
    assert code == 0, log
    listed = [(tag['repository'], tag['tag']) for tag in dry['deleted_tags']]
    assert listed == [('ci/app', 'b0'), ('ci/app', 'b1'), ('ci/app', 'b2'), ('old/thing', 'a')], log
    assert dry['gc'] is None and all(stack.pulls_whole(*key) for key in digests), 'the dry run changed something'

    code, result, log = stack.gc(target_python)
    assert code == 0, log
    assert [(tag['repository'], tag['tag']) for tag in result['deleted_tags']] == listed
    assert result['gc']['blobs_deleted'] > 0 and result['gc']['manifests_deleted'] == 4, log
    # Each deleted image had one layer (and a config) of its own: 3 x 64 KiB + 256 KiB at least.
    assert result['bytes_freed'] >= 3 * 64 * 1024 + 256 * 1024, result
    for (repository, tag), digest in digests.items():
        gone = (repository, tag) in listed
        assert stack.pulls_whole(repository, tag) is not gone, (repository, tag)
        assert stack.pulls_whole(repository, digest) is not gone, (repository, digest)

    after = stack.inspect()
    assert after['Id'] == registry_before['Id'] and after['State']['Running']
    assert after['State']['StartedAt'] != registry_before['State']['StartedAt'], 'the registry was not restarted: its cache is stale'
    assert run([DOCKER, 'ps', '--all', '--quiet', '--filter', 'label=org.selfhosted.registry.maintenance-of=' + stack.project]).stdout == ''
    assert 'write window: closed after' in log


def test_writes_are_refused_during_the_window_and_a_cut_short_window_is_closed_by_the_next_run(stack, newest_target_python):
    stack.push_image('app', '1', [layer('one')])
    copy_name = stack.project + '-registry-maintenance'
    # The window as a run leaves it when cut short after stopping the registry.
    registry = stack.inspect()
    run([DOCKER, 'create', '--name', copy_name, '--network', stack.network, '--network-alias', 'registry',
         '--label', 'org.selfhosted.registry.maintenance-of=' + stack.project,
         '--env', 'REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled": true}',
         '--volume', stack.storage + ':/var/lib/registry',
         '--volume', stack.config_dir + ':/etc/distribution:ro', registry['Config']['Image'], '/etc/distribution/config.yml'])
    run([DOCKER, 'start', copy_name])
    run([DOCKER, 'stop', stack.name])
    copy_address = stack.inspect(copy_name)['NetworkSettings']['Networks'][stack.network]['IPAddress']
    deadline = time.monotonic() + 20
    while True:
        try:
            status = stack.request('POST', '/v2/app/blobs/uploads/', address=copy_address)[0]
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert status == 405, 'the read-only copy took a write'
    assert stack.request('GET', '/v2/app/manifests/1', headers={'Accept': MANIFEST_TYPE}, address=copy_address)[0] == 200

    code, result, log = stack.gc(newest_target_python)
    assert code == 0, log
    assert 'left from a run cut short' in log
    assert stack.inspect()['State']['Running'] and result['gc'] is not None
    assert run([DOCKER, 'ps', '--all', '--quiet', '--filter', 'name=' + copy_name]).stdout == ''
    assert stack.pulls_whole('app', '1')


def test_a_layer_collected_is_never_reported_present_and_the_image_pushes_again(stack, newest_target_python):
    data = layer('collected, then pushed again')
    stack.push_image('app', 'gone', [data])
    stack.push_image('app', 'other', [layer('kept')])
    digest = 'sha256:' + hashlib.sha256(data).hexdigest()
    # In the registry's cache since the push.
    assert stack.request('HEAD', '/v2/app/blobs/' + digest)[0] == 200

    # The hazard is real: a plain garbage-collect in the running registry
    # leaves the cache claiming the collected layer.
    os.remove(os.path.join(stack.storage, 'docker/registry/v2/repositories/app/_manifests/tags/gone/current/link'))
    collected = run([DOCKER, 'exec', stack.name, 'registry', 'garbage-collect', '/etc/distribution/config.yml', '--delete-untagged'])
    assert collected.returncode == 0
    assert not os.path.exists(os.path.join(stack.storage, 'docker/registry/v2/blobs/sha256', digest[7:9], digest[7:]))
    assert stack.request('HEAD', '/v2/app/blobs/' + digest)[0] == 200, 'no stale cache here: this test would show nothing'

    # registry_gc.py restarts the registry after collecting.
    stack.push_image('app', 'gone2', [data])
    stack.settings['policies'] = [{'repositories': ['app'], 'keep_newest': 0, 'keep_tags': ['other']}]
    code, result, log = stack.gc(newest_target_python)
    assert code == 0, log
    assert result['deleted_tags'][0]['tag'] == 'gone2' and result['gc']['blobs_deleted'] >= 1
    assert stack.request('HEAD', '/v2/app/blobs/' + digest)[0] == 404, 'the registry still claims the collected layer'
    stack.push_image('app', 'again', [data])
    assert stack.pulls_whole('app', 'again') and stack.pulls_whole('app', 'other')
