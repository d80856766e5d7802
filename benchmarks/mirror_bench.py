# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: pulls of a multi-layer image through the Docker Hub mirror, against pulls from its upstream (not a test).

On the stack that `scripts/demo` deploys, whose mirror (registry_mirror_domain,
the registry role) caches the test platform's image mirror as its "Docker Hub":

1. a new image of --layers random layers of --layer-bytes each is pushed to
   the platform's mirror (the upstream; plain HTTP on loopback), so that our
   mirror has none of it;
2. pulls of it, as a client makes them (the manifest, then every blob in
   full, each checked against its digest), in one run, side by side:
   - straight from the upstream (--repeat times);
   - through our mirror, the first time: it fetches from the upstream, stores
     and serves at once;
   - through our mirror, cached (--repeat times);
   - through our mirror while the upstream refuses its connections (a
     firewall rule on the demo host), cached (--repeat times).

Pulls through the mirror go over TLS through nginx, as clients make them;
those from the upstream are plain HTTP on loopback, the best any client
gets from it. Bounded: (3 * --repeat + 1) pulls.

Needs `scripts/demo` first. Run from the repository root:
  .venv/bin/python benchmarks/mirror_bench.py [--layers 8] [--layer-bytes 8388608] [--repeat 5]
Results go to stdout as Markdown (docs/performance.md, "Docker Hub mirror").
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import statistics
import subprocess
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))

import registry_api  # noqa: E402 pylint: disable=import-error,wrong-import-position

DOCKER = '/usr/bin/docker'
HOST = 'demo-demo'  # the demo's host container (molecule/demo)
MIRROR = 'mirror.demo.selfhosted.test'
PORT = 8443
CA = '/etc/docker/certs.d/%s:%d/ca.crt' % (MIRROR, PORT)
UPSTREAM_CONTAINER = 'selfhosted-test-mirror'  # the platform's image mirror (tests/platform/platform)


def upstream_port():
    done = subprocess.run([DOCKER, 'port', UPSTREAM_CONTAINER, '5000/tcp'], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0].rsplit(':', 1)[1])


class Registry(registry_api.ImageClient):
    """Pushes and pulls with the integration tests' client, one connection per request, as a new client would."""

    def __init__(self, host, port, tls):
        self.host, self.port = host, port
        self.context = ssl.create_default_context(cafile=CA) if tls else None

    def request(self, method, path, body=None, headers=None):
        if self.context:
            connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=300)
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=300)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheader('Location'), response.read()
        finally:
            connection.close()

    def pull(self, repository, tag):
        """Seconds for the manifest and every blob in full, each checked against its digest."""
        start = time.monotonic()
        assert self.pulls_whole(repository, tag), 'the pull of %s:%s through %s failed' % (repository, tag, self.host)
        return time.monotonic() - start


def upstream_refused(action, address):
    """The upstream refuses the mirror's connections (a firewall rule on the host), as a registry that is down does."""
    subprocess.run([DOCKER, 'exec', HOST, 'iptables', action, 'DOCKER-USER', '--destination', address, '--protocol', 'tcp',
                    '--jump', 'REJECT', '--reject-with', 'tcp-reset'], check=True)


def upstream_address():
    done = subprocess.run([DOCKER, 'inspect', '--format', '{{ (index .NetworkSettings.Networks "selfhosted-test").IPAddress }}',
                           UPSTREAM_CONTAINER], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--layers', type=int, default=8)
    parser.add_argument('--layer-bytes', type=int, default=8 << 20)
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()

    upstream = Registry('127.0.0.1', upstream_port(), tls=False)
    mirror = Registry(MIRROR, PORT, tls=True)
    repository, tag = 'library/bench-mirror', uuid.uuid4().hex[:12]
    started = time.monotonic()
    upstream.push_image(repository, tag, [os.urandom(args.layer_bytes) for _layer in range(args.layers)])
    pushed = time.monotonic() - started

    rows = [('from the upstream, straight', [upstream.pull(repository, tag) for _attempt in range(args.repeat)])]
    rows.append(('through the mirror, first (fetched from the upstream)', [mirror.pull(repository, tag)]))
    rows.append(('through the mirror, cached', [mirror.pull(repository, tag) for _attempt in range(args.repeat)]))
    address = upstream_address()
    upstream_refused('--insert', address)
    try:
        rows.append(('through the mirror, cached, upstream refusing', [mirror.pull(repository, tag) for _attempt in range(args.repeat)]))
    finally:
        upstream_refused('--delete', address)

    size = args.layers * args.layer_bytes
    print('Image: %d layers of %d bytes (%.0f MiB), pushed to the upstream in %.1f s.\n' % (args.layers, args.layer_bytes, size / 2**20, pushed))
    print('| pull | runs | median | min | max | MiB/s (median) |')
    print('|---|---|---|---|---|---|')
    for name, times in rows:
        median = statistics.median(times)
        print('| %s | %d | %.2f s | %.2f s | %.2f s | %.0f |' % (name, len(times), median, min(times), max(times), size / 2**20 / median))


if __name__ == '__main__':
    main()
