# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: what authentication costs a registry client, htpasswd mode against token mode (not a test).

Side by side in one run, four containers of the platform's registry fixture
(default selfhosted-test/registry:3.1.1; plain HTTP on loopback, no nginx:
it costs every case the same), one filesystem storage shared read-only:

  none        no authentication: the baseline
  htpasswd5   basic auth, the user hashed at cost 5 (htpasswd mode's default)
  htpasswd12  basic auth, cost 12
  token       token auth with the token service (roles/registry/files/
              token_server.py, a Debian target's Python) on a Unix socket,
              users hashed at cost 12 (token mode's default); the client
              asks the socket where nginx would pass /auth/token to it

Measured in --rounds rounds, the order of the cases rotated each round:

1. GET /v2/ as a logged-in client makes it: --requests sequential requests
   on one kept-alive connection (token: with the token `docker login` got);
   p50 and p90, and p50 minus the baseline's;
2. requests per second of that GET from 8 clients (threads, a connection
   each) for --seconds;
3. a pull of a 10-layer image (256 KiB layers) as docker makes it: GET /v2/
   (the challenge), for token a token for pulling the repository, then the
   manifest, the config and the layers, each read in full. Token "cached":
   the service checked the user's password before; "uncached": a user it has
   not seen (one bcrypt check at cost 12). Median of --pulls per round;
4. the token service's resident memory (now and peak) after all of it.

Run from the repository root (the platform's images must exist:
tests/platform/platform images):
  .venv/bin/python benchmarks/auth_bench.py [--image selfhosted-test/registry:3.1.1] [--target debian12]
Results go to stdout as Markdown (docs/performance.md, "Token service").
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(REPO, 'roles', 'registry', 'files', 'token_server.py')
DOCKER = '/usr/bin/docker'
SERVICE = 'bench'
REPOSITORY = 'bench/app'
PASSWORD = 'benchmark-password-0123456789'
LAYERS, LAYER_BYTES = 10, 256 << 10
MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'
CASES = ('none', 'htpasswd5', 'htpasswd12', 'token')


def run(argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def request(connection, method, path, headers=None, body=None):
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, response.getheader('WWW-Authenticate'), response.read()


class Stack:
    """The registries, the token service and the files they share, in a temporary directory."""

    def __init__(self, directory, image, python, pulls):
        self.directory, self.image, self.python = directory, image, python
        self.containers, self.ports, self.server = [], {}, None
        self.socket = os.path.join(directory, 'token.sock')
        # One cached user, and one new user for every uncached pull.
        self.fresh_users = ['u%d' % number for number in range(pulls)]

    def hashes(self, cost, users):
        snippet = 'import bcrypt, sys\nfor user in sys.argv[2:]: print(user + ":" + bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(%d)).decode())' % cost
        return run([self.python, '-c', snippet, PASSWORD] + users).stdout

    def write(self, name, content):
        path = os.path.join(self.directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='ascii') as handle:
            handle.write(content)
        return path

    def registry(self, case, auth, readonly=True):
        config = ('version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n'
                  'storage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n'
                  + ('  maintenance:\n    readonly:\n      enabled: true\n' if readonly else '')
                  + 'http:\n  addr: :5000\n' + auth)
        self.write('%s/config.yml' % case, config)
        name = 'auth-bench-%s-%s' % (case, uuid.uuid4().hex[:6])
        run([DOCKER, 'run', '--detach', '--name', name, '--publish', '127.0.0.1::5000',
             '--volume', '%s/%s:/etc/bench:ro' % (self.directory, case),
             '--volume', '%s/storage:/var/lib/registry%s' % (self.directory, ':ro' if readonly else ''),
             self.image, '/etc/bench/config.yml'])
        self.containers.append(name)
        self.ports[case] = int(run([DOCKER, 'port', name, '5000/tcp']).stdout.split()[0].rsplit(':', 1)[1])
        deadline = time.monotonic() + 30
        while True:
            try:
                request(http.client.HTTPConnection('127.0.0.1', self.ports[case], timeout=5), 'GET', '/v2/')
                return
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit('registry %s did not answer: %s' % (case, run([DOCKER, 'logs', name]).stderr))
                time.sleep(0.2)

    def start(self):
        os.makedirs(os.path.join(self.directory, 'storage'))
        self.registry('none', '', readonly=False)
        push_image(http.client.HTTPConnection('127.0.0.1', self.ports['none'], timeout=30))
        for cost in (5, 12):
            self.write('htpasswd%d/htpasswd' % cost, self.hashes(cost, ['bench']))
            self.registry('htpasswd%d' % cost, 'auth:\n  htpasswd:\n    realm: bench\n    path: /etc/bench/htpasswd\n')
        key, certificate = os.path.join(self.directory, 'key.pem'), os.path.join(self.directory, 'token', 'bundle.pem')
        os.makedirs(os.path.dirname(certificate))
        run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
             '-keyout', key, '-out', certificate, '-days', '1', '-subj', '/CN=bench'])
        htpasswd = self.write('users', self.hashes(12, ['bench'] + self.fresh_users))
        config = self.write('token-service.json', json.dumps({
            'issuer': SERVICE, 'service': SERVICE, 'htpasswd': htpasswd, 'socket': self.socket,
            'signing_key': key, 'signing_certificate': certificate,
            'rules': [{'users': ['*'], 'repositories': ['**'], 'actions': ['pull', 'push']}]}))
        self.server = subprocess.Popen([self.python, SERVER, config], stderr=subprocess.DEVNULL)
        self.registry('token', 'auth:\n  token:\n    realm: http://%s/auth/token\n    service: %s\n    issuer: %s\n'
                      '    rootcertbundle: /etc/bench/bundle.pem\n' % (SERVICE, SERVICE, SERVICE))
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            if time.monotonic() > deadline:
                sys.exit('the token service did not start')
            time.sleep(0.05)

    def token(self, user, scope=None):
        """A token from the service's socket, asked as nginx passes a client's request."""
        connection = http.client.HTTPConnection('localhost', timeout=60)
        connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.sock.connect(self.socket)
        query = 'service=%s' % SERVICE + ('&scope=%s' % scope if scope else '')
        status, _challenge, body = request(connection, 'GET', '/auth/token?' + query,
                                           {'Authorization': basic(user), 'X-Real-IP': '192.0.2.30'})
        connection.close()
        assert status == 200, body
        return 'Bearer ' + json.loads(body)['token']

    def login(self, case):
        """The Authorization header of a client that logged in (None: no authentication)."""
        if case == 'none':
            return None
        return self.token('bench') if case == 'token' else basic('bench')

    def memory(self):
        with open('/proc/%d/status' % self.server.pid, encoding='ascii') as handle:
            fields = (line.split() for line in handle if line.startswith(('VmRSS:', 'VmHWM:')))
            return {field[0]: int(field[1]) / 1024 for field in fields}

    def stop(self):
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=10)
        if self.containers:
            subprocess.run([DOCKER, 'rm', '--force'] + self.containers, capture_output=True, check=False)


def basic(user):
    return 'Basic ' + base64.b64encode(('%s:%s' % (user, PASSWORD)).encode()).decode()


def push_image(connection):
    """10 random layers, a config and an OCI manifest, by monolithic uploads, to the unauthenticated registry."""
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    descriptors = []
    for data in [os.urandom(LAYER_BYTES) for _layer in range(LAYERS)] + [config]:
        digest = 'sha256:' + hashlib.sha256(data).hexdigest()
        connection.request('POST', '/v2/%s/blobs/uploads/' % REPOSITORY)
        response = connection.getresponse()
        response.read()
        location = response.getheader('Location')
        separator = '&' if '?' in location else '?'
        status, _challenge, body = request(connection, 'PUT', '%s%sdigest=%s' % (location, separator, digest),
                                           {'Content-Type': 'application/octet-stream'}, data)
        assert status == 201, body
        descriptors.append({'mediaType': 'application/vnd.oci.image.layer.v1.tar', 'digest': digest, 'size': len(data)})
    config_descriptor = dict(descriptors.pop(), mediaType='application/vnd.oci.image.config.v1+json')
    manifest = json.dumps({'schemaVersion': 2, 'mediaType': MANIFEST_TYPE, 'config': config_descriptor, 'layers': descriptors})
    status, _challenge, body = request(connection, 'PUT', '/v2/%s/manifests/latest' % REPOSITORY, {'Content-Type': MANIFEST_TYPE}, manifest)
    assert status == 201, body


def get_v2_latencies(port, authorization, count):
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    headers = {'Authorization': authorization} if authorization else {}
    seconds = []
    for _request in range(count):
        started = time.perf_counter()
        status, _challenge, _body = request(connection, 'GET', '/v2/', headers)
        seconds.append(time.perf_counter() - started)
        assert status == 200, status
    connection.close()
    return seconds


def requests_per_second(port, authorization, duration, clients=8):
    def client(_number):
        connection = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
        headers = {'Authorization': authorization} if authorization else {}
        done, deadline = 0, time.monotonic() + duration
        while time.monotonic() < deadline:
            assert request(connection, 'GET', '/v2/', headers)[0] == 200
            done += 1
        connection.close()
        return done

    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        return sum(pool.map(client, range(clients))) / duration


def pull(stack, case, user):
    """Seconds for one pull of the image as docker makes it, from its first request to its last byte."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection('127.0.0.1', stack.ports[case], timeout=60)
    status, challenge, _body = request(connection, 'GET', '/v2/')
    assert status == (200 if case == 'none' else 401), status
    if case == 'token':
        assert challenge.startswith('Bearer ')
        authorization = stack.token(user, 'repository:%s:pull' % REPOSITORY)
    else:
        authorization = None if case == 'none' else basic(user)
    headers = {'Authorization': authorization} if authorization else {}
    status, _challenge, body = request(connection, 'GET', '/v2/%s/manifests/latest' % REPOSITORY, dict(headers, Accept=MANIFEST_TYPE))
    assert status == 200, body
    manifest = json.loads(body)
    for descriptor in [manifest['config']] + manifest['layers']:
        status, _challenge, body = request(connection, 'GET', '/v2/%s/blobs/%s' % (REPOSITORY, descriptor['digest']), headers)
        assert status == 200 and len(body) == descriptor['size'], status
    connection.close()
    return time.perf_counter() - started


def milliseconds(values, quantile=0.5):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--image', default='selfhosted-test/registry:3.1.1')
    parser.add_argument('--target', default='debian12', help='the Debian target whose Python, bcrypt and cryptography run the token service')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--requests', type=int, default=200)
    parser.add_argument('--seconds', type=float, default=3.0)
    parser.add_argument('--pulls', type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 10 or not 1 <= args.pulls <= 20 or not 10 <= args.requests <= 2000 or not 1 <= args.seconds <= 10:
        sys.exit('bounds: --rounds 1-10, --pulls 1-20, --requests 10-2000, --seconds 1-10')
    python = os.path.join(REPO, '.venv-target-%s' % args.target, 'bin', 'python')
    latencies = {case: [] for case in CASES}
    rates = {case: [] for case in CASES}
    pulls = {case: [] for case in CASES + ('token, uncached',)}
    with tempfile.TemporaryDirectory() as directory:
        stack = Stack(directory, args.image, python, args.pulls * args.rounds)
        try:
            stack.start()
            fresh = iter(stack.fresh_users)
            for number in range(args.rounds):
                order = CASES[number % len(CASES):] + CASES[:number % len(CASES)]
                for case in order:
                    authorization = stack.login(case)
                    latencies[case] += get_v2_latencies(stack.ports[case], authorization, args.requests)
                    rates[case].append(requests_per_second(stack.ports[case], authorization, args.seconds))
                    pulls[case] += [pull(stack, case, 'bench') for _pull in range(args.pulls)]
                    if case == 'token':
                        pulls['token, uncached'] += [pull(stack, case, next(fresh)) for _pull in range(args.pulls)]
            memory = stack.memory()
        finally:
            stack.stop()

    load = os.getloadavg()[0]
    print('Authentication, %s, token service on %s (%s), %d CPUs, load average %.1f, %s' % (
        args.image, args.target, os.path.basename(os.path.realpath(python)), os.cpu_count(), load, platform.node()))
    print()
    print('| case | GET /v2/ p50 | p90 | p50 over none | requests/s, 8 clients | 10-layer pull (median) |')
    print('|---|---:|---:|---:|---:|---:|')
    base = milliseconds(latencies['none'])
    for case in CASES + ('token, uncached',):
        if case in latencies:
            p50 = milliseconds(latencies[case])
            print('| %s | %.2f ms | %.2f ms | %+.2f ms | %.0f | %.1f ms |' % (
                case, p50, milliseconds(latencies[case], 0.9), p50 - base, statistics.median(rates[case]),
                statistics.median(pulls[case]) * 1000))
        else:
            print('| %s | | | | | %.1f ms |' % (case, statistics.median(pulls[case]) * 1000))
    print()
    print('Token service memory after all of it: %.1f MiB resident, %.1f MiB peak.' % (memory['VmRSS:'], memory['VmHWM:']))
    print()
    print('%d rounds (order rotated), %d GET /v2/ and %d pulls per case and round, %.0f s of 8 clients.' % (
        args.rounds, args.requests, args.pulls, args.seconds))


if __name__ == '__main__':
    main()
