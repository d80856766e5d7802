# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the token service (roles/registry/files/token_server.py; not a test).

The service runs as on a Debian target (the .venv-target-<name> interpreter,
default debian12: Python 3.11, bcrypt 3.2.2, cryptography 38) on a Unix
socket, with one user hashed at --cost (default 12, a strong cost). Side by
side in one run:

1. what htpasswd mode pays on every request: one bcrypt check at that cost,
   in the same interpreter;
2. token requests with the right password: the first (bcrypt), then the
   median of --logins more over one kept-alive connection (the cache);
3. a CI-like burst: --burst token requests with the right password from 10
   threads at once, as many pulls starting together make them: how many
   passed, and in how long;
4. guessing: --guesses wrong passwords from one address as fast as they are
   answered: how many were checked (401) and how many refused unchecked
   (429), at the default limit of 10 failures a minute;
5. the service's resident memory afterwards.

Run from the repository root:
  .venv/bin/python benchmarks/token_server_bench.py [--cost 12] [--target debian12]
Results go to stdout as Markdown (for docs/performance.md).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(REPO, 'roles', 'registry', 'files', 'token_server.py')
PASSWORD = 'benchmark-password-0123456789'


class Client:
    """Token requests over one kept-alive connection to the service's socket, from one client address."""

    def __init__(self, path, address='192.0.2.10'):
        self.connection = http.client.HTTPConnection('localhost', timeout=60)
        self.connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.connection.sock.connect(path)
        self.address = address

    def token(self, user, password):
        credentials = base64.b64encode(('%s:%s' % (user, password)).encode()).decode()
        started = time.perf_counter()
        self.connection.request('GET', '/auth/token?service=bench&scope=repository:team/app:pull',
                                headers={'Authorization': 'Basic ' + credentials, 'X-Real-IP': self.address})
        response = self.connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started


def bcrypt_check_seconds(python, cost, repeat=5):
    snippet = ('import bcrypt, statistics, sys, time\n'
               'h = bcrypt.hashpw(b"x", bcrypt.gensalt(%d))\n'
               'times = []\n'
               'for _ in range(%d):\n'
               '    t = time.perf_counter(); bcrypt.checkpw(b"x", h); times.append(time.perf_counter() - t)\n'
               'print(statistics.median(times))\n') % (cost, repeat)
    return float(subprocess.run([python, '-c', snippet], check=True, capture_output=True, text=True).stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cost', type=int, default=12)
    parser.add_argument('--target', default='debian12')
    parser.add_argument('--logins', type=int, default=200)
    parser.add_argument('--burst', type=int, default=200)
    parser.add_argument('--guesses', type=int, default=100)
    args = parser.parse_args()
    python = os.path.join(REPO, '.venv-target-%s' % args.target, 'bin', 'python')

    with tempfile.TemporaryDirectory() as directory:
        key, certificate = os.path.join(directory, 'key.pem'), os.path.join(directory, 'cert.pem')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
                        '-keyout', key, '-out', certificate, '-days', '1', '-subj', '/CN=bench'], check=True, capture_output=True)
        hashed = subprocess.run([python, '-c', 'import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(%d)).decode())' % args.cost,
                                 PASSWORD], check=True, capture_output=True, text=True).stdout.strip()
        htpasswd = os.path.join(directory, 'htpasswd')
        with open(htpasswd, 'w') as handle:
            handle.write('ci:%s\n' % hashed)
        path = os.path.join(directory, 'token.sock')
        config = os.path.join(directory, 'config.json')
        with open(config, 'w') as handle:
            json.dump({'issuer': 'bench', 'service': 'bench', 'htpasswd': htpasswd, 'socket': path,
                       'signing_key': key, 'signing_certificate': certificate,
                       'rules': [{'users': ['*'], 'repositories': ['**'], 'actions': ['pull', 'push']}],
                       'failures': {'per_address': 10, 'per_user': 10, 'window': 60}}, handle)
        server = subprocess.Popen([python, SERVER, config], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(path):
                if time.monotonic() > deadline:
                    sys.exit('the token service did not start')
                time.sleep(0.05)

            per_request = bcrypt_check_seconds(python, args.cost)
            client = Client(path)
            first_status, first = client.token('ci', PASSWORD)
            cached = [client.token('ci', PASSWORD) for _login in range(args.logins)]
            assert first_status == 200 and all(status == 200 for status, _seconds in cached)

            def one(_number):
                return Client(path, '192.0.2.20').token('ci', PASSWORD)[0]
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
                burst = list(pool.map(one, range(args.burst)))
            burst_seconds = time.perf_counter() - started

            guesser = Client(path, '198.51.100.7')
            started = time.perf_counter()
            guesses = [guesser.token('mallory', 'guess-%d' % number)[0] for number in range(args.guesses)]
            guess_seconds = time.perf_counter() - started
            with open('/proc/%d/status' % server.pid, encoding='ascii') as handle:
                resident = dict(line.split()[:2] for line in handle if line.startswith(('VmRSS:', 'VmHWM:')))
        finally:
            server.terminate()
            server.wait(timeout=10)

    print('Token service, %s (%s), bcrypt cost %d, %d CPUs, %s' % (args.target, os.path.basename(os.path.realpath(python)), args.cost,
                                                                   os.cpu_count(), platform.node()))
    print()
    print('| what | result |')
    print('|---|---|')
    print('| htpasswd mode: bcrypt check on every request (median) | %.1f ms |' % (per_request * 1000))
    print('| token mode: first token for a user (bcrypt) | %.1f ms |' % (first * 1000))
    cached_median = statistics.median(seconds for _status, seconds in cached)
    print('| token mode: next %d tokens, same password (median, cache) | %.2f ms |' % (args.logins, cached_median * 1000))
    print('| CI-like burst: %d token requests, 10 at a time | %d of %d answered 200 in %.2f s |' % (
        args.burst, burst.count(200), args.burst, burst_seconds))
    print('| guessing: %d wrong passwords from one address | %d checked (401), %d refused unchecked (429), in %.2f s |' % (
        args.guesses, guesses.count(401), guesses.count(429), guess_seconds))
    print('| the service\'s memory after all of it (resident, peak) | %.1f MiB, %.1f MiB |' % (
        int(resident['VmRSS:']) / 1024, int(resident['VmHWM:']) / 1024))


if __name__ == '__main__':
    main()
