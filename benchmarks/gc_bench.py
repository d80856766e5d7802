# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: retention and garbage collection of a large registry, under a pull loop (not a test).

On the stack that `scripts/demo` deploys (the roles' defaults: registry
3.1.1, nginx 1.30 with TLS, token authentication, one Debian 13 host):

1. --repositories x --tags images are pushed through nginx (a config and a
   --layer-bytes layer of their own each, 8 clients), then their push dates
   set back on the host: tag i of a repository pushed i days before the last;
2. one retention policy, `bench/**: keep_newest --keep`: the dry run's time
   and what it lists;
3. registry_gc.py on the host (as its systemd unit runs it), while this
   machine pulls a kept image through nginx in a loop (a new connection and
   token each time, manifest and blobs in full) and probes a manifest every
   0.2 s: total time, the write window (writes paused), tags, manifests and
   blobs deleted, bytes freed (the program's `du` in the window), pulls and
   probes during the run, failed ones.

Needs `scripts/demo` first; leaves the images it pushed (`scripts/demo down`).
Run from the repository root:
  .venv/bin/python benchmarks/gc_bench.py [--repositories 200] [--tags 10] [--keep 5]
Results go to stdout as Markdown (docs/performance.md, "Garbage collection").
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import ssl
import subprocess
import threading
import time

DOCKER = '/usr/bin/docker'
HOST = 'demo-demo'  # the demo's host container (molecule/demo)
DOMAIN = 'registry.demo.selfhosted.test'
PORT = 8443
USER, PASSWORD = 'demo', 'demo-password-not-secret'  # molecule/demo/molecule.yml
CA = '/etc/docker/certs.d/%s:%d/ca.crt' % (DOMAIN, PORT)
PROGRAM = '/usr/local/lib/selfhosted-registry/registry_gc.py'
LINKS = '/opt/registry/data/docker/registry/v2/repositories'
MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'
DAY = 86400


class Client:
    """Docker's token flow over one TLS connection per call, as a client through nginx makes it."""

    def __init__(self):
        self.context = ssl.create_default_context(cafile=CA)
        self.tokens = {}

    def _send(self, method, path, headers=None, body=None):
        connection = http.client.HTTPSConnection(DOMAIN, PORT, context=self.context, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheader('Location'), response.getheader('WWW-Authenticate'), response.read()
        finally:
            connection.close()

    def token(self, repository, actions, fresh=False):
        key = (repository, actions)
        if fresh or key not in self.tokens:
            _status, _location, challenge, _body = self._send('GET', '/v2/')
            fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge or ''))
            realm = fields['realm'].split('/', 3)[3]
            basic = base64.b64encode(('%s:%s' % (USER, PASSWORD)).encode()).decode()
            status, _location, _challenge, body = self._send(
                'GET', '/%s?service=%s&scope=repository:%s:%s' % (realm, fields['service'], repository, actions),
                {'Authorization': 'Basic ' + basic})
            assert status == 200, status
            self.tokens[key] = json.loads(body)['token']
        return self.tokens[key]

    def request(self, method, path, repository, actions, headers=None, body=None, fresh=False):
        headers = dict(headers or {}, Authorization='Bearer ' + self.token(repository, actions, fresh))
        return self._send(method, path, headers, body)

    def push_blob(self, repository, data):
        digest = 'sha256:' + hashlib.sha256(data).hexdigest()
        status, location, _c, _b = self.request('POST', '/v2/%s/blobs/uploads/' % repository, repository, 'pull,push')
        assert status == 202, status
        status, _l, _c, body = self.request('PUT', '%s%sdigest=%s' % (location, '&' if '?' in location else '?', digest),
                                            repository, 'pull,push', {'Content-Type': 'application/octet-stream'}, data)
        assert status == 201, (status, body)
        return {'digest': digest, 'size': len(data)}

    def push_image(self, repository, tag, layer_bytes):
        seed = ('%s:%s ' % (repository, tag)).encode()
        layer = (seed * (layer_bytes // len(seed) + 1))[:layer_bytes]
        blob = dict(self.push_blob(repository, layer), mediaType='application/vnd.oci.image.layer.v1.tar')
        config = json.dumps({'architecture': 'amd64', 'os': 'linux', 'rootfs': {'type': 'layers', 'diff_ids': [blob['digest']]}}).encode()
        manifest = json.dumps({'schemaVersion': 2, 'mediaType': MANIFEST_TYPE, 'layers': [blob],
                               'config': dict(self.push_blob(repository, config), mediaType='application/vnd.oci.image.config.v1+json')}).encode()
        status, _l, _c, body = self.request('PUT', '/v2/%s/manifests/%s' % (repository, tag), repository, 'pull,push',
                                            {'Content-Type': MANIFEST_TYPE}, manifest)
        assert status == 201, (status, body)

    def pull(self, repository, tag):
        """A pull as a new client makes it: a token, the manifest, every blob in full."""
        status, _l, _c, body = self.request('GET', '/v2/%s/manifests/%s' % (repository, tag), repository, 'pull',
                                            {'Accept': MANIFEST_TYPE}, fresh=True)
        if status != 200:
            return 'manifest: HTTP %d' % status
        manifest = json.loads(body)
        for blob in [manifest['config']] + manifest['layers']:
            status, _l, _c, data = self.request('GET', '/v2/%s/blobs/%s' % (repository, blob['digest']), repository, 'pull')
            if status != 200 or 'sha256:' + hashlib.sha256(data).hexdigest() != blob['digest']:
                return 'blob %s: HTTP %d' % (blob['digest'][:19], status)
        return ''


def on_host(script, stdin=None):
    done = subprocess.run([DOCKER, 'exec', '-i', HOST, 'sh', '-c', script], input=stdin, capture_output=True, text=True,
                          timeout=3600, check=False)
    if done.returncode != 0:
        raise SystemExit('on the demo host: %s failed: %s' % (script[:80], done.stderr[-2000:]))
    return done.stdout


def loop(kind, action, interval, stop, results, max_attempts=20000):
    """Bounded: at most max_attempts, until `stop` is set."""
    client = Client()
    for _attempt in range(max_attempts):
        if stop.is_set():
            return
        start = time.monotonic()
        try:
            error = action(client)
        except (OSError, http.client.HTTPException, AssertionError, KeyError, ValueError) as exc:
            error = repr(exc)
        results.append((kind, start, time.monotonic(), error))
        time.sleep(max(0.0, interval - (time.monotonic() - start)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--repositories', type=int, default=200)
    parser.add_argument('--tags', type=int, default=10)
    parser.add_argument('--keep', type=int, default=5)
    parser.add_argument('--layer-bytes', type=int, default=64 << 10)
    args = parser.parse_args()
    if not os.path.exists(CA):
        raise SystemExit('no demo stack here: run scripts/demo first')

    repositories = ['bench/r%03d' % number for number in range(args.repositories)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda repository: [Client().push_image(repository, 't%02d' % tag, args.layer_bytes) for tag in range(args.tags)],
                      repositories))
    push_seconds = time.monotonic() - started
    now = int(time.time())
    on_host('sh', '\n'.join('touch -m -d @%d %s/%s/_manifests/tags/t%02d/current/link' % (now - (args.tags - tag) * DAY, LINKS, repository, tag)
                            for repository in repositories for tag in range(args.tags)))
    settings = json.loads(on_host('cat /opt/registry/gc.json'))
    settings['policies'] = [{'repositories': ['bench/**'], 'keep_newest': args.keep}]
    on_host('cat >/var/tmp/gc-bench.json', json.dumps(settings))

    started = time.monotonic()
    dry = json.loads(on_host('python3 %s --json --dry-run /var/tmp/gc-bench.json 2>/dev/null' % PROGRAM))
    dry_seconds = time.monotonic() - started

    kept = (repositories[0], 't%02d' % (args.tags - 1))
    stop, results = threading.Event(), []
    threads = [
        threading.Thread(target=loop, args=('pull', lambda c: c.pull(*kept), 0.5, stop, results)),
        threading.Thread(target=loop, args=('probe', lambda c: '' if c.request(
            'GET', '/v2/%s/manifests/%s' % kept, kept[0], 'pull', {'Accept': MANIFEST_TYPE})[0] == 200 else 'not 200', 0.2, stop, results)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(3)
    started = time.monotonic()
    result = json.loads(on_host('python3 %s --json /var/tmp/gc-bench.json 2>/dev/null' % PROGRAM))
    ended = time.monotonic()
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join()

    during = [r for r in results if r[1] < ended and r[2] > started]
    failed = {kind: [r for r in results if r[0] == kind and r[3]] for kind in ('pull', 'probe')}
    print('### %d repositories x %d tags, keep the newest %d (%s)\n' % (args.repositories, args.tags, args.keep, time.strftime('%Y-%m-%d')))
    print('| | |\n|---|---|')
    print('| pushed | %d images (a %d KiB layer and a config each) in %.1f s, 8 clients through nginx |'
          % (args.repositories * args.tags, args.layer_bytes >> 10, push_seconds))
    print('| dry run | %d tags listed in %.1f s |' % (len(dry['deleted_tags']), dry_seconds))
    print('| run (retention + garbage-collect) | %.1f s |' % (ended - started))
    print('| write window (writes paused) | %.1f s |' % result['window_seconds'])
    print('| deleted | %d tags, %d manifests, %d blobs (%d blobs in use) |' % (
        len(result['deleted_tags']), result['gc']['manifests_deleted'], result['gc']['blobs_deleted'], result['gc']['blobs_marked']))
    print('| bytes freed | %d (%.1f MiB) |' % (result['bytes_freed'], result['bytes_freed'] / 1048576))
    for kind in ('pull', 'probe'):
        print('| %ss during the run | %d, failed %d (over the whole loop: %d of %d) |' % (
            kind, len([r for r in during if r[0] == kind]), len([r for r in during if r[0] == kind and r[3]]),
            len(failed[kind]), len([r for r in results if r[0] == kind])))
    for kind, errors in failed.items():
        for record in errors[:5]:
            print('\n%s failed at %+.1f s: %s' % (kind, record[1] - started, record[3]))
    assert dry['deleted_tags'] == result['deleted_tags'], 'the dry run listed other tags than the run deleted'


if __name__ == '__main__':
    main()
