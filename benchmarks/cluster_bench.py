# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: concurrent pulls through haproxy to one registry node and to two, on one S3 bucket (not a test).

The parts of the several-node layout (docs/several-nodes.md), on the test
platform's network of this machine:
- the platform's Ceph RGW (tests/platform/ceph) and Valkey (tests/platform/valkey);
- two registry 3.1.1 containers with the configuration the registry role
  renders for nodes (the integration test's `node_config` and `Node`);
- two haproxy 3.0 containers from Debian 13 with the balancer role's
  backend settings (leastconn, health checks, retries): one with the first
  node alone, one with both.

A blob of --blob-mib MiB is pushed once; then, in one run and in alternating
rounds, --clients clients each pull it --pulls times in full (checked
against its digest): straight from one node, through haproxy to one node,
through haproxy to two. Reported: MiB/s of all clients together, the
median and 95th percentile of one pull, and the memory of each part
afterwards (resident) and the CPU time each part used in the rounds (from docker top). Plain HTTP on both hops: TLS's cost is "Proxy
throughput"'s. Bounded: rounds x 3 x clients x pulls pulls.

Run from the repository root (the platform's images built, nothing else running):
  .venv/bin/python benchmarks/cluster_bench.py [--blob-mib 64] [--clients 8] [--pulls 4] [--rounds 3]
Results go to stdout as Markdown (docs/performance.md, "Several nodes").
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, 'tests', 'integration'), os.path.join(REPO, 'tests', 'integration', 'registry_cluster')]

import test_registry_cluster as cluster  # pylint: disable=import-error,wrong-import-position

DOCKER = cluster.DOCKER
HAPROXY_IMAGE = 'selfhosted-test/base:debian13'
REPOSITORY = 'bench/cluster'


def haproxy_config(nodes):
    """The balancer role's backend (roles/balancer/templates/haproxy.cfg.j2), without TLS."""
    servers = '\n'.join('    server %s %s:5000' % (node.name, node.address) for node in nodes)
    return '\n'.join([
        'global', '    maxconn 4096',
        'defaults', '    mode http', '    timeout connect 3s', '    timeout client 900s', '    timeout server 900s',
        '    retries 3', '    option redispatch 1',
        'frontend registry', '    bind :80', '    default_backend nodes',
        'backend nodes', '    balance leastconn', '    option httpchk',
        '    http-check send meth GET uri /v2/ ver HTTP/1.1 hdr Host registry',
        '    http-check expect rstatus ^(200|401)$',
        '    retry-on conn-failure empty-response response-timeout 502 504',
        '    default-server check inter 1s fall 2 rise 2',
        servers, ''])


class Haproxy:
    def __init__(self, root, nodes):
        self.name = 'cluster-bench-haproxy-%d-%s' % (len(nodes), uuid.uuid4().hex[:6])
        directory = os.path.join(root, self.name)
        os.makedirs(directory)
        with open(os.path.join(directory, 'haproxy.cfg'), 'w', encoding='utf-8') as handle:
            handle.write(haproxy_config(nodes))
        os.chmod(directory, 0o755)
        subprocess.run([DOCKER, 'run', '--detach', '--name', self.name, '--network', cluster.NETWORK,
                        '--volume', directory + ':/etc/bench:ro', HAPROXY_IMAGE, 'sh', '-ec',
                        'apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -qq -y haproxy >/dev/null'
                        ' && exec haproxy -db -f /etc/bench/haproxy.cfg'], capture_output=True, check=True)
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if request(self.address, 'GET', '/v2/')[0] in (200, 401):
                    return
            except OSError:
                pass
            time.sleep(1)
        logs = subprocess.run([DOCKER, 'logs', self.name], capture_output=True, text=True, check=False).stderr
        raise SystemExit('%s did not answer: %s' % (self.name, logs[-2000:]))

    @property
    def address(self):
        return cluster.container_address(self.name)

    def remove(self):
        subprocess.run([DOCKER, 'rm', '--force', self.name], capture_output=True, check=False)


def request(address, method, path, port=80):
    connection = http.client.HTTPConnection(address, port, timeout=60)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def pull(address, port, path, digest):
    """One pull of the blob in full, its digest checked: seconds."""
    start = time.monotonic()
    connection = http.client.HTTPConnection(address, port, timeout=120)
    try:
        connection.request('GET', path)
        response = connection.getresponse()
        hasher = hashlib.sha256()
        while chunk := response.read(1 << 20):
            hasher.update(chunk)
        if response.status != 200 or 'sha256:' + hasher.hexdigest() != digest:
            raise RuntimeError('pull of %s: HTTP %d, digest %s' % (path, response.status, hasher.hexdigest()[:12]))
    finally:
        connection.close()
    return time.monotonic() - start


def round_of_pulls(address, port, path, digest, clients, pulls):
    """clients x pulls pulls at once: (wall seconds, [seconds of each pull])."""
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        times = list(pool.map(lambda _index: [pull(address, port, path, digest) for _pull in range(pulls)], range(clients)))
    return time.monotonic() - start, [seconds for client in times for seconds in client]


def cpu_seconds(clock):
    """ps's TIME, [DD-]HH:MM:SS, in seconds."""
    days, _dash, clock = clock.rpartition('-')
    hours, minutes, seconds = (int(part) for part in clock.split(':'))
    return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds


def usage(names):
    """name -> (MiB resident, CPU seconds so far) of its processes (docker stats shows neither here: no cgroup figures)."""
    used = {}
    for name in names:
        done = subprocess.run([DOCKER, 'top', name, '-o', 'pid,rss,time'], capture_output=True, text=True, check=True)
        rows = [line.split() for line in done.stdout.splitlines()[1:]]
        used[name] = (sum(int(row[1]) for row in rows) / 1024, sum(cpu_seconds(row[2]) for row in rows))
    return used


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--blob-mib', type=int, default=64)
    parser.add_argument('--clients', type=int, default=8)
    parser.add_argument('--pulls', type=int, default=4, help='pulls per client and round')
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()

    for name in ('platform', 'ceph', 'valkey'):
        cluster.addon(name, 'up')
    s3, cache = cluster.addon('ceph', 'credentials'), cluster.addon('valkey', 'credentials')
    root = tempfile.mkdtemp(prefix='cluster-bench-')
    secret, prefix = secrets.token_hex(32), '/bench-' + uuid.uuid4().hex[:8]
    nodes, balancers = [], []
    try:
        for purge_uploads in (True, False):
            nodes.append(cluster.Node(root, cluster.node_config(s3, cache, secret, prefix, purge_uploads)))
        blob = nodes[0].push_blob(REPOSITORY, os.urandom(args.blob_mib << 20))
        path = '/v2/%s/blobs/%s' % (REPOSITORY, blob['digest'])
        balancers = [Haproxy(root, nodes[:1]), Haproxy(root, nodes)]
        ways = [('straight from one node', nodes[0].address, 5000), ('through haproxy, one node', balancers[0].address, 80),
                ('through haproxy, two nodes', balancers[1].address, 80)]
        results = {label: [] for label, _address, _port in ways}
        for label, address, port in ways:  # warm: each node's cache knows the blob
            round_of_pulls(address, port, path, blob['digest'], 2, 1)
        parts = [node.name for node in nodes] + [balancer.name for balancer in balancers] + ['selfhosted-test-ceph', 'selfhosted-test-valkey']
        before = usage(parts)
        for _round in range(args.rounds):
            for label, address, port in ways:
                results[label].append(round_of_pulls(address, port, path, blob['digest'], args.clients, args.pulls))
        used = usage(parts)
    finally:
        for part in nodes + balancers:
            part.remove()
        for name in ('ceph', 'valkey'):
            cluster.addon(name, 'down')

    mib = args.blob_mib * args.clients * args.pulls
    print('%d clients, each %d pulls of a %d MiB blob per round, %d rounds (%d MiB a round)\n'
          % (args.clients, args.pulls, args.blob_mib, args.rounds, mib))
    print('| pulls | MiB/s, all clients (median of rounds) | one pull: median | p95 |')
    print('|---|---|---|---|')
    for label, rounds in results.items():
        walls = [wall for wall, _times in rounds]
        times = sorted(seconds for _wall, pulled in rounds for seconds in pulled)
        p95 = times[int(0.95 * (len(times) - 1))]
        print('| %s | %.0f | %.2f s | %.2f s |' % (label, mib / statistics.median(walls), statistics.median(times), p95))
    print('\n| part | resident memory after the rounds | CPU seconds in the rounds |')
    print('|---|---|---|')
    for name, (mib_used, cpu) in sorted(used.items()):
        print('| %s | %.0f MiB | %d |' % (name, mib_used, cpu - before[name][1]))
    print('\n%s' % json.dumps({'blob_mib': args.blob_mib, 'clients': args.clients, 'pulls': args.pulls, 'rounds': args.rounds}))


if __name__ == '__main__':
    main()
