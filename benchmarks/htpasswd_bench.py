# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of selfhosted.registry.htpasswd_user (not a test).

For each bcrypt cost (default: 12, then the module's default cost):

1. first run: the module, in one ansible-playbook task, creates a file with
   N users (default 1,000);
2. no-op run: the same task again, which changes nothing but verifies every
   password against its stored hash;
3. the theoretical limit of that no-op: N x (CPU time of one bcrypt
   verification at this cost, measured in the target interpreter) / CPUs.

Wall times suffer from other load on the machine; the CPU times (of
ansible-playbook and the module process together) do not, so both are shown.

With --registry it also measures what the cost means for the registry: the
median time of an authenticated GET /v2/ (keep-alive) against the platform's
registry image (selfhosted-test/registry:*), per cost.

Every ansible-playbook run is bounded by --timeout (default 600 s); the
whole run at cost 12 takes about 2 x N x 0.2 s / CPUs.

Run from the repository root:
  PATH=$PWD/.venv/bin:$PATH .venv/bin/python benchmarks/htpasswd_bench.py [--registry]
Results go to stdout as Markdown (for docs/performance.md) and, with --json, to a file.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'plugins', 'module_utils'))
import _htpasswd  # noqa: E402  pylint: disable=wrong-import-position,import-error

DOCKER = '/usr/bin/docker' if os.path.exists('/usr/bin/docker') else shutil.which('docker')
# FACTS.md: community.general.htpasswd, one task looping over 1,000 users at
# cost 12 (passlib's default), no-op rerun on this kind of machine.
COMMUNITY_GENERAL_NOOP_1000_COST12 = 539.0

VERIFY_SNIPPET = r'''
import bcrypt, json, sys, time, os
cost, repeat = int(sys.argv[1]), int(sys.argv[2])
hashed = bcrypt.hashpw(b"benchmark-password", bcrypt.gensalt(cost))
times = []
for _ in range(repeat):
    start = time.process_time()
    bcrypt.checkpw(b"benchmark-password", hashed)
    times.append(time.process_time() - start)
cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
print(json.dumps({"median": sorted(times)[len(times) // 2], "bcrypt": bcrypt.__version__,
                  "python": sys.version.split()[0], "cpus": cpus}))
'''


def verify_time(python, cost):
    """Median CPU time of one bcrypt verification at ``cost`` in ``python`` (seconds).

    CPU time rather than wall time, so that other load on the machine does
    not inflate the theoretical limit.
    """
    repeat = max(5, min(200, int(2.0 / (0.0015 * 2 ** (cost - 5)))))
    output = subprocess.run([python, '-c', VERIFY_SNIPPET, str(cost), str(repeat)], check=True,
                            capture_output=True, text=True, timeout=300).stdout
    return json.loads(output)


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_playbook(workdir, collections, python, args, timeout):
    """Run the module once in one task.

    Returns ((wall seconds, CPU seconds), registered result). The CPU time
    covers ansible-playbook and the module process (children are reaped), so
    it shows the work done even when other load on the machine stretches the
    wall time.
    """
    result_file = os.path.join(workdir, 'result.json')
    playbook = os.path.join(workdir, 'play.yml')
    vars_file = os.path.join(workdir, 'vars.json')
    with open(vars_file, 'w') as handle:
        json.dump({'bench_args': args}, handle)
    play = [{
        'hosts': 'localhost',
        'gather_facts': False,
        'tasks': [
            {'name': 'htpasswd_user', 'register': 'result',
             'selfhosted.registry.htpasswd_user': dict((key, '{{ bench_args.%s }}' % key) for key in args)},
            {'name': 'save the result', 'ansible.builtin.copy': {'content': '{{ result | to_json }}', 'dest': result_file}},
        ],
    }]
    with open(playbook, 'w') as handle:
        json.dump(play, handle)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0')
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    if not os.path.exists(ansible_playbook):
        ansible_playbook = shutil.which('ansible-playbook')
    command = [ansible_playbook, '-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % python,
               '-e', '@' + vars_file, playbook]
    cpu = children_cpu()
    start = time.monotonic()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = (time.monotonic() - start, children_cpu() - cpu)
    if completed.returncode != 0:
        raise SystemExit('ansible-playbook failed:\n%s%s' % (completed.stdout[-3000:], completed.stderr[-3000:]))
    with open(result_file) as handle:
        return seconds, json.load(handle)


def bench_module(args, collections, cost):
    workdir = tempfile.mkdtemp(prefix='htpasswd-bench-')
    try:
        path = os.path.join(workdir, 'htpasswd')
        users = [{'name': 'user%04d' % i, 'password': 'bench-password-%04d' % i} for i in range(args.users)]
        module_args = {'path': path, 'users': users, 'cost': cost, 'exclusive': True}
        first, result = run_playbook(workdir, collections, args.python, module_args, args.timeout)
        assert result['changed'] and len(result['added']) == args.users, 'first run did not add every user'
        noop, result = run_playbook(workdir, collections, args.python, module_args, args.timeout)
        assert not result['changed'], 'the second run changed something'
        return first, noop
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def newest_registry_image():
    listed = subprocess.run([DOCKER, 'image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', 'selfhosted-test/registry'],
                            capture_output=True, text=True, check=True).stdout.split()
    tags = [image for image in listed if not image.endswith(':<none>')]
    if not tags:
        raise SystemExit('no selfhosted-test/registry image: run tests/platform/platform images first')
    return max(tags, key=lambda image: [int(p) if p.isdigit() else p for p in image.split(':')[1].split('.')])


def throughput(port, token, clients, seconds):
    """Authenticated GET /v2/ per second with ``clients`` keep-alive clients in parallel."""
    counts = []
    deadline = time.monotonic() + seconds

    def client():
        connection = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
        done = 0
        while time.monotonic() < deadline:
            connection.request('GET', '/v2/', headers={'Authorization': 'Basic ' + token})
            connection.getresponse().read()
            done += 1
        connection.close()
        counts.append(done)

    threads = [threading.Thread(target=client) for dummy in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / float(seconds)


def bench_registry(costs, requests, clients, seconds):
    """Per cost: median ms of an authenticated GET /v2/ (one keep-alive client)
    and requests per second with ``clients`` clients."""
    image = newest_registry_image()
    workdir = tempfile.mkdtemp(prefix='htpasswd-bench-registry-')
    name = 'htpasswd-bench-%d' % os.getpid()
    try:
        os.makedirs(os.path.join(workdir, 'auth'))
        os.makedirs(os.path.join(workdir, 'config'))
        with open(os.path.join(workdir, 'auth', 'htpasswd'), 'w') as handle:
            for cost in costs:
                handle.write('cost%02d:%s\n' % (cost, _htpasswd.hash_password('benchmark-password', cost)))
        os.chmod(os.path.join(workdir, 'auth', 'htpasswd'), 0o644)
        with open(os.path.join(workdir, 'config', 'config.yml'), 'w') as handle:
            handle.write('version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n'
                         'http:\n  addr: :5000\nauth:\n  htpasswd:\n    realm: bench\n    path: /auth/htpasswd\n')
        subprocess.run([DOCKER, 'run', '--detach', '--name', name, '--publish', '127.0.0.1::5000',
                        '--volume', '%s:/auth:ro' % os.path.join(workdir, 'auth'),
                        '--volume', '%s:/etc/bench:ro' % os.path.join(workdir, 'config'),
                        image, '/etc/bench/config.yml'], check=True, capture_output=True)
        port = int(subprocess.run([DOCKER, 'port', name, '5000/tcp'], check=True, capture_output=True,
                                  text=True).stdout.split()[0].rsplit(':', 1)[1])
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
                connection.request('GET', '/v2/')
                connection.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        results = {}
        for cost in costs:
            token = base64.b64encode(('cost%02d:benchmark-password' % cost).encode()).decode()
            connection = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
            times = []
            for dummy in range(requests):
                start = time.perf_counter()
                connection.request('GET', '/v2/', headers={'Authorization': 'Basic ' + token})
                response = connection.getresponse()
                response.read()
                times.append(time.perf_counter() - start)
                if response.status != 200:
                    raise SystemExit('cost %d: GET /v2/ answered %d' % (cost, response.status))
            connection.close()
            results[cost] = (statistics.median(times) * 1000, throughput(port, token, clients, seconds))
        return image, results
    finally:
        subprocess.run([DOCKER, 'rm', '--force', name], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--users', type=int, default=1000, help='users in the file (default 1000)')
    parser.add_argument('--costs', default='12,%d' % _htpasswd.DEFAULT_COST,
                        help='comma-separated bcrypt costs (default 12 and the module default, %d)' % _htpasswd.DEFAULT_COST)
    parser.add_argument('--python', default=sys.executable,
                        help='interpreter that runs the module (needs bcrypt; default: this one)')
    parser.add_argument('--timeout', type=int, default=600, help='seconds allowed per ansible-playbook run (default 600)')
    parser.add_argument('--registry', action='store_true', help='also time GET /v2/ against the registry per cost (needs Docker)')
    parser.add_argument('--registry-costs', default='4,5,6,7,8,9,10,11,12')
    parser.add_argument('--registry-requests', type=int, default=20, help='sequential requests per cost (median)')
    parser.add_argument('--registry-clients', type=int, default=8, help='parallel clients for the throughput figure')
    parser.add_argument('--registry-seconds', type=int, default=3, help='seconds of throughput measurement per cost')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args()
    costs = [int(c) for c in args.costs.split(',') if c]

    collections = tempfile.mkdtemp(prefix='htpasswd-bench-collections-')
    os.makedirs(os.path.join(collections, 'ansible_collections', 'selfhosted'))
    os.symlink(REPO, os.path.join(collections, 'ansible_collections', 'selfhosted', 'registry'))

    report = {'users': args.users, 'machine': platform.node(), 'load_before': os.getloadavg()[0], 'module': []}
    try:
        # Fixed cost of one ansible-playbook run of the module (no user, no file).
        workdir = tempfile.mkdtemp(prefix='htpasswd-bench-')
        try:
            wall, cpu = run_playbook(workdir, collections, args.python,
                                     {'path': os.path.join(workdir, 'htpasswd'), 'users': []}, args.timeout)[0]
            report['overhead_s'] = round(wall, 1)
            report['overhead_cpu_s'] = round(cpu, 1)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        for cost in costs:
            verify = verify_time(args.python, cost)
            limit = args.users * verify['median'] / verify['cpus']
            print('cost %d: one verification %.1f ms (bcrypt %s, Python %s, %d CPUs); running...' % (
                cost, verify['median'] * 1000, verify['bcrypt'], verify['python'], verify['cpus']), file=sys.stderr)
            first, noop = bench_module(args, collections, cost)
            report['module'].append({'cost': cost, 'first_run_s': round(first[0], 1), 'noop_s': round(noop[0], 1),
                                     'first_run_cpu_s': round(first[1], 1), 'noop_cpu_s': round(noop[1], 1),
                                     'work_s': round(args.users * verify['median'], 2),
                                     'verify_ms': round(verify['median'] * 1000, 2), 'limit_s': round(limit, 2),
                                     'bcrypt': verify['bcrypt'], 'python': verify['python'], 'cpus': verify['cpus']})
        if args.registry:
            image, latencies = bench_registry([int(c) for c in args.registry_costs.split(',')], args.registry_requests,
                                              args.registry_clients, args.registry_seconds)
            report['registry'] = {'image': image, 'load': os.getloadavg()[0],
                                  'median_ms': dict((cost, round(v[0], 1)) for cost, v in latencies.items()),
                                  'requests_per_s': dict((cost, round(v[1])) for cost, v in latencies.items())}
    finally:
        shutil.rmtree(collections, ignore_errors=True)
    report['load_after'] = os.getloadavg()[0]

    print('%d users, one ansible-playbook task on localhost (load average %.1f before, %.1f after);'
          ' ansible-playbook with the module and no user: %.1f s wall, %.1f s CPU\n' % (
              args.users, report['load_before'], report['load_after'], report['overhead_s'], report['overhead_cpu_s']))
    print('| cost | first run: wall (CPU) | no-op run: wall (CPU) | theoretical limit of the no-op: wall (CPU) '
          '| community.general.htpasswd no-op |')
    print('|---:|---:|---:|---:|---:|')
    for row in report['module']:
        community = '%.0f s (FACTS.md)' % COMMUNITY_GENERAL_NOOP_1000_COST12 if row['cost'] == 12 and args.users == 1000 else 'not measured'
        print('| %d | %.1f s (%.1f s) | %.1f s (%.1f s) | %.2f s (%.2f s = %d x %.2f ms, over %d CPUs) | %s |' % (
            row['cost'], row['first_run_s'], row['first_run_cpu_s'], row['noop_s'], row['noop_cpu_s'], row['limit_s'],
            row['work_s'], args.users, row['verify_ms'], row['cpus'], community))
    row = report['module'][0]
    print('\nbcrypt %s on Python %s' % (row['bcrypt'], row['python']))
    if 'registry' in report:
        print('\nRegistry %s (load average %.1f): authenticated GET /v2/, median of %d sequential requests on one '
              'keep-alive connection, and requests per second with %d clients in parallel:\n' % (
                  report['registry']['image'], report['registry']['load'], args.registry_requests, args.registry_clients))
        print('| cost | ms per request | requests/s, %d clients |' % args.registry_clients)
        print('|---:|---:|---:|')
        for cost in sorted(report['registry']['median_ms']):
            print('| %d | %.1f | %d |' % (cost, report['registry']['median_ms'][cost], report['registry']['requests_per_s'][cost]))
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(report, handle, indent=2)


if __name__ == '__main__':
    main()
