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

- with TLS, as deployed: an nginx 1.30 in front of each node with the proxy
  role's TLS and upstream settings (roles/proxy/templates/nginx.conf.j2:
  TLS 1.2/1.3, its ciphers, keep-alive and buffers to the registry), and
  two more haproxy that end TLS for the registry's name and open TLS to
  those nginx, verifying the node's certificate by its name (the balancer
  role's `ssl verify required ... sni`); one self-signed ECDSA P-256
  certificate for the name, the certificates role's default key.

A blob of --blob-mib MiB is pushed once; then, in one run and in alternating
rounds, --clients clients each pull it --pulls times in full (checked
against its digest), in six ways: straight from one node, through haproxy
to one node, through haproxy to two, each in plain HTTP and with TLS on
every hop. Reported: MiB/s of all clients together, the median and 95th
percentile of one pull, and the memory of each part afterwards (resident)
and the CPU time each part used in the rounds (from docker top). The
clients are Python threads on the same two cores: with TLS they decrypt
too. Bounded: rounds x 6 x clients x pulls pulls.

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
import ssl
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
NGINX_IMAGE = 'selfhosted-test/nginx:1.30.6'
REPOSITORY = 'bench/cluster'
NAME = 'registry.bench.test'
# The proxy role's defaults (roles/proxy/defaults/main.yml).
CIPHERS = ('ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:'
           'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305')


def haproxy_config(servers, tls):
    """The balancer role's frontend and backend (roles/balancer/templates/haproxy.cfg.j2); `servers`: (name, address)
    of the registry containers (plain HTTP) or of the nginx in front of them (`tls`)."""
    if tls:
        bind = '    bind :443 ssl crt /etc/bench/site.pem alpn http/1.1'
        server = ('    default-server ssl verify required ca-file /etc/bench/fullchain.pem sni str(%s) verifyhost %s'
                  ' check check-sni %s inter 1s fall 2 rise 2' % (NAME, NAME, NAME))
        port = 443
    else:
        bind, server, port = '    bind :80', '    default-server check inter 1s fall 2 rise 2', 5000
    return '\n'.join([
        'global', '    maxconn 4096', '    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets',
        '    ssl-default-server-options ssl-min-ver TLSv1.2',
        'defaults', '    mode http', '    timeout connect 3s', '    timeout client 900s', '    timeout server 900s',
        '    retries 3', '    option redispatch 1',
        'frontend registry', bind, '    default_backend nodes',
        'backend nodes', '    balance leastconn', '    option httpchk',
        '    http-check send meth GET uri /v2/ ver HTTP/1.1 hdr Host %s' % NAME,
        '    http-check expect rstatus ^(200|401)$',
        '    retry-on conn-failure empty-response response-timeout 502 504',
        server]
        + ['    server %s %s:%d' % (name, address, port) for name, address in servers] + [''])


def nginx_config(node):
    """The proxy role's TLS server and upstream settings (roles/proxy/templates/nginx.conf.j2) in front of `node`."""
    return '\n'.join([
        'worker_processes auto;', 'error_log stderr warn;', 'events { worker_connections 1024; }',
        'http {', '    sendfile on;', '    keepalive_timeout 65s;', '    access_log off;',
        '    upstream registry { server %s:5000; keepalive 32; }' % node.address,
        '    server {', '        listen 443 ssl;', '        server_name %s;' % NAME,
        '        ssl_certificate /etc/bench/fullchain.pem;', '        ssl_certificate_key /etc/bench/privkey.pem;',
        '        ssl_protocols TLSv1.2 TLSv1.3;', '        ssl_ciphers %s;' % CIPHERS, '        ssl_prefer_server_ciphers off;',
        '        ssl_session_cache shared:TLS:10m;', '        ssl_session_tickets off;',
        '        client_max_body_size 0;', '        chunked_transfer_encoding on;',
        '        location /v2/ {', '            proxy_pass http://registry;', '            proxy_http_version 1.1;',
        '            proxy_set_header Connection "";', '            proxy_set_header Host %s;' % NAME,
        '            proxy_request_buffering off;', '            proxy_buffering on;', '            proxy_buffers 16 64k;',
        '            proxy_max_temp_file_size 0;', '        }', '    }', '}', ''])


def certificate(directory):
    """A self-signed ECDSA P-256 certificate for NAME in `directory`: fullchain.pem, privkey.pem, and site.pem (both,
    for haproxy)."""
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
                    '-subj', '/CN=' + NAME, '-addext', 'subjectAltName=DNS:' + NAME,
                    '-keyout', os.path.join(directory, 'privkey.pem'), '-out', os.path.join(directory, 'fullchain.pem')],
                   capture_output=True, check=True)
    with open(os.path.join(directory, 'site.pem'), 'w', encoding='ascii') as site:
        for name in ('fullchain.pem', 'privkey.pem'):
            with open(os.path.join(directory, name), encoding='ascii') as part:
                site.write(part.read())
    for name in ('fullchain.pem', 'privkey.pem', 'site.pem'):
        os.chmod(os.path.join(directory, name), 0o644)  # read by the containers' own users; a throwaway key


class Part:
    """A container of the benchmark on the platform's network, with files of its own mounted at /etc/bench."""

    def __init__(self, root, name, files, tls_dir, command, port, tls):
        self.name = 'cluster-bench-%s-%s' % (name, uuid.uuid4().hex[:6])
        directory = os.path.join(root, self.name)
        os.makedirs(directory)
        for file_name, text in files.items():
            with open(os.path.join(directory, file_name), 'w', encoding='utf-8') as handle:
                handle.write(text)
        for file_name in ('fullchain.pem', 'privkey.pem', 'site.pem'):
            os.link(os.path.join(tls_dir, file_name), os.path.join(directory, file_name))
        os.chmod(directory, 0o755)
        subprocess.run([DOCKER, 'run', '--detach', '--name', self.name, '--network', cluster.NETWORK,
                        '--volume', directory + ':/etc/bench:ro'] + command, capture_output=True, check=True)
        self.port, self.tls = port, tls
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if request(self.address, self.port, self.tls, tls_dir, 'GET', '/v2/')[0] in (200, 401):
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


def haproxy(root, tls_dir, servers, tls):
    install = ('apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -qq -y haproxy >/dev/null'
               ' && exec haproxy -db -f /etc/bench/haproxy.cfg')
    return Part(root, 'haproxy-%d%s' % (len(servers), '-tls' if tls else ''), {'haproxy.cfg': haproxy_config(servers, tls)}, tls_dir,
                [HAPROXY_IMAGE, 'sh', '-ec', install], 443 if tls else 80, tls)


def nginx(root, tls_dir, node):
    return Part(root, 'nginx', {'nginx.conf': nginx_config(node)}, tls_dir,
                [NGINX_IMAGE, 'nginx', '-g', 'daemon off;', '-c', '/etc/bench/nginx.conf'], 443, True)


def connect(address, port, tls, tls_dir, timeout):
    if not tls:
        return http.client.HTTPConnection(address, port, timeout=timeout)
    # The certificate is checked against the one for NAME; the address is no name.
    context = ssl.create_default_context(cafile=os.path.join(tls_dir, 'fullchain.pem'))
    context.check_hostname = False
    return http.client.HTTPSConnection(address, port, timeout=timeout, context=context)


def request(address, port, tls, tls_dir, method, path):
    connection = connect(address, port, tls, tls_dir, 60)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def pull(way, path, digest):
    """One pull of the blob in full, its digest checked: seconds."""
    start = time.monotonic()
    connection = connect(way['address'], way['port'], way['tls'], way['tls_dir'], 120)
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


def round_of_pulls(way, path, digest, clients, pulls):
    """clients x pulls pulls at once: (wall seconds, [seconds of each pull])."""
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        times = list(pool.map(lambda _index: [pull(way, path, digest) for _pull in range(pulls)], range(clients)))
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
    nodes, fronts = [], []
    try:
        certificate(root)
        for purge_uploads in (True, False):
            nodes.append(cluster.Node(root, cluster.node_config(s3, cache, secret, prefix, purge_uploads)))
        blob = nodes[0].push_blob(REPOSITORY, os.urandom(args.blob_mib << 20))
        path = '/v2/%s/blobs/%s' % (REPOSITORY, blob['digest'])
        nginxes = [nginx(root, root, node) for node in nodes]
        plain = [(node.name, node.address) for node in nodes]
        tls = [(front.name, front.address) for front in nginxes]
        fronts = nginxes + [haproxy(root, root, plain[:1], False), haproxy(root, root, plain, False),
                            haproxy(root, root, tls[:1], True), haproxy(root, root, tls, True)]

        def way(part, port=None, with_tls=None):
            return {'address': part.address, 'port': port or part.port, 'tls': part.tls if with_tls is None else with_tls, 'tls_dir': root}
        ways = {'plain HTTP, straight from one node': way(nodes[0], 5000, False),
                'plain HTTP, through haproxy, one node': way(fronts[2]),
                'plain HTTP, through haproxy, two nodes': way(fronts[3]),
                'TLS, straight from one node (its nginx)': way(fronts[0]),
                'TLS, through haproxy, one node': way(fronts[4]),
                'TLS, through haproxy, two nodes': way(fronts[5])}
        results = {label: [] for label in ways}
        for label, where in ways.items():  # warm: each node's cache knows the blob
            round_of_pulls(where, path, blob['digest'], 2, 1)
        parts = [part.name for part in nodes + fronts] + ['selfhosted-test-ceph', 'selfhosted-test-valkey']
        before = usage(parts)
        for _round in range(args.rounds):
            for label, where in ways.items():
                results[label].append(round_of_pulls(where, path, blob['digest'], args.clients, args.pulls))
        used = usage(parts)
    finally:
        for part in nodes + fronts:
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
