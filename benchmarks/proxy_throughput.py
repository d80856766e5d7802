# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: one big layer through the TLS proxy versus straight to the registry (not a test).

1. Starts a bare Debian host of the test platform (a systemd container on the
   network selfhosted-test, like molecule's hosts) and deploys the stack on it
   with playbooks/site.yml over SSH (self-signed certificate, the platform's
   fixture images registry:2.8.3 and nginx:1.26.3): timed, then the no-op
   rerun, timed too (it must report changed=0).
2. Installs skopeo in that host (the client runs there, next to the stack).
3. For each round, for each case, in an order rotated every round:
   empty the registry's storage, restart the registry, reload nginx, write a
   fresh OCI layout with one uncompressed tar layer of random data, push it
   with `skopeo copy --preserve-digests` (no recompression), pull it back;
   both timed, with the CPU time and memory peaks of the nginx and registry
   containers (benchmarks/proxy_throughput_agent.py does this inside the host).
   Cases:
     proxy          HTTPS to the registry's name = the host's address, port 443
                    published by the proxy container -> nginx -> registry:5000
     direct         plain HTTP to the registry container's address on the
                    compose network `backend`, port 5000 (no nginx, no TLS)
     plain          plain HTTP through the same nginx: the benchmark adds
                    `listen 8080;` to the TLS server block, reached at the
                    proxy container's address on network `frontend`
     proxy:VARIANT  / plain:VARIANT: the same with the deployed nginx.conf
                    changed as VARIANT says (--list-variants), to measure what
                    each setting buys
   With --compare-limits every case also runs as CASE+unlimited: the memory
   and pids limits of both containers lifted (`docker update`) for it and
   put back after, to see what the roles' default limits cost.
4. Prints Markdown tables (medians, proxy/direct ratios) and the command
   that reproduces them; removes the host and everything else it made, also
   when interrupted (unless --keep).

Bounded: --rounds (1-15), --size-mib (1024-4096), --timeout per skopeo command,
--max-minutes for the whole run (rounds stop early, the report says so).

Run from the repository root with the dev venv (it runs `tests/platform/platform
up` itself; on the 2-core development machine setup takes 2-5 min, then
10-60 s per case and round, by load: 6-20 min with the defaults):
  .venv/bin/python benchmarks/proxy_throughput.py
Results and the method: docs/performance.md, "Proxy throughput".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT = os.path.join(REPO, 'benchmarks', 'proxy_throughput_agent.py')
DOCKER = '/usr/bin/docker' if os.path.exists('/usr/bin/docker') else shutil.which('docker')
NETWORK = 'selfhosted-test'
DOMAIN = 'registry.bench.test'
USER = 'bench'
REGISTRY_IMAGE = 'registry:2.8.3'   # the platform's fixtures (docs/contracts.md)
PROXY_IMAGE = 'nginx:1.26.3'
BENCH_DIR = '/root/bench'           # in the host: agent, configs, CA, password
LABEL = 'selfhosted-test.role=benchmark'   # `tests/platform/platform down` removes it too

# What each variant changes in the deployed nginx.conf: (block, action, directive, value).
# block: location (location /v2/), server (the TLS server), upstream, main (top level);
# action: set (replace or add), remove (must be there), unset (remove if there).
VARIANTS = {
    'deployed': ('the role\'s nginx.conf as deployed', []),
    'tutorial': ('the tutorial\'s proxy settings (nginx defaults), body size limit lifted', [
        ('location', 'unset', 'client_body_buffer_size', None),
        ('location', 'remove', 'proxy_request_buffering', None),
        ('location', 'remove', 'proxy_buffering', None),
        ('location', 'remove', 'proxy_buffers', None),
        ('location', 'remove', 'proxy_max_temp_file_size', None),
        ('location', 'remove', 'proxy_http_version', None),
        ('location', 'remove', 'proxy_set_header Connection', None),
        ('upstream', 'remove', 'keepalive', None)]),
    'request-buffering': ('proxy_request_buffering on (nginx default: whole upload spooled first)', [
        ('location', 'set', 'proxy_request_buffering', 'on')]),
    'no-upstream-keepalive': ('no keepalive connections to the registry', [
        ('upstream', 'remove', 'keepalive', None)]),
    'unbuffered': ('proxy_buffering off (downloads relayed through proxy_buffer_size)', [
        ('location', 'set', 'proxy_buffering', 'off')]),
    'default-proxy-buffers': ('proxy_buffers at nginx default (8 4k)', [
        ('location', 'remove', 'proxy_buffers', None)]),
    'temp-files': ('proxy_max_temp_file_size at nginx default (1024m: downloads spill to disk)', [
        ('location', 'remove', 'proxy_max_temp_file_size', None)]),
    'big-proxy-buffers': ('proxy_buffer_size 64k, proxy_buffers 16 256k, proxy_busy_buffers_size 512k', [
        ('location', 'set', 'proxy_buffer_size', '64k'),
        ('location', 'set', 'proxy_buffers', '16 256k'),
        ('location', 'set', 'proxy_busy_buffers_size', '512k')]),
    'body-buffer-16k': ('client_body_buffer_size at nginx default (16k on 64-bit)', [
        ('location', 'unset', 'client_body_buffer_size', None)]),
    'body-buffer-64k': ('client_body_buffer_size 64k', [
        ('location', 'set', 'client_body_buffer_size', '64k')]),
    'body-buffer-128k': ('client_body_buffer_size 128k', [
        ('location', 'set', 'client_body_buffer_size', '128k')]),
    'body-buffer-256k': ('client_body_buffer_size 256k', [
        ('location', 'set', 'client_body_buffer_size', '256k')]),
    'body-buffer-1m': ('client_body_buffer_size 1m', [
        ('location', 'set', 'client_body_buffer_size', '1m')]),
    'ssl-buffer-4k': ('ssl_buffer_size 4k (nginx default 16k)', [
        ('server', 'set', 'ssl_buffer_size', '4k')]),
    'ssl-buffer-64k': ('ssl_buffer_size 64k (TLS records stay 16k; fewer SSL_write calls)', [
        ('server', 'set', 'ssl_buffer_size', '64k')]),
    'http2': ('HTTP/2 on port 443', [
        ('server', 'set', 'http2', 'on')]),
    'tls12': ('TLS 1.2 only (ECDHE-ECDSA-AES128-GCM-SHA256 with this client)', [
        ('server', 'set', 'ssl_protocols', 'TLSv1.2')]),
    'aes256': ('TLS 1.3 with TLS_AES_256_GCM_SHA384 only', [
        ('server', 'set', 'ssl_conf_command', 'Ciphersuites TLS_AES_256_GCM_SHA384')]),
    'chacha20': ('TLS 1.3 with TLS_CHACHA20_POLY1305_SHA256 only', [
        ('server', 'set', 'ssl_conf_command', 'Ciphersuites TLS_CHACHA20_POLY1305_SHA256')]),
    'one-worker': ('worker_processes 1', [
        ('main', 'set', 'worker_processes', '1')]),
}

_STOP = []   # cleanup actions, run in reverse order


def log(message):
    print(message, file=sys.stderr, flush=True)


def docker(*args, timeout=120, check=True, stdin=None):
    completed = subprocess.run([DOCKER] + list(args), input=stdin, capture_output=True, text=True, timeout=timeout,
                               check=False)
    if check and completed.returncode != 0:
        raise SystemExit('docker %s failed (%d): %s' % (' '.join(args[:3]), completed.returncode,
                                                        (completed.stderr or completed.stdout)[-2000:]))
    return completed.stdout


def in_host(host, command, timeout=120, stdin=None):
    return docker('exec', '--interactive', host, 'sh', '-c', command, timeout=timeout, stdin=stdin)


# --- nginx.conf variants ----------------------------------------------------------

def _block(lines, block):
    """(first, last) line index of a block of the rendered nginx.conf: its opening and closing lines."""
    if block == 'main':
        return -1, len(lines)
    patterns = {'location': r'^\s*location /v2/ \{', 'upstream': r'^\s*upstream \w+ \{'}
    if block == 'server':
        listen = next(i for i, line in enumerate(lines) if re.match(r'^\s*listen 443 ssl', line))
        first = max(i for i in range(listen) if re.match(r'^\s*server \{', lines[i]))
    else:
        first = next(i for i, line in enumerate(lines) if re.match(patterns[block], line))
    depth = 0
    for index in range(first, len(lines)):
        depth += lines[index].count('{') - lines[index].count('}')
        if depth == 0:
            return first, index
    raise ValueError('unbalanced block %s' % block)


def edit_conf(text, edits):
    """Apply (block, set|remove, directive, value) edits to a rendered nginx.conf."""
    lines = text.split('\n')
    for block, action, directive, value in edits:
        first, last = _block(lines, block)
        pattern = re.compile(r'^(\s*)' + re.escape(directive) + r'[\s;]')
        hits = [i for i in range(first + 1, last) if pattern.match(lines[i])]
        if block == 'main':   # top level only
            hits = [i for i in hits if not lines[i].startswith(' ')]
        if action == 'unset':   # remove if there
            lines = [line for i, line in enumerate(lines) if i not in hits]
        elif action == 'remove':
            if not hits:
                raise SystemExit('variant: no %s in the %s block of the deployed nginx.conf' % (directive, block))
            lines = [line for i, line in enumerate(lines) if i not in hits]
        elif hits:
            lines[hits[0]] = '%s%s %s;' % (pattern.match(lines[hits[0]]).group(1), directive, value)
            lines = [line for i, line in enumerate(lines) if i not in hits[1:]]
        else:
            indent = '' if block == 'main' else re.match(r'\s*', lines[first]).group(0) + '    '
            lines.insert(first + 1, '%s%s %s;  # benchmark variant' % (indent, directive, value))
    return '\n'.join(lines)


def add_plain_listener(text):
    """`listen 8080;` in the TLS server block: the same locations in plain HTTP (not published)."""
    return re.sub(r'^(\s*)(listen 443 ssl[^\n]*\n)', r'\1\2\1listen 8080;  # benchmark: plain HTTP, same server\n',
                  text, count=1, flags=re.M)


# --- the host -------------------------------------------------------------------

def create_host(name, image, workdir, keep):
    """A test-platform host as molecule/resources/create.yml starts one; returns its SSH port and key."""
    volume = name + '-docker'
    docker('volume', 'create', '--label', LABEL, volume)
    if keep:
        _STOP.append(lambda: log('kept host %s: reuse with --host=%s, remove with: %s rm -f --volumes %s && '
                                 '%s volume rm %s' % (name, name, DOCKER, name, DOCKER, volume)))
    else:
        _STOP.append(lambda: docker('volume', 'rm', '--force', volume, check=False))
        _STOP.append(lambda: docker('rm', '--force', '--volumes', name, check=False, timeout=300))
    docker('run', '--detach', '--name', name, '--hostname', 'bench', '--network', NETWORK,
           '--network-alias', DOMAIN, '--label', LABEL, '--publish', '127.0.0.1::22',
           '--cap-add', 'ALL', '--cap-drop', 'SYS_RESOURCE', '--security-opt', 'seccomp=unconfined',
           '--security-opt', 'apparmor=unconfined', '--cgroupns', 'host', '--volume', '/sys/fs/cgroup:/sys/fs/cgroup:rw',
           '--volume', volume + ':/var/lib/docker', '--tmpfs', '/run', '--tmpfs', '/run/lock', '--tmpfs', '/tmp:exec',
           image)
    deadline = time.monotonic() + 120
    while True:   # systemd's bus is not there during the first moments
        state = docker('exec', name, 'systemctl', 'is-system-running', '--wait', timeout=120, check=False).strip()
        if state in ('running', 'degraded') or time.monotonic() > deadline:
            break
        time.sleep(2)
    if state != 'running':
        raise SystemExit('systemd in %s is %r: docker exec %s systemctl --failed' % (name, state, name))
    key = os.path.join(workdir, 'ssh_key')
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key], check=True, timeout=60)
    with open(key + '.pub') as handle:
        in_host(name, 'umask 077 && mkdir -p /root/.ssh && cat > /root/.ssh/authorized_keys', stdin=handle.read())
    port = int(docker('port', name, '22/tcp').split()[0].rsplit(':', 1)[1])
    deadline = time.monotonic() + 60
    while b'OpenSSH' not in subprocess.run(['sh', '-c', 'exec 3<>/dev/tcp/127.0.0.1/%d 2>/dev/null; head -c 40 <&3' % port],
                                           capture_output=True, timeout=10, executable='/bin/bash', check=False).stdout:
        if time.monotonic() > deadline:
            raise SystemExit('sshd in %s did not answer' % name)
        time.sleep(1)
    return port, key


def host_address(name):
    return docker('inspect', '--format', '{{(index .NetworkSettings.Networks "%s").IPAddress}}' % NETWORK, name).strip()


# docker update's options for the limits the benchmark can lift and put back.
LIMITS = ('Memory', 'MemorySwap', 'PidsLimit')
CONTAINERS = ('registry-registry-1', 'registry-proxy-1')


def read_limits(host):
    """container -> {Memory, MemorySwap, PidsLimit} as deployed."""
    limits = {}
    for container in CONTAINERS:
        template = ' '.join('{{.HostConfig.%s}}' % key for key in LIMITS)
        values = in_host(host, "docker inspect --format '%s' %s" % (template, container)).split()
        limits[container] = dict(zip(LIMITS, (int(v) for v in values)))
    return limits


def set_limits(host, limits, lifted):
    """The deployed limits, or none worth the name (16 GiB, no pids limit) when `lifted`.

    The memory-and-swap limit is raised with the memory limit: cgroup v1 refuses a memory limit above it,
    and `--memory-swap -1` does not lift it first.
    """
    for container, deployed in limits.items():
        if lifted:
            options = ['--memory', str(16 << 30), '--memory-swap', str(32 << 30), '--pids-limit', '-1']
        else:
            options = ['--memory', str(deployed['Memory']), '--memory-swap', str(deployed['MemorySwap'] or -1),
                       '--pids-limit', str(deployed['PidsLimit'] or -1)]
        in_host(host, 'docker update %s %s >/dev/null' % (' '.join(options), container))


def converge(workdir, port, key, password, timeout, registry_image, proxy_image):
    """Run playbooks/site.yml once; (wall seconds, changed count)."""
    collections = os.path.join(workdir, 'collections')
    if not os.path.isdir(collections):
        os.makedirs(os.path.join(collections, 'ansible_collections', 'selfhosted'))
        os.symlink(REPO, os.path.join(collections, 'ansible_collections', 'selfhosted', 'registry'))
    inventory = os.path.join(workdir, 'inventory.json')
    with open(inventory, 'w') as handle:
        json.dump({'registry': {
            'hosts': {'bench': {'ansible_host': '127.0.0.1', 'ansible_port': port, 'ansible_user': 'root',
                                'ansible_ssh_private_key_file': key,
                                'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'}},
            'vars': {'registry_domain': DOMAIN, 'registry_users': [{'name': USER, 'password': password}],
                     'certificates_mode': 'selfsigned', 'registry_image': registry_image, 'proxy_image': proxy_image,
                     # the platform's mirror and nested-Docker setting (docs/contracts.md)
                     'docker_registry_mirrors': ['http://mirror:5000'],
                     'docker_service_environment': {'DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE': '1'}}}}, handle)
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_PIPELINING='1', ANSIBLE_HOST_KEY_CHECKING='0',
               ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0', PATH=bindir + os.pathsep + os.environ['PATH'])
    command = [os.path.join(bindir, 'ansible-playbook'), '-i', inventory, 'selfhosted.registry.site']
    start = time.monotonic()
    completed = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                               check=False)
    seconds = time.monotonic() - start
    with open(os.path.join(workdir, 'converge.log'), 'a') as handle:
        handle.write(completed.stdout + completed.stderr)
    recap = re.search(r'^bench\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', completed.stdout, re.M)
    if completed.returncode != 0 or not recap:
        raise SystemExit('site.yml failed (%d):\n%s' % (completed.returncode, (completed.stdout + completed.stderr)[-4000:]))
    return seconds, int(recap.group(2))


# --- report ---------------------------------------------------------------------

def mib_s(size, seconds):
    return size / 2 ** 20 / seconds


def summarise(results, size):
    """Per case and operation: median/min/max seconds, and resource figures."""
    summary = {}
    for case in dict.fromkeys(r['case_name'] for r in results):
        rows = [r for r in results if r['case_name'] == case]
        summary[case] = {}
        for op in ('push', 'pull'):
            seconds = [r[op]['seconds'] for r in rows]
            summary[case][op] = {
                'n': len(rows), 'median_s': statistics.median(seconds), 'min_s': min(seconds), 'max_s': max(seconds),
                'mib_s': mib_s(size, statistics.median(seconds)),
                'by_round': dict((r['round'], r[op]['seconds']) for r in rows),
            }
            for key in ('client_cpu_s', 'nginx_cpu_s', 'registry_cpu_s'):
                summary[case][op][key] = statistics.median(r[op][key] for r in rows)
            for key in ('nginx_rss_peak_mib', 'registry_rss_peak_mib', 'nginx_usage_peak_mib', 'registry_usage_peak_mib'):
                summary[case][op][key] = max(r[op][key] for r in rows)
    return summary


def ratios(summary, case, op, reference='direct'):
    """Throughput of ``case`` / throughput of ``reference``: of the medians, and the median of per-round pairs."""
    mine, theirs = summary[case][op], summary[reference][op]
    of_medians = theirs['median_s'] / mine['median_s']
    pairs = [theirs['by_round'][r] / s for r, s in mine['by_round'].items() if r in theirs['by_round']]
    return of_medians, statistics.median(pairs) if pairs else float('nan')


UNLIMITED = '+unlimited'


def base_case(case):
    """What a case is compared with: CASE for CASE+unlimited, PATH for PATH:VARIANT, else itself."""
    if case.endswith(UNLIMITED):
        return case[:-len(UNLIMITED)]
    return case.split(':')[0]


def report(data, args):
    size = data['layer_bytes']
    summary = summarise(data['results'], size)
    data['summary'] = summary
    out = []
    out.append('Layer: %d bytes (%.2f GiB) of random data, uncompressed tar; %d rounds completed of %d; cases per '
               'round in rotated order; load average %.1f at the start, %.1f at the end (2 cores).'
               % (size, size / 2 ** 30, data['rounds_done'], args.rounds, data['load_start'], data['load_end']))
    out.append('Host: %s; %s; registry %s, nginx %s (%s); client %s in the host.\n'
               % (data['host_image'], data['docker_version'], args.registry_image, args.proxy_image,
                  data['nginx_version'], data['skopeo_version']))
    out.append('Limits as deployed (HostConfig): %s.\n' % '; '.join(
        '%s %s' % (container, ', '.join('%s %s' % item for item in values.items()))
        for container, values in data.get('limits', {}).items()))
    if 'converge' in data:
        c = data['converge']
        out.append('| playbooks/site.yml on a bare host | seconds | changed |')
        out.append('|---|---:|---:|')
        out.append('| fresh converge | %.0f | %d |' % (c['fresh_s'], c['fresh_changed']))
        out.append('| no-op rerun | %.0f | %d |\n' % (c['noop_s'], c['noop_changed']))
    has_direct = 'direct' in summary
    # Variant cases are also compared with the same path on the deployed nginx.conf, unlimited ones with the
    # same case within the limits.
    has_base = any(base_case(case) != case and base_case(case) in summary for case in summary)
    out.append('| case | push median s (min-max) | push MiB/s | pull median s (min-max) | pull MiB/s |'
               + (' push vs direct | pull vs direct |' if has_direct else '')
               + (' push vs base | pull vs base |' if has_base else ''))
    out.append('|---|---:|---:|---:|---:|' + ('---:|---:|' if has_direct else '') + ('---:|---:|' if has_base else ''))
    for case, ops in summary.items():
        row = '| %s |' % case
        for op in ('push', 'pull'):
            s = ops[op]
            row += ' %.1f (%.1f-%.1f) | %.0f |' % (s['median_s'], s['min_s'], s['max_s'], s['mib_s'])
        for reference, shown in (('direct', has_direct), (base_case(case), has_base)):
            if not shown:
                continue
            for op in ('push', 'pull'):
                if reference == case:
                    row += ' 1 |'
                elif reference not in summary:
                    row += ' |'
                else:
                    of_medians, paired = ratios(summary, case, op, reference)
                    row += ' %.2f (pairs %.2f) |' % (of_medians, paired)
        out.append(row)
    if has_direct or has_base:
        out.append('\n"vs direct": throughput of the case / throughput direct = median seconds direct / median seconds '
                   'of the case (above 1: faster); "pairs": median over rounds of the same ratio within one round. '
                   '"vs base": the same against the path (proxy or plain) with the deployed nginx.conf, or for '
                   'CASE+unlimited against CASE, within the deployed limits.')
    out.append('\nMedian CPU seconds per transfer (client = skopeo, nginx and registry = their containers\' cgroups), '
               'and peak memory over all rounds (anonymous memory sampled every 0.1 s; in brackets the cgroup\'s '
               'max_usage_in_bytes, which includes the page cache of the blob the registry writes or reads):\n')
    out.append('| case | op | client CPU | nginx CPU | registry CPU | nginx peak MiB | registry peak MiB |')
    out.append('|---|---|---:|---:|---:|---:|---:|')
    for case, ops in summary.items():
        for op in ('push', 'pull'):
            s = ops[op]
            out.append('| %s | %s | %.1f | %.1f | %.1f | %.0f (%.0f) | %.0f (%.0f) |' % (
                case, op, s['client_cpu_s'], s['nginx_cpu_s'], s['registry_cpu_s'], s['nginx_rss_peak_mib'],
                s['nginx_usage_peak_mib'], s['registry_rss_peak_mib'], s['registry_usage_peak_mib']))
    variants = sorted(set(r['variant'] for r in data['results']) - {'deployed'})
    if variants:
        out.append('\nVariants (changes to the deployed nginx.conf):\n')
        for name in variants:
            out.append('- `%s`: %s' % (name, data['variant_descriptions'][name]))
    out.append('\nReproduce:\n\n```sh\n%s\n```' % data['command'])
    return '\n'.join(out)


# --- main -----------------------------------------------------------------------

def parse_cases(text, custom):
    cases = []
    for item in text.split(','):
        path, dummy, variant = item.strip().partition(':')
        variant = variant or 'deployed'
        if path not in ('proxy', 'direct', 'plain'):
            raise SystemExit('--cases: %r is not proxy, direct or plain (with :VARIANT)' % item)
        if path == 'direct' and variant != 'deployed':
            raise SystemExit('--cases: direct bypasses nginx, it takes no variant')
        if variant not in VARIANTS and variant not in custom:
            raise SystemExit('--cases: unknown variant %r (--list-variants)' % variant)
        cases.append((path if variant == 'deployed' else '%s:%s' % (path, variant), path, variant))
    if len(set(c[0] for c in cases)) != len(cases):
        raise SystemExit('--cases: a case is listed twice')
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=5, help='rounds, each with every case once (1-15, default 5)')
    parser.add_argument('--size-mib', type=int, default=1024, help='random data in the layer (1024-4096 MiB, default 1024)')
    parser.add_argument('--cases', default='direct,proxy,plain',
                        help='comma-separated: direct, proxy, plain, proxy:VARIANT, plain:VARIANT (default direct,proxy,plain)')
    parser.add_argument('--nginx-conf', action='append', default=[], metavar='NAME=FILE',
                        help='extra variant NAME: a whole nginx.conf from FILE (for proxy:NAME / plain:NAME)')
    parser.add_argument('--list-variants', action='store_true', help='list the built-in variants and exit')
    parser.add_argument('--timeout', type=int, default=600, help='seconds allowed per skopeo command (60-1800, default 600)')
    parser.add_argument('--max-minutes', type=int, default=150,
                        help='no new round starts after this many minutes (default 150)')
    parser.add_argument('--host-image', default='selfhosted-test/host:debian13', help='test platform host image')
    parser.add_argument('--host', help='reuse a host kept by an earlier run with --keep (no converge measured)')
    parser.add_argument('--keep', action='store_true', help='leave the host running at the end (prints how to remove it)')
    parser.add_argument('--json', help='also write all measurements to this file')
    parser.add_argument('--compare-limits', action='store_true',
                        help='run every case also as CASE+unlimited, the containers\' memory and pids limits lifted')
    parser.add_argument('--registry-image', default=REGISTRY_IMAGE, help='registry_image (default %s)' % REGISTRY_IMAGE)
    parser.add_argument('--proxy-image', default=PROXY_IMAGE, help='proxy_image (default %s)' % PROXY_IMAGE)
    args = parser.parse_args()
    if args.list_variants:
        for name, (description, dummy) in VARIANTS.items():
            print('%-22s %s' % (name, description))
        return
    if not 1 <= args.rounds <= 15 or not 1024 <= args.size_mib <= 4096 or not 60 <= args.timeout <= 1800:
        raise SystemExit('--rounds must be 1-15, --size-mib 1024-4096, --timeout 60-1800')
    custom = dict(item.split('=', 1) for item in args.nginx_conf)
    cases = [case + (False,) for case in parse_cases(args.cases, custom)]
    if args.compare_limits:
        cases += [(name + UNLIMITED, path, variant, True) for name, path, variant, dummy in cases]
    started = time.monotonic()
    # The command that reproduces this run on a new host (without --host, --keep, --json).
    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip or arg == '--keep' or arg.startswith(('--host=', '--json=')):
            skip = False
            continue
        skip = arg in ('--host', '--json')
        if not skip:
            argv.append(arg)
    command = ' '.join(shlex.quote(a) for a in ['.venv/bin/python', 'benchmarks/proxy_throughput.py'] + argv)

    def stop(signum, frame):
        raise SystemExit(128 + signum)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)

    workdir = tempfile.mkdtemp(prefix='proxy-throughput-')
    _STOP.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
    data = {'command': command, 'load_start': os.getloadavg()[0], 'results': [], 'rounds_done': 0,
            'layer_bytes': None, 'variant_descriptions': {}}
    host = args.host
    try:
        if host:
            password = in_host(host, 'cat %s/password' % BENCH_DIR).strip()
        else:
            log('test platform: tests/platform/platform up')
            subprocess.run([os.path.join(REPO, 'tests', 'platform', 'platform'), 'up'], check=True, timeout=1800,
                           stdout=subprocess.DEVNULL)
            host = 'proxy-throughput-%d' % os.getpid()
            log('host %s: starting' % host)
            port, key = create_host(host, args.host_image, workdir, args.keep)
            in_host(host, 'echo "%s %s" >> /etc/hosts' % (host_address(host), DOMAIN))
            password = secrets.token_urlsafe(24)
            log('host %s: converging playbooks/site.yml (fresh)' % host)
            fresh = converge(workdir, port, key, password, 1800, args.registry_image, args.proxy_image)
            log('host %s: fresh converge %.0f s, changed=%d; no-op rerun' % (host, fresh[0], fresh[1]))
            noop = converge(workdir, port, key, password, 1800, args.registry_image, args.proxy_image)
            log('host %s: no-op rerun %.0f s, changed=%d' % (host, noop[0], noop[1]))
            if noop[1] != 0:
                raise SystemExit('the rerun of site.yml changed %d things: see %s/converge.log' % (noop[1], workdir))
            data['converge'] = {'fresh_s': fresh[0], 'fresh_changed': fresh[1], 'noop_s': noop[0], 'noop_changed': noop[1]}
            log('host %s: installing skopeo (the client)' % host)
            in_host(host, 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends skopeo',
                    timeout=900)
            in_host(host, 'umask 077 && mkdir -p %s/ca %s/nginx && cat > %s/password && cp /opt/registry/tls/fullchain.pem '
                    '%s/ca/ca.crt && cp /opt/registry/nginx/nginx.conf %s/nginx/as-deployed.conf'
                    % ((BENCH_DIR,) * 5), stdin=password)
        docker('cp', AGENT, '%s:%s/agent.py' % (host, BENCH_DIR))
        deployed = in_host(host, 'cat %s/nginx/as-deployed.conf' % BENCH_DIR)
        _STOP.append(lambda: in_host(host, 'cp {0}/nginx/as-deployed.conf /opt/registry/nginx/nginx.conf.bench && '
                                     'mv /opt/registry/nginx/nginx.conf.bench /opt/registry/nginx/nginx.conf && '
                                     'docker kill --signal HUP registry-proxy-1 >/dev/null'.format(BENCH_DIR)))
        limits = read_limits(host)
        data['limits'] = limits
        _STOP.append(lambda: set_limits(host, limits, lifted=False))
        plain = any(case[1] == 'plain' for case in cases)
        for variant in dict.fromkeys(case[2] for case in cases):
            if variant in custom:
                with open(custom[variant]) as handle:
                    text = handle.read()
                data['variant_descriptions'][variant] = 'nginx.conf from %s' % custom[variant]
            else:
                data['variant_descriptions'][variant], edits = VARIANTS[variant]
                text = edit_conf(deployed, edits)
            in_host(host, 'cat > %s/nginx/%s.conf' % (BENCH_DIR, variant),
                    stdin=add_plain_listener(text) if plain else text)
            # nginx -t of the running proxy on the variant now, rather than a failure in the middle of a round.
            in_host(host, 'cp {0}/nginx/{1}.conf /opt/registry/nginx/bench-check.conf && '
                    'docker exec registry-proxy-1 nginx -t -q -c /etc/nginx/selfhosted/bench-check.conf; '
                    'status=$?; rm -f /opt/registry/nginx/bench-check.conf; exit $status'.format(BENCH_DIR, variant))
        data['host_image'] = args.host_image
        data['docker_version'] = 'Docker ' + in_host(host, 'docker version --format "{{.Server.Version}}"').strip()
        data['nginx_version'] = in_host(host, 'docker exec registry-proxy-1 nginx -V 2>&1 | '
                                              'sed -n "s/^built with //p" | head -1').strip()
        data['skopeo_version'] = in_host(host, 'skopeo --version').strip()
        domain_ip = host_address(host)
        for round_number in range(1, args.rounds + 1):
            if (time.monotonic() - started) / 60 > args.max_minutes:
                log('--max-minutes %d reached: stopping after %d rounds' % (args.max_minutes, round_number - 1))
                break
            shift = (round_number - 1) % len(cases)
            for name, path, variant, lifted in cases[shift:] + cases[:shift]:
                set_limits(host, limits, lifted)
                agent = ['python3', BENCH_DIR + '/agent.py', '--case', path, '--conf',
                         '%s/nginx/%s.conf' % (BENCH_DIR, variant), '--domain', DOMAIN, '--domain-ip', domain_ip,
                         '--ca', BENCH_DIR + '/ca', '--user', USER, '--password-file', BENCH_DIR + '/password',
                         '--repository', 'bench/r%d-%s' % (round_number, re.sub('[^a-z0-9]+', '-', name)),
                         '--size', str(args.size_mib * 2 ** 20), '--timeout', str(args.timeout)]
                output = docker('exec', host, *agent, timeout=2 * args.timeout + 600)
                result = json.loads(output.strip().splitlines()[-1])
                result.update(round=round_number, case_name=name, variant=variant)
                data['results'].append(result)
                data['layer_bytes'] = result['layer_bytes']
                log('round %d %-24s push %6.1f s  pull %6.1f s  (nginx CPU %.1f/%.1f s, load %.1f)' % (
                    round_number, name, result['push']['seconds'], result['pull']['seconds'],
                    result['push']['nginx_cpu_s'], result['pull']['nginx_cpu_s'], result['load']))
            data['rounds_done'] = round_number
    finally:
        data['load_end'] = os.getloadavg()[0]
        data['minutes'] = (time.monotonic() - started) / 60
        if args.json:
            with open(args.json, 'w') as handle:
                json.dump(data, handle, indent=2)
        while _STOP:
            try:
                _STOP.pop()()
            except (Exception, SystemExit) as error:  # pylint: disable=broad-except
                log('cleanup: %s' % error)
    if data['results']:
        print(report(data, args))
        if args.json:
            with open(args.json, 'w') as handle:
                json.dump(data, handle, indent=2)


if __name__ == '__main__':
    main()
