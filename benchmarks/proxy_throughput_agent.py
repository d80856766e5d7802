# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""In-host half of benchmarks/proxy_throughput.py (not a test, not run by hand).

proxy_throughput.py copies this file into the benchmark host (a test-platform
host container on which playbooks/site.yml deployed the stack) and runs it
there with the host's python3. Each call measures ONE case of one round:

1. clear the registry's storage, restart the registry container, install the
   nginx.conf of the case, `nginx -t`, SIGHUP nginx and wait until the old
   workers are gone and both the registry and nginx answer;
2. write an OCI layout with one uncompressed tar layer of fresh random data
   (tmpfs, outside the timed part);
3. push it with `skopeo copy --preserve-digests` (no recompression), then pull
   it back into an empty OCI layout, each timed, while a thread samples the
   memory of the nginx and registry containers' cgroups every 0.1 s;
4. print one JSON object; remove the layouts.

Everything it starts is bounded by --timeout; it leaves nothing running.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import resource
import shutil
import ssl
import subprocess
import sys
import tarfile
import threading
import time

REGISTRY = 'registry-registry-1'
PROXY = 'registry-proxy-1'
DATA_DIR = '/opt/registry/data'
CONF_DIR = '/opt/registry/nginx'
CONF_IN_CONTAINER = '/etc/nginx/selfhosted/nginx.conf'
WORK = '/tmp/proxy-throughput'   # tmpfs in a test-platform host
CHUNK = 1 << 20


def run(*command, timeout=120):
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout).stdout


def container_ip(name, network_suffix):
    """Address of container ``name`` on the compose network ending in ``network_suffix``."""
    networks = json.loads(run('docker', 'inspect', '--format', '{{json .NetworkSettings.Networks}}', name))
    for network, settings in networks.items():
        if network.endswith(network_suffix):
            return settings['IPAddress']
    raise SystemExit('%s is not on a network *%s: %s' % (name, network_suffix, list(networks)))


def cgroup_dirs(name):
    """cgroup v1 memory and cpuacct directories of a container (the host runs with --cgroupns host)."""
    pid = run('docker', 'inspect', '--format', '{{.State.Pid}}', name).strip()
    dirs = {}
    with open('/proc/%s/cgroup' % pid) as handle:
        for line in handle:
            dummy, controllers, path = line.rstrip('\n').split(':', 2)
            for controller in controllers.split(','):
                if controller in ('memory', 'cpuacct'):
                    dirs[controller] = '/sys/fs/cgroup/%s%s' % (controllers, path)
    if set(dirs) != {'memory', 'cpuacct'}:
        raise SystemExit('no cgroup v1 memory/cpuacct directories for %s: %s' % (name, dirs))
    return dirs


def read_int(path):
    with open(path) as handle:
        return int(handle.read().split()[0])


def memory_stat(directory):
    stat = {}
    with open(os.path.join(directory, 'memory.stat')) as handle:
        for line in handle:
            key, value = line.split()
            stat[key] = int(value)
    return stat


def wait_http(host, port, tls, deadline, path='/v2/'):
    """Wait until ``host:port`` answers ``path`` with any HTTP status (401 without credentials)."""
    while True:
        try:
            if tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                connection = http.client.HTTPSConnection(host, port, timeout=5, context=context)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=5)
            connection.request('GET', path)
            status = connection.getresponse().status
            connection.close()
            return status
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def nginx_workers_shutting_down(cgroup):
    count = 0
    with open(os.path.join(cgroup['memory'], 'cgroup.procs')) as handle:
        pids = handle.read().split()
    for pid in pids:
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as cmdline:
                if b'shutting down' in cmdline.read():
                    count += 1
        except OSError:
            pass
    return count


def reset(conf, domain_ip, timeout):
    """Empty storage, restarted registry, nginx on ``conf`` with fresh workers."""
    deadline = time.monotonic() + timeout
    run('docker', 'stop', '--time', '10', REGISTRY)
    for entry in os.listdir(DATA_DIR):
        path = os.path.join(DATA_DIR, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    run('docker', 'start', REGISTRY)
    registry_ip = container_ip(REGISTRY, '_backend')
    wait_http(registry_ip, 5000, False, deadline)
    # The variant's configuration, replaced atomically (nginx reads it
    # through the directory mount), checked by nginx, then a reload: new
    # workers, which also resolve the registry's (maybe new) address.
    live = os.path.join(CONF_DIR, 'nginx.conf')
    with open(conf) as handle:
        wanted = handle.read()
    with open(live) as handle:
        current = handle.read()
    if wanted != current:
        temporary = live + '.bench'
        with open(temporary, 'w') as handle:
            handle.write(wanted)
        os.chmod(temporary, 0o644)
        os.replace(temporary, live)
    run('docker', 'exec', PROXY, 'nginx', '-t', '-q', '-c', CONF_IN_CONTAINER)
    run('docker', 'kill', '--signal', 'HUP', PROXY)
    proxy = cgroup_dirs(PROXY)
    time.sleep(0.5)
    while nginx_workers_shutting_down(proxy):
        if time.monotonic() > deadline:
            raise SystemExit('old nginx workers did not exit')
        time.sleep(0.2)
    wait_http(domain_ip, 443, True, deadline)
    return registry_ip


def make_layout(directory, size):
    """OCI layout (tag `bench`) with one uncompressed tar layer holding ``size`` fresh random bytes."""
    shutil.rmtree(directory, ignore_errors=True)
    blobs = os.path.join(directory, 'blobs', 'sha256')
    os.makedirs(blobs)

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), 'wb') as handle:
            handle.write(data)
        return 'sha256:' + digest, len(data)

    temporary = os.path.join(directory, 'layer.tmp')
    layer_hash = hashlib.sha256()
    info = tarfile.TarInfo('random.bin')
    info.size = size
    info.mode = 0o644
    info.mtime = int(time.time())
    written = 0
    with open(temporary, 'wb') as handle:
        def put(data):
            nonlocal written
            layer_hash.update(data)
            handle.write(data)
            written += len(data)
        put(info.tobuf(format=tarfile.USTAR_FORMAT))
        left = size
        while left:
            data = os.urandom(min(CHUNK, left))
            put(data)
            left -= len(data)
        put(b'\0' * ((512 - size % 512) % 512))
        put(b'\0' * 1024)   # end of archive
    layer_digest = 'sha256:' + layer_hash.hexdigest()
    os.rename(temporary, os.path.join(blobs, layer_hash.hexdigest()))
    config = {
        'architecture': 'amd64', 'os': 'linux', 'config': {},
        'rootfs': {'type': 'layers', 'diff_ids': [layer_digest]},   # uncompressed: diff ID = digest
    }
    config_digest, config_size = blob(json.dumps(config).encode())
    manifest = {
        'schemaVersion': 2,
        'mediaType': 'application/vnd.oci.image.manifest.v1+json',
        'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': config_digest, 'size': config_size},
        'layers': [{'mediaType': 'application/vnd.oci.image.layer.v1.tar', 'digest': layer_digest, 'size': written}],
    }
    manifest_digest, manifest_size = blob(json.dumps(manifest).encode())
    with open(os.path.join(directory, 'index.json'), 'w') as handle:
        json.dump({'schemaVersion': 2, 'manifests': [{
            'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': manifest_digest, 'size': manifest_size,
            'annotations': {'org.opencontainers.image.ref.name': 'bench'}}]}, handle)
    with open(os.path.join(directory, 'oci-layout'), 'w') as handle:
        json.dump({'imageLayoutVersion': '1.0.0'}, handle)
    return layer_digest, written


def docker_proxy_cpu():
    """CPU seconds of the host's docker-proxy processes (userland port forwarding): they must stay idle,
    traffic to the host's own address is forwarded by the kernel (DNAT)."""
    ticks = 0
    for pid in os.listdir('/proc'):
        try:
            with open('/proc/%s/stat' % pid) as handle:
                fields = handle.read().rsplit(')', 1)
        except (OSError, ValueError):
            continue
        if len(fields) == 2 and fields[0].endswith('(docker-proxy'):
            values = fields[1].split()
            ticks += int(values[11]) + int(values[12])   # utime, stime
    return ticks / os.sysconf('SC_CLK_TCK')


def measure(command, cgroups, timeout):
    """Run ``command``; wall seconds, its CPU seconds, and per cgroup the CPU
    seconds used and the memory peaks (anonymous memory sampled every 0.1 s;
    the kernel's max_usage_in_bytes, which counts page cache too)."""
    for dirs in cgroups.values():
        try:   # cgroup v1: writing 0 resets the high-water mark
            with open(os.path.join(dirs['memory'], 'memory.max_usage_in_bytes'), 'w') as handle:
                handle.write('0')
        except OSError:
            pass
    peaks = dict((name, 0) for name in cgroups)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for name, dirs in cgroups.items():
                try:
                    stat = memory_stat(dirs['memory'])
                except OSError:
                    continue
                peaks[name] = max(peaks[name], stat.get('total_rss', stat.get('rss', 0)))
            stop.wait(0.1)

    docker_proxy_before = docker_proxy_cpu()
    cpu_before = dict((name, read_int(os.path.join(dirs['cpuacct'], 'cpuacct.usage'))) for name, dirs in cgroups.items())
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.monotonic()
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        seconds = time.monotonic() - start
        stop.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise SystemExit('%s failed (%d):\n%s' % (' '.join(command), completed.returncode, completed.stderr[-3000:]))
    result = {'seconds': round(seconds, 3),
              'client_cpu_s': round(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime, 3),
              'docker_proxy_cpu_s': round(docker_proxy_cpu() - docker_proxy_before, 2)}
    for name, dirs in cgroups.items():
        used = read_int(os.path.join(dirs['cpuacct'], 'cpuacct.usage')) - cpu_before[name]
        result[name + '_cpu_s'] = round(used / 1e9, 3)
        result[name + '_rss_peak_mib'] = round(peaks[name] / 2 ** 20, 1)
        result[name + '_usage_peak_mib'] = round(
            read_int(os.path.join(dirs['memory'], 'memory.max_usage_in_bytes')) / 2 ** 20, 1)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--case', required=True, help='proxy, direct or plain (plain HTTP through nginx on 8080)')
    parser.add_argument('--conf', required=True, help='nginx.conf to run nginx with (in this host)')
    parser.add_argument('--domain', required=True)
    parser.add_argument('--domain-ip', required=True, help="this host's address that --domain resolves to")
    parser.add_argument('--ca', required=True, help='directory with ca.crt for the TLS case')
    parser.add_argument('--user', required=True)
    parser.add_argument('--password-file', required=True)
    parser.add_argument('--repository', required=True)
    parser.add_argument('--size', type=int, required=True, help='bytes of random data in the layer')
    parser.add_argument('--timeout', type=int, default=600, help='seconds allowed per skopeo command')
    args = parser.parse_args()

    registry_ip = reset(args.conf, args.domain_ip, 120)
    # skopeo's TLS options, without the --src-/--dest- prefix.
    if args.case == 'proxy':   # HTTPS, the self-signed certificate trusted
        endpoint, tls = args.domain, ['cert-dir', args.ca]
    elif args.case == 'direct':   # plain HTTP straight to the registry
        endpoint, tls = '%s:5000' % registry_ip, ['tls-verify=false']
    elif args.case == 'plain':   # plain HTTP through nginx
        endpoint, tls = '%s:8080' % container_ip(PROXY, '_frontend'), ['tls-verify=false']
    else:
        raise SystemExit('unknown case %s' % args.case)
    tls_push = ['--dest-' + tls[0]] + tls[1:]
    tls_pull = ['--src-' + tls[0]] + tls[1:]
    with open(args.password_file) as handle:
        creds = '%s:%s' % (args.user, handle.read().strip())
    reference = 'docker://%s/%s:bench' % (endpoint, args.repository)
    cgroups = {'nginx': cgroup_dirs(PROXY), 'registry': cgroup_dirs(REGISTRY)}

    source, target = os.path.join(WORK, 'source'), os.path.join(WORK, 'pulled')
    try:
        generate_start = time.monotonic()
        digest, size = make_layout(source, args.size)
        generate_seconds = time.monotonic() - generate_start
        shutil.rmtree(target, ignore_errors=True)
        skopeo = ['skopeo', '--command-timeout', '%ds' % args.timeout, 'copy', '--retry-times', '0']
        push = measure(skopeo + ['--preserve-digests', '--dest-creds', creds] + tls_push
                       + ['oci:%s:bench' % source, reference], cgroups, args.timeout + 30)
        pull = measure(skopeo + ['--preserve-digests', '--src-creds', creds] + tls_pull
                       + [reference, 'oci:%s:bench' % target], cgroups, args.timeout + 30)
        pulled = os.path.join(target, 'blobs', 'sha256', digest.split(':', 1)[1])
        if not os.path.isfile(pulled) or os.path.getsize(pulled) != size:
            raise SystemExit('the pulled layout lacks the layer %s of %d bytes' % (digest, size))
        stored = os.path.join(DATA_DIR, 'docker/registry/v2/blobs/sha256', digest[7:9], digest[7:], 'data')
        if os.path.getsize(stored) != size:
            raise SystemExit('the registry does not hold the layer as pushed (%s)' % stored)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    json.dump({'case': args.case, 'endpoint': endpoint, 'layer_digest': digest, 'layer_bytes': size,
               'generate_s': round(generate_seconds, 1), 'load': os.getloadavg()[0], 'push': push, 'pull': pull},
              sys.stdout)
    print()


if __name__ == '__main__':
    main()
