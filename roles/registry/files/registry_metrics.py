# Copyright: selfhosted.registry contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's figures of selfhosted.registry.registry, for Prometheus.

Writes one file in Prometheus' text format (the proxy serves it at
/metrics/host, a node exporter's textfile collector reads it as well): when
the certificate the proxy serves expires, the size of the storage's file
system and the space left on it, and how garbage collection's last run went
(registry_gc.py leaves that in a JSON file). Run every minute by the timer
selfhosted-registry-metrics; a figure that cannot be read is left out (the
alert rules notice its absence).

Needs the standard library and the openssl command. Runs as root on the
registry host: ``python3 registry_metrics.py --output FILE [...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import time

PREFIX = 'selfhosted_registry_'


def certificate_expiry(path):
    """The notAfter of the first certificate in ``path`` as a Unix time, None when it cannot be read."""
    try:
        output = subprocess.run(['openssl', 'x509', '-noout', '-enddate', '-in', path],
                                capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if not output.startswith('notAfter='):
        return None
    return ssl.cert_time_to_seconds(output.strip()[len('notAfter='):])


def storage_figures(path):
    """(size, available) in bytes of the file system that holds ``path``, None when there is none."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize


def last_gc_run(path):
    """What registry_gc.py recorded of its last real run, {} when it has not run (or recorded nothing)."""
    try:
        with open(path, encoding='utf-8') as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def metric(lines, name, kind, help_text, value, labels=''):
    """One metric in the text format, left out when its value is unknown."""
    if value is None:
        return
    lines.append('# HELP %s%s %s' % (PREFIX, name, help_text))
    lines.append('# TYPE %s%s %s' % (PREFIX, name, kind))
    lines.append('%s%s%s %s' % (PREFIX, name, labels, repr(float(value)) if isinstance(value, float) else int(value)))


def render(certificate, storage, gc, now):
    """The file's text from the figures read (each may be None or empty)."""
    lines = []
    metric(lines, 'certificate_expiry_timestamp_seconds', 'gauge',
           'When the certificate the proxy serves expires (its notAfter).', certificate)
    if storage is not None:
        metric(lines, 'storage_size_bytes', 'gauge', "Size of the storage's file system.", storage[0])
        metric(lines, 'storage_available_bytes', 'gauge',
               "Space left on the storage's file system for the registry (not root's reserve).", storage[1])
    metric(lines, 'gc_last_run_timestamp_seconds', 'gauge', 'When the last garbage collection ended.', gc.get('finished'))
    if 'succeeded' in gc:
        metric(lines, 'gc_last_run_succeeded', 'gauge', 'Whether the last garbage collection succeeded (1) or failed (0).',
               int(bool(gc['succeeded'])))
    metric(lines, 'gc_last_success_timestamp_seconds', 'gauge', 'When the last successful garbage collection ended.',
           gc.get('last_success'))
    metric(lines, 'gc_last_freed_bytes', 'gauge', 'Bytes the last successful garbage collection freed.', gc.get('bytes_freed'))
    metric(lines, 'gc_last_deleted_tags', 'gauge', 'Tags the last successful garbage collection deleted.',
           gc.get('deleted_tags'))
    metric(lines, 'metrics_updated_timestamp_seconds', 'gauge', 'When this file was written.', now)
    return '\n'.join(lines) + '\n'


def write_atomically(path, text):
    temporary = path + '.new'
    with open(temporary, 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--output', required=True, help='the file to write (replaced atomically)')
    parser.add_argument('--certificate', default='', help='the certificate the proxy serves (PEM)')
    parser.add_argument('--storage', default='', help="the registry's storage directory (filesystem driver)")
    parser.add_argument('--gc-last-run', default='', help="registry_gc.py's record of its last run (JSON)")
    arguments = parser.parse_args(argv)
    text = render(
        certificate_expiry(arguments.certificate) if arguments.certificate else None,
        storage_figures(arguments.storage) if arguments.storage else None,
        last_gc_run(arguments.gc_last_run) if arguments.gc_last_run else {},
        time.time(),
    )
    try:
        write_atomically(arguments.output, text)
    except OSError as error:
        print('registry_metrics: %s' % error, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
