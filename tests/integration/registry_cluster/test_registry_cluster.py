# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two registry 3.1.1 nodes on one S3 bucket and one Valkey cache, as the registry role configures them.

The platform's add-ons give the shared parts: Ceph RGW (tests/platform/ceph,
path-style S3 on a bucket) and Valkey (tests/platform/valkey, an ACL user).
Both nodes get the configuration the role renders with registry_storage_driver
s3 and registry_redis_address set, with one HTTP secret:
- an image pushed through one node pulls whole, by digest, from the other;
- a chunked upload whose requests alternate between the nodes completes with
  the right digest (upload state is signed with the shared secret);
- a blob deleted through one node is gone on the other at once, while a node
  with the in-memory cache still answers for it (why nodes share a cache);
- with Valkey stopped, pushes and pulls go on (the registry reads storage);
- with radosgw stopped, every request ends with an error, none hangs, and
  the nodes serve again by themselves once it is back.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
import subprocess
import sys
import time
import uuid

import pytest

import registry_api  # pylint: disable=import-error
from registry_api import MANIFEST_TYPE, ImageClient  # pylint: disable=import-error
from registry_container import DOCKER, registry_image  # pylint: disable=import-error
from targets import REPO, run  # pylint: disable=import-error

PLATFORM = os.path.join(REPO, 'tests', 'platform')
GC_PROGRAM = os.path.join(REPO, 'roles', 'registry', 'files', 'registry_gc.py')
sys.path.insert(0, os.path.dirname(GC_PROGRAM))
import registry_storage  # noqa: E402 pylint: disable=import-error,wrong-import-position
NETWORK = 'selfhosted-test'
VALKEY = 'selfhosted-test-valkey'
# Long enough for any request of these tests; a request that takes longer hangs.
REQUEST_TIMEOUT = 30


def addon(name, *command):
    done = run([os.path.join(PLATFORM, name)] + list(command), check=False, timeout=900)
    if done.returncode != 0:
        pytest.fail('tests/platform/%s %s failed:\n%s%s' % (name, ' '.join(command), done.stdout, done.stderr))
    return dict(line.split('=', 1) for line in done.stdout.splitlines() if '=' in line and ': ' not in line)


def node_config(s3, cache, secret, prefix, purge_uploads=True):
    """config.yml as the registry role renders it for a node (vars/main.yml); `cache` None: in memory."""
    storage = {
        's3': {'region': s3['region'], 'bucket': s3['bucket'], 'regionendpoint': 'http://s3.selfhosted.test:7480',
               'accesskey': s3['accesskey'], 'secretkey': s3['secretkey'], 'rootdirectory': prefix,
               'secure': False, 'forcepathstyle': True},
        'redirect': {'disable': True},
        'delete': {'enabled': True},
        'cache': {'blobdescriptor': 'redis' if cache else 'inmemory'},
    }
    if not purge_uploads:
        # Only `enabled: false` may stand alone: `true` without age and interval panics.
        storage['maintenance'] = {'uploadpurging': {'enabled': False}}
    config = {'version': '0.1', 'log': {'level': 'warn'}, 'storage': storage,
              'http': {'addr': ':5000', 'secret': secret, 'draintimeout': '5s', 'relativeurls': True},
              'health': {'storagedriver': {'enabled': True, 'interval': '10s', 'threshold': 3}}}
    if cache:
        config['redis'] = {'addrs': ['cache.selfhosted.test:6379'], 'username': cache['username'],
                           'password': cache['password'], 'db': 0, 'dialtimeout': '200ms', 'readtimeout': '200ms',
                           'writetimeout': '200ms', 'maxretries': 1}
    return json.dumps(config)  # YAML reads JSON


def container_address(name):
    return json.loads(run([DOCKER, 'inspect', name]).stdout)[0]['NetworkSettings']['Networks'][NETWORK]['IPAddress']


class Node(ImageClient):
    """One registry container on the platform's network, reached by its address there; as the service
    `registry` of a compose project (labels, health check) that registry_gc.py finds, when one is given."""

    def __init__(self, root, config, project=None):
        self.name = (project + '-registry-1') if project else 'registry-cluster-it-' + uuid.uuid4().hex[:8]
        self.project = project
        config_dir = os.path.join(root, self.name)
        os.makedirs(config_dir)
        with open(os.path.join(config_dir, 'config.yml'), 'w', encoding='utf-8') as handle:
            handle.write(config)
        os.chmod(config_dir, 0o755)
        compose = ['--label', 'com.docker.compose.project=' + project, '--label', 'com.docker.compose.service=registry',
                   '--health-cmd', 'wget -q --spider http://127.0.0.1:5000/', '--health-interval', '1s',
                   '--stop-timeout', '10'] if project else []
        run([DOCKER, 'run', '--detach', '--name', self.name, '--network', NETWORK, '--read-only',
             '--env', 'OTEL_TRACES_EXPORTER=none', '--volume', config_dir + ':/etc/distribution:ro']
            + compose + [registry_image('3.1.1'), '/etc/distribution/config.yml'])
        if not self.answers():
            logs = self.logs()
            self.remove()
            pytest.fail('node %s did not answer:\n%s' % (self.name, logs))

    @property
    def address(self):
        """Asked each time: a restart may give the container another one."""
        return container_address(self.name)

    def request(self, method, path, body=None, headers=None):
        return registry_api.request(self.address, method, path, body, headers, timeout=REQUEST_TIMEOUT)

    def gc(self, python, phase, root, cache=None, storage=None, policies=(), dry_run=False):
        """registry_gc.py --phase on this node, as the role runs it: (exit code, JSON result or None, log).

        `storage` is the s3 section of config.yml as this host reaches the bucket (None: without keys). The settings
        go in a file, as the role gives them."""
        settings = {'project': self.project, 'service': 'registry', 'config_path': '/etc/distribution/config.yml',
                    'storage': {'s3': storage or {'bucket': 'unread'}}, 'policies': list(policies), 'protected_tags': ['latest'],
                    'overlap_seconds': 1, 'proxy_reload_script': '', 'lock_file': os.path.join(root, self.name + '.lock'),
                    'cache': cache}
        settings_file = os.path.join(root, self.name + '-gc.json')
        with open(settings_file, 'w', encoding='utf-8') as handle:
            json.dump(settings, handle)
        done = subprocess.run([python, GC_PROGRAM, '--json', settings_file, '--phase', phase] + (['--dry-run'] if dry_run else []),
                              capture_output=True, text=True, timeout=300, check=False)
        return done.returncode, (json.loads(done.stdout) if done.stdout.strip() else None), done.stderr

    def logs(self):
        done = run([DOCKER, 'logs', '--tail', '30', self.name], check=False)
        return done.stdout + done.stderr

    def remove(self):
        run([DOCKER, 'rm', '--force', self.name], check=False)
        if self.project:
            run([DOCKER, 'rm', '--force', self.project + '-registry-maintenance'], check=False)


@pytest.fixture(scope='module', name='shared')
def fixture_shared():
    """S3 and cache credentials. Ceph and Valkey run for this file's tests only (Ceph holds ~300 MB), which
    run in one process (scripts/test: --dist loadfile): some stop them."""
    # The add-ons live on the platform's network (idempotent; the molecule
    # lane may bring it up at the same time, under the platform's lock).
    addon('platform', 'up')
    addon('ceph', 'up')
    addon('valkey', 'up')
    s3, cache = addon('ceph', 'credentials'), addon('valkey', 'credentials')
    try:
        yield s3, cache
    finally:
        addon('ceph', 'down')
        addon('valkey', 'down')


@pytest.fixture(name='nodes')
def fixture_nodes(shared, tmp_path):
    """Two nodes with one secret, a cache and a key prefix of their own in the bucket; one purges uploads."""
    s3, cache = shared
    secret, prefix = secrets.token_hex(32), '/it-' + uuid.uuid4().hex[:8]
    made = []
    try:
        for purge_uploads in (True, False):
            made.append(Node(str(tmp_path), node_config(s3, cache, secret, prefix, purge_uploads)))
        yield made, (s3, secret, prefix)
    finally:
        for node in made:
            node.remove()


def layer(seed, size=256 * 1024):
    return (seed.encode() * (size // len(seed) + 1))[:size]


def test_an_image_pushed_through_one_node_pulls_whole_from_the_other(nodes):
    (first, second), _settings = nodes
    digest = first.push_image('team/app', '1', [layer('base'), layer('app one', 3 * 1024 * 1024)])
    assert second.pulls_whole('team/app', digest), second.logs()
    assert second.pulls_whole('team/app', '1')


def test_a_chunked_upload_alternating_between_the_nodes_completes(nodes):
    (first, second), _settings = nodes
    data = os.urandom(5 * 1024 * 1024 + 17)
    digest = 'sha256:' + hashlib.sha256(data).hexdigest()
    status, location, _body = first.request('POST', '/v2/hop/blobs/uploads/')
    assert status == 202, status
    chunk, offset, turn = 1024 * 1024, 0, 1
    while offset < len(data):
        part = data[offset:offset + chunk]
        node = (first, second)[turn % 2]
        status, location, body = node.request('PATCH', location, body=part, headers={
            'Content-Type': 'application/octet-stream', 'Content-Range': '%d-%d' % (offset, offset + len(part) - 1)})
        assert status == 202, (node.name, status, body)
        offset, turn = offset + len(part), turn + 1
    status, _location, body = (first, second)[turn % 2].request('PUT', '%s&digest=%s' % (location, digest))
    assert status == 201, (status, body)
    status, _location, fetched = first.request('GET', '/v2/hop/blobs/' + digest)
    assert status == 200 and fetched == data


def test_a_blob_deleted_through_one_node_is_gone_on_the_other_at_once(nodes, shared, tmp_path):
    (first, second), (s3, secret, prefix) = nodes
    # A third node with the in-memory cache shows the hazard the shared cache removes.
    alone = Node(str(tmp_path), node_config(s3, None, secret, prefix, purge_uploads=False))
    try:
        blob = first.push_blob('gone/soon', layer('deleted through the first node'))
        path = '/v2/gone/soon/blobs/' + blob['digest']
        for node in (first, second, alone):
            assert node.request('HEAD', path)[0] == 200, node.name
        assert first.request('DELETE', path)[0] == 202
        assert second.request('HEAD', path)[0] == 404, 'the second node still answers from a stale cache'
        assert alone.request('HEAD', path)[0] == 200, 'no stale in-memory cache: this test shows nothing'
    finally:
        alone.remove()


def test_pushes_and_pulls_go_on_while_the_cache_is_down(nodes):
    (first, second), _settings = nodes
    before = first.push_image('cached/app', '1', [layer('before the outage')])
    assert second.pulls_whole('cached/app', before)
    run([DOCKER, 'stop', VALKEY])
    try:
        during = second.push_image('cached/app', '2', [layer('during the outage')])
        assert first.pulls_whole('cached/app', during), first.logs()
        assert first.pulls_whole('cached/app', before) and second.pulls_whole('cached/app', before)
    finally:
        run([DOCKER, 'start', VALKEY])
    addon('valkey', 'up')
    assert first.pulls_whole('cached/app', during) and second.pulls_whole('cached/app', before)


def test_with_the_storage_stopped_requests_fail_without_hanging_and_recover_by_themselves(nodes):
    (first, second), _settings = nodes
    digest = first.push_image('outage/app', '1', [layer('stored before the outage')])
    addon('ceph', 'stop-rgw')
    outcomes = []
    try:
        for node in (first, second):
            started = time.monotonic()
            try:
                outcome = node.request('GET', '/v2/outage/app/manifests/' + digest, headers={'Accept': MANIFEST_TYPE})[0]
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
            outcomes.append((node.name, outcome, round(time.monotonic() - started, 1)))
        assert all(outcome != 200 for _name, outcome, _seconds in outcomes), outcomes
        assert first.request('POST', '/v2/outage/app/blobs/uploads/')[0] >= 500
    finally:
        addon('ceph', 'start-rgw')
    deadline = time.monotonic() + 60
    while not (first.pulls_whole('outage/app', digest) and second.pulls_whole('outage/app', digest)):
        assert time.monotonic() < deadline, 'the nodes did not serve again within 60 s of the storage\'s return'
        time.sleep(1)
    print('with radosgw stopped (node, answer, seconds):', outcomes)


def cached_keys(cache, digest):
    """The keys of the shared cache that name this digest."""
    return run([DOCKER, 'exec', VALKEY, 'valkey-cli', '--user', cache['username'], '--pass', cache['password'],
                '--no-auth-warning', '--scan', '--pattern', '*%s*' % digest]).stdout.split()


def test_garbage_collected_through_one_node_is_gone_on_both_and_the_rest_pulls_whole(shared, tmp_path, newest_target_python):
    s3, cache = shared
    secret, prefix, root = secrets.token_hex(32), '/gc-' + uuid.uuid4().hex[:8], str(tmp_path)
    nodes = []
    try:
        for number in (1, 2):
            nodes.append(Node(root, node_config(s3, cache, secret, prefix, number == 1),
                              project='cluster-gc-%d-%s' % (number, uuid.uuid4().hex[:6])))
        first, second = nodes
        kept = first.push_image('app', 'kept', [layer('shared base'), layer('kept')])
        dropped = first.push_image('app', 'dropped', [layer('shared base'), layer('only the dropped image')])
        only_dropped = 'sha256:' + hashlib.sha256(layer('only the dropped image')).hexdigest()
        assert first.request('DELETE', '/v2/app/manifests/' + dropped)[0] == 202
        # Retention on S3 reads push dates in the bucket: of `old` and `new` (a
        # second apart; S3 dates have seconds) a policy keeps the newest.
        old = first.push_image('app', 'old', [layer('shared base'), layer('only the old image')])
        time.sleep(1.5)
        second.push_image('app', 'new', [layer('shared base'), layer('new')])
        only_old = 'sha256:' + hashlib.sha256(layer('only the old image')).hexdigest()
        storage = {'regionendpoint': s3['endpoint'], 'region': s3['region'], 'bucket': s3['bucket'], 'accesskey': s3['accesskey'],
                   'secretkey': s3['secretkey'], 'rootdirectory': prefix, 'secure': False, 'forcepathstyle': True}
        policies = [{'repositories': ['app'], 'keep_newest': 1, 'keep_tags': ['kept']}]
        code, result, log = first.gc(newest_target_python, 'all', root, storage=storage, policies=policies, dry_run=True)
        assert code == 0, log
        assert [(tag['repository'], tag['tag'], tag['digest']) for tag in result['deleted_tags']] == [('app', 'old', old)], log
        assert first.pulls_whole('app', old), 'the dry run changed something'
        # A bucket with more keys than one listing gives reads the same, page by page.
        paged = registry_storage.S3Storage(storage, page_size=2)
        assert len(paged.objects(registry_storage.REPOSITORIES + '/')) > 4
        assert paged.tags() == registry_storage.S3Storage(storage).tags()
        assert sorted(tag for tag, _pushed in paged.tags()['app']) == ['kept', 'new', 'old']
        # Both nodes look the layer up: the shared cache now holds it.
        for node in nodes:
            assert node.request('HEAD', '/v2/app/blobs/' + only_dropped)[0] == 200
        assert cached_keys(cache, only_dropped), 'the cache holds nothing of the layer: this test would show nothing'
        cache_at = dict(cache, db=0)

        for node in nodes:
            code, _result, log = node.gc(newest_target_python, 'open', root)
            assert code == 0, log
            # Its read-only copy serves meanwhile (behind nginx, under the registry's name).
            copy = container_address(node.project + '-registry-maintenance')
            assert registry_api.request(copy, 'POST', '/v2/app/blobs/uploads/')[0] == 405, 'a node took a write in the window'
            assert registry_api.request(copy, 'GET', '/v2/app/manifests/' + kept, headers={'Accept': MANIFEST_TYPE})[0] == 200
        code, result, log = first.gc(newest_target_python, 'collect', root, cache_at, storage, policies)
        assert code == 0, log
        assert [(tag['repository'], tag['tag']) for tag in result['deleted_tags']] == [('app', 'old')], log
        assert result['gc']['blobs_deleted'] >= 2 and 'cache is flushed' in log, log
        # The layers of the dropped and the old image, at least.
        assert result['bytes_freed'] >= 2 * 256 * 1024, result
        assert cached_keys(cache, only_dropped) == []
        for node in nodes:
            code, _result, log = node.gc(newest_target_python, 'close', root)
            assert code == 0, log

        for node in nodes:
            assert node.request('HEAD', '/v2/app/blobs/' + only_dropped)[0] == 404, node.name
            assert node.request('HEAD', '/v2/app/blobs/' + only_old)[0] == 404, node.name
            assert node.request('GET', '/v2/app/manifests/old', headers={'Accept': MANIFEST_TYPE})[0] == 404, node.name
            assert node.pulls_whole('app', kept) and node.pulls_whole('app', 'new'), node.name
            assert node.request('POST', '/v2/app/blobs/uploads/')[0] == 202, 'writes are not back on ' + node.name
            assert run([DOCKER, 'ps', '--all', '--quiet', '--filter', 'name=' + node.project + '-registry-maintenance']).stdout == ''
        # Collecting without an open window is refused, and changes nothing.
        code, _result, log = second.gc(newest_target_python, 'collect', root, cache_at)
        assert code == 1 and 'not open on this host' in log
    finally:
        for node in nodes:
            node.remove()
