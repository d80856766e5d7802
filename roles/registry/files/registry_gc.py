# Copyright: selfhosted.registry contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention and garbage collection for the registry of selfhosted.registry.registry.

One run: the tags that the retention policies let go are deleted, then the
registry's own ``garbage-collect --delete-untagged`` frees what nothing
references any more. Both happen in a write window, while pulls go on:

1. the proxy refuses writes with 503 and Retry-After (its reload script,
   ``--pause-writes``), so a push fails at once;
2. a read-only copy of the registry container starts beside it (same image,
   mounts and network name, ``storage.maintenance.readonly`` on);
3. the registry container stops: it finishes the requests in flight (its
   drain timeout), and from then on nothing writes to the storage;
4. retention deletes tags (in the storage, filesystem or S3: the registry
   keeps no push date anywhere else; registry_storage.py), then
   garbage-collect runs in the read-only copy;
5. the registry container starts again, with an empty blob-descriptor cache:
   no client is told that a collected layer still exists;
6. the copy stops, and the proxy takes writes again.

Pulls never lack a registry: the proxy retries a refused or dropped
connection on the other container of the same name.

Several nodes on one storage run the same window in phases, every node's
steps at once (the registry role's garbage_collect playbook orders them):
``--phase open`` (steps 1-3) on every node, ``--phase collect`` (step 4,
then the shared blob-descriptor cache flushed: it would tell clients that a
collected layer still exists) on one node, ``--phase close`` (steps 5-6) on
every node. ``--phase all``, the default, is the whole run on one host.

``--dry-run`` lists the tags that would go and changes nothing. ``--json``
prints the result as JSON (for Ansible) and the log on stderr. A run never
overlaps another (a lock), and one that was cut short (the copy still there)
is put right by the next.

Needs the standard library and, for a real run, Debian's python3-docker.
Runs as root on the registry host: ``python3 registry_gc.py CONFIG``.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import time

# Installed beside this file (the script's directory is on sys.path).
from registry_storage import StorageError, storage_for
from repository_patterns import pattern_regex

READ_ONLY_ENV = 'REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled": true}'
MAINTENANCE_LABEL = 'org.selfhosted.registry.maintenance-of'
# The role passes its own (lock_file); a backup takes it too.
LOCK_FILE = '/run/selfhosted-registry-gc.lock'
DURATION = re.compile(r'\A([0-9]+)([smhdw])\Z')
UNIT_SECONDS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
GC_SUMMARY = re.compile(r'([0-9]+) blobs marked, ([0-9]+) blobs and ([0-9]+) manifests eligible for deletion')


class GCError(Exception):
    """The run cannot go on; the message says why."""


def log(message):
    print(message, file=LOG, flush=True)


LOG = sys.stdout


# --- retention ------------------------------------------------------------------


def duration_seconds(text):
    """`30d`, `12h`, `2w`... in seconds."""
    match = DURATION.match(str(text))
    if not match:
        raise GCError('%r is not a duration (a number and s, m, h, d or w: 30d)' % (text,))
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def policy_for(repository, policies):
    """The first policy whose repository patterns match, or None."""
    for policy in policies:
        if any(pattern_regex(pattern).match(repository) for pattern in policy['repositories']):
            return policy
    return None


def plan(tags, policies, protected, now):
    """The tags to delete: [{repository, tag, pushed, reason}], in repository and tag order.

    `tags` is {repository: [(tag, pushed)]}, as the storage shows them.

    In a repository that a policy applies to, a tag is kept when it is
    protected or matches one of the policy's keep_tags; of the others, newest
    first, a tag goes when it is beyond the first keep_newest or was pushed
    longer than delete_older_than ago.
    """
    deletions = []
    for repository in sorted(tags):
        policy = policy_for(repository, policies)
        if policy is None:
            continue
        keep = [re.compile(pattern) for pattern in policy.get('keep_tags') or ()]
        keep_newest = policy.get('keep_newest')
        max_age = duration_seconds(policy['delete_older_than']) if policy.get('delete_older_than') else None
        candidates = [entry for entry in tags[repository]
                      if entry[0] not in protected and not any(regex.fullmatch(entry[0]) for regex in keep)]
        candidates.sort(key=lambda entry: (entry[1], entry[0]), reverse=True)
        for rank, (tag, pushed) in enumerate(candidates):
            if keep_newest is not None and rank >= keep_newest:
                reason = 'not among the newest %d' % keep_newest
            elif max_age is not None and now - pushed > max_age:
                reason = 'pushed %s ago, more than %s' % (_age(now - pushed), policy['delete_older_than'])
            else:
                continue
            deletions.append({'repository': repository, 'tag': tag, 'pushed': _timestamp(pushed), 'reason': reason})
    deletions.sort(key=lambda deletion: (deletion['repository'], deletion['tag']))
    return deletions


def storage_of(settings):
    """The storage that retention reads and a run measures, or None (S3 without keys)."""
    # The settings of an older release name a filesystem root only.
    legacy = {'filesystem': {'rootdirectory': settings['storage_root']}} if settings.get('storage_root') else {}
    return storage_for(settings.get('storage') or legacy)


def planned(storage, settings):
    """The tags the policies let go now, each with the digest it points to."""
    deletions = plan(storage.tags(), settings.get('policies') or [], set(settings.get('protected_tags') or ()), time.time())
    for deletion in deletions:
        deletion['digest'] = storage.digest(deletion['repository'], deletion['tag'])
    return deletions


def _age(seconds):
    days, rest = divmod(int(seconds), 86400)
    return '%dd %dh' % (days, rest // 3600) if days else '%dh %dm' % (rest // 3600, rest % 3600 // 60)


def _timestamp(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def parse_gc_output(output):
    """garbage-collect's summary line as numbers."""
    match = GC_SUMMARY.search(output)
    if not match:
        raise GCError('garbage-collect printed no summary: %s' % output[-2000:])
    marked, blobs, manifests = (int(number) for number in match.groups())
    return {'blobs_marked': marked, 'blobs_deleted': blobs, 'manifests_deleted': manifests}


# --- the write window ---------------------------------------------------------------


class Window:
    """The registry container, its read-only copy, and the proxy's write switch."""

    def __init__(self, settings):
        import docker  # pylint: disable=import-outside-toplevel
        self.api = docker.APIClient(version='auto', timeout=settings.get('docker_timeout', 300))
        self.project = settings['project']
        self.service = settings.get('service', 'registry')
        self.reload_script = settings.get('proxy_reload_script', '')
        self.healthy_timeout = settings.get('healthy_timeout', 120)
        self.overlap = float(settings.get('overlap_seconds', 5))
        self.copy_name = '%s-%s-maintenance' % (self.project, self.service)

    def registry(self):
        """The inspected registry container of the compose project."""
        found = self.api.containers(all=True, filters={'label': [
            'com.docker.compose.project=%s' % self.project, 'com.docker.compose.service=%s' % self.service]})
        if len(found) != 1:
            raise GCError('expected one container of service %s in compose project %s, found %d: '
                          'run the site playbook first' % (self.service, self.project, len(found)))
        return self.api.inspect_container(found[0]['Id'])

    def copy(self):
        found = self.api.containers(all=True, filters={'label': '%s=%s' % (MAINTENANCE_LABEL, self.project)})
        return self.api.inspect_container(found[0]['Id']) if found else None

    def proxy(self, *arguments):
        """The proxy role's reload script, when the proxy runs on this host."""
        if self.reload_script and os.path.exists(self.reload_script):
            done = subprocess.run([self.reload_script, *arguments, self.project], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise GCError('%s %s failed: %s' % (self.reload_script, ' '.join(arguments), done.stderr.strip()))

    def wait_healthy(self, container_id, what):
        deadline = time.monotonic() + self.healthy_timeout
        while True:
            state = self.api.inspect_container(container_id)['State']
            health = state.get('Health', {}).get('Status', 'healthy' if state.get('Running') else 'stopped')
            if health == 'healthy' and state.get('Running'):
                return
            if not state.get('Running') or time.monotonic() > deadline:
                raise GCError('%s did not become healthy (%s): docker logs %s' % (what, health, container_id[:12]))
            time.sleep(0.5)

    def open(self, registry):
        """Writes stopped for good: the read-only copy serves, the registry container has stopped."""
        config = dict(registry['Config'])
        config.pop('Hostname', None)
        config['Env'] = [item for item in config.get('Env') or () if not item.startswith('REGISTRY_STORAGE_MAINTENANCE')]
        config['Env'].append(READ_ONLY_ENV)
        config['Labels'] = {key: value for key, value in (config.get('Labels') or {}).items()
                            if not key.startswith('com.docker.compose.')}
        config['Labels'][MAINTENANCE_LABEL] = self.project
        host_config = dict(registry['HostConfig'])
        host_config['RestartPolicy'] = {'Name': 'no'}
        networks = registry['NetworkSettings']['Networks']
        own_names = {registry['Id'][:12], registry['Name'].lstrip('/')}
        endpoints = {name: {'Aliases': [alias for alias in network.get('Aliases') or () if alias not in own_names]}
                     for name, network in networks.items()}
        first = sorted(endpoints)[0]
        config['HostConfig'] = host_config
        config['NetworkingConfig'] = {'EndpointsConfig': {first: endpoints[first]}}
        # Writes stop at the proxy before the copy can be reached: it would
        # answer them with a bare 405.
        self.proxy('--pause-writes')
        created = self.api.create_container_from_config(config, name=self.copy_name)
        for name in sorted(endpoints)[1:]:
            self.api.connect_container_to_network(created['Id'], name, aliases=endpoints[name]['Aliases'])
        self.api.start(created['Id'])
        self.wait_healthy(created['Id'], 'the read-only copy of the registry')
        # nginx that resolves the name only when it loads its configuration
        # finds the copy now; later nginx within the overlap.
        self.proxy('--registry-recreated')
        time.sleep(self.overlap)
        self.api.stop(registry['Id'], timeout=config.get('StopTimeout') or 70)

    def close(self):
        """The registry container serves again (a new process: an empty cache), the copy is gone, writes are taken.

        Also ends the window of a run cut short, whatever step it reached.
        """
        copy = self.copy()
        if copy is not None:
            registry = self.registry()
            if not registry['State'].get('Running'):
                self.api.start(registry['Id'])
                self.wait_healthy(registry['Id'], 'the registry container')
                time.sleep(self.overlap)
            self.api.stop(copy['Id'], timeout=copy['Config'].get('StopTimeout') or 70)
            self.api.remove_container(copy['Id'])
            self.proxy('--registry-recreated')
        self.proxy('--resume-writes')


# --- the shared cache ---------------------------------------------------------------


def resp_command(*words):
    """One command in the protocol of Redis and Valkey (RESP): an array of bulk strings."""
    encoded = [word.encode('utf-8') if isinstance(word, str) else word for word in words]
    return b''.join([b'*%d\r\n' % len(encoded)] + [b'$%d\r\n%s\r\n' % (len(word), word) for word in encoded])


def split_address(address):
    """("host", port) of "host:port" or "[v6 address]:port"."""
    host, port = address.rsplit(':', 1) if ':' in address else ('', '')
    if not host or not port.isdigit():
        raise GCError('the cache address %r is not host:port' % address)
    return host.strip('[]'), int(port)


def flush_cache(cache, timeout=10):
    """Empty the registry's database in the shared cache (cache: address, username, password, db)."""
    commands = []
    if cache.get('password'):
        commands.append(resp_command('AUTH', *([cache['username']] if cache.get('username') else []), cache['password']))
    commands += [resp_command('SELECT', str(cache.get('db', 0))), resp_command('FLUSHDB')]
    with socket.create_connection(split_address(cache['address']), timeout=timeout) as connection:
        connection.sendall(b''.join(commands))
        replies = connection.makefile('rb')
        for _command in commands:
            reply = replies.readline().decode('utf-8', 'replace').strip()
            if not reply.startswith('+'):
                # Never the command: it may hold the password.
                raise GCError('the cache at %s refused to be flushed: %s' % (cache['address'], reply or 'no answer'))


# --- a run --------------------------------------------------------------------------


PHASES = ('all', 'open', 'collect', 'close')


def run(settings, dry_run, phase='all'):
    # Refused before any step of the window.
    if settings.get('policies') and storage_of(settings) is None:
        raise GCError('retention policies read the push dates in the storage: set registry_storage_s3_accesskey '
                      'and registry_storage_s3_secretkey')
    if str(settings.get('registry_major', '3')) == '2':
        raise GCError('garbage collection needs registry 3.x: the collector of 2.x deletes the images of multi-platform indexes')
    result = {'dry_run': dry_run, 'phase': phase, 'deleted_tags': [], 'gc': None,
              'bytes_before': None, 'bytes_after': None, 'bytes_freed': None, 'window_seconds': None}

    if dry_run:
        result['deleted_tags'] = planned(storage_of(settings), settings) if settings.get('policies') else []
        for deletion in result['deleted_tags']:
            log('would delete %(repository)s:%(tag)s (%(digest)s, pushed %(pushed)s): %(reason)s' % deletion)
        log('dry run: %d tags would be deleted; garbage-collect then frees what only they referenced'
            % len(result['deleted_tags']))
        return result

    window = Window(settings)
    if phase == 'close':
        window.close()
        log('write window: closed')
        return result
    if phase == 'collect':
        if window.copy() is None:
            raise GCError('the write window is not open on this host: run --phase open on every node first')
        collect(settings, window, result)
        return result

    if window.copy() is not None:
        log('a read-only copy of the registry is left from a run cut short: ending that window first')
    window.close()
    registry = window.registry()
    if not registry['State'].get('Running'):
        raise GCError('the registry container %s is not running' % registry['Name'].lstrip('/'))
    started = time.monotonic()
    log('write window: starting a read-only copy of the registry, then stopping writes')
    try:
        window.open(registry)
        log('write window: open after %.1f s, pulls served by the read-only copy' % (time.monotonic() - started))
        if phase == 'all':
            collect(settings, window, result)
    except BaseException:
        window.close()
        raise
    if phase == 'open':
        # Left open for `collect` on one node and `close` on each.
        return result
    window.close()
    window_seconds = round(time.monotonic() - started, 1)
    result['window_seconds'] = window_seconds
    freed = '' if result['bytes_freed'] is None else ', %d bytes freed' % result['bytes_freed']
    log('write window: closed after %.1f s; %d tags deleted%s' % (window_seconds, len(result['deleted_tags']), freed))
    return result


def collect(settings, window, result):
    """In an open window: retention, garbage-collect in the read-only copy, then the shared cache flushed."""
    storage = storage_of(settings)
    if storage is not None and not settings.get('policies') and 's3' in (settings.get('storage') or {}):
        # A bucket is read from the host only for the policies: a collection
        # without them needs nothing more of it than before.
        storage = None
    if storage is not None:
        result['bytes_before'] = storage.usage()
    if settings.get('policies'):
        # Planned again now that nothing writes: the dry run's list,
        # unless tags were pushed since.
        result['deleted_tags'] = planned(storage, settings)
        for deletion in result['deleted_tags']:
            storage.delete_tag(deletion['repository'], deletion['tag'])
            log('deleted %(repository)s:%(tag)s (%(digest)s, pushed %(pushed)s): %(reason)s' % deletion)
    copy = window.copy()
    command = ['registry', 'garbage-collect', settings['config_path'], '--delete-untagged']
    execution = window.api.exec_create(copy['Id'], command)
    output = window.api.exec_start(execution['Id']).decode('utf-8', 'replace')
    code = window.api.exec_inspect(execution['Id'])['ExitCode']
    if code != 0:
        raise GCError('garbage-collect exited with %s: %s' % (code, output[-2000:]))
    result['gc'] = parse_gc_output(output)
    log('garbage-collect: %(blobs_marked)d blobs in use, %(blobs_deleted)d blobs and '
        '%(manifests_deleted)d manifests deleted' % result['gc'])
    if settings.get('cache'):
        flush_cache(settings['cache'])
        log('the shared blob-descriptor cache is flushed')
    if storage is not None:
        result['bytes_after'] = storage.usage()
        result['bytes_freed'] = result['bytes_before'] - result['bytes_after']


def record_last_run(path, result, now=None):
    """Leave the outcome of a real run in ``path`` (for the metrics; no path: nothing): when it ended, whether it
    succeeded (``result`` None: it failed), what it freed, and when the last successful run ended."""
    if not path:
        return
    now = time.time() if now is None else now
    try:
        with open(path, encoding='utf-8') as handle:
            before = json.load(handle)
    except (OSError, ValueError):
        before = {}
    record = {
        'finished': now,
        'succeeded': result is not None,
        'last_success': now if result is not None else before.get('last_success'),
        'deleted_tags': len(result['deleted_tags']) if result is not None else before.get('deleted_tags'),
        'bytes_freed': result['bytes_freed'] if result is not None else before.get('bytes_freed'),
    }
    # Installed beside this file where metrics are on, the only case with a path.
    from registry_metrics import write_atomically  # pylint: disable=import-outside-toplevel
    write_atomically(path, json.dumps(record))


def main(argv=None):
    global LOG  # pylint: disable=global-statement
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('config', help='settings (JSON) written by the registry role; - reads them from stdin')
    parser.add_argument('--dry-run', action='store_true', help='list the tags that would be deleted, change nothing')
    parser.add_argument('--json', action='store_true', help='print the result as JSON, the log on stderr')
    parser.add_argument('--phase', choices=PHASES, default='all',
                        help='several nodes: open the window (each node), collect (one node), close it (each node)')
    arguments = parser.parse_args(argv)
    if arguments.json:
        LOG = sys.stderr
    try:
        if arguments.config == '-':
            settings = json.load(sys.stdin)
        else:
            with open(arguments.config, encoding='utf-8') as handle:
                settings = json.load(handle)
        lock_file = settings.get('lock_file', LOCK_FILE)
        with open(lock_file, 'w', encoding='ascii') as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise GCError('another run or a backup is going on (%s is locked)' % lock_file) from None
            try:
                result = run(settings, arguments.dry_run, arguments.phase)
            except (GCError, StorageError, OSError, ValueError):
                if not arguments.dry_run and arguments.phase in ('all', 'collect'):
                    record_last_run(settings.get('last_run_file'), None)
                raise
            # The collector records the run (the other nodes only opened and closed).
            if not arguments.dry_run and arguments.phase in ('all', 'collect'):
                record_last_run(settings.get('last_run_file'), result)
    except (GCError, StorageError, OSError, ValueError) as error:
        log('registry_gc: %s' % error)
        return 1
    if arguments.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
