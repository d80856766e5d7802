# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: giving a registry's storage to its user (not a test).

The registry role gives storage written by a root-run registry to the
registry's user in place (roles/registry/tasks/install.yml, the commands in
roles/registry/vars/main.yml), and looks for such files on every run. This
measures each step on synthetic stores laid out like the registry's
filesystem storage (blobs/sha256/xx/<digest>/data, and per repository
_layers links), owned by root, of several sizes:

  look, root-owned   find -maxdepth 4 ... -print -quit: the top levels only
  give               find -depth ... -exec chown: the migration itself
                     (ownership only, nothing copied), deepest entry first
  look, owned        the same look on a store its user owns: what every
                     later run pays
  give, owned        the give on a store its user owns: the pass after the
                     recreate, which reads the whole store

each with the page cache dropped first (a store not read for a while), when
the machine allows it (/proc/sys/vm/drop_caches; the report says), and again
warm. Entries are files and directories together; a registry keeps about
five per layer it stores once (its blob) and per repository that links it.

Bounded: --entries (each 1000-2000000), --max-minutes. The stores live in a
temporary directory under --dir (default /var/tmp) and are removed at the end.
Run as root from the repository root:
  .venv/bin/python benchmarks/storage_owner_bench.py
Results: docs/performance.md, "Storage owner".
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time

UID = GID = 10500   # the registry role's registry_uid, registry_gid
LINK = b'sha256:' + b'0' * 64


def make_store(root, entries):
    """A registry-like tree of about `entries` files and directories, owned by whoever runs this."""
    v2 = os.path.join(root, 'docker', 'registry', 'v2')
    made, number = 0, 0
    while made < entries:
        digest = '%064x' % number
        blob = os.path.join(v2, 'blobs', 'sha256', digest[:2], digest)
        os.makedirs(blob, exist_ok=True)
        with open(os.path.join(blob, 'data'), 'wb') as handle:
            handle.write(b'x')
        repository = os.path.join(v2, 'repositories', 'repo%d' % (number % 200))
        link_dir = os.path.join(repository, '_layers', 'sha256', digest)
        os.makedirs(link_dir, exist_ok=True)
        with open(os.path.join(link_dir, 'link'), 'wb') as handle:
            handle.write(LINK)
        made += 5   # blob dir, data, link dir, link, and the share of the directories above
        number += 1
    return number


def drop_caches():
    try:
        subprocess.run(['sync'], check=True)
        with open('/proc/sys/vm/drop_caches', 'w') as handle:
            handle.write('3\n')
        return True
    except OSError:
        return False


def timed(argv):
    start = time.monotonic()
    completed = subprocess.run(argv, capture_output=True, text=True, check=True)
    return time.monotonic() - start, completed.stdout


FOREIGN = ['(', '!', '-uid', str(UID), '-o', '!', '-gid', str(GID), ')']


def look(root):
    return ['find', root, '-maxdepth', '4'] + FOREIGN + ['-print', '-quit']


def give(root):
    return ['find', root, '-depth'] + FOREIGN + ['-exec', 'chown', '--no-dereference', '%d:%d' % (UID, GID), '{}', '+']


def measure(root, cold):
    """Seconds of each step, from a store that root owns."""
    subprocess.run(['chown', '-R', '0:0', root], check=True)
    result = {}
    for name, argv in (('look_root', look(root)), ('give', give(root)), ('look_owned', look(root)),
                       ('give_owned', give(root))):
        if cold:
            drop_caches()
        result[name], output = timed(argv)
        if name == 'look_root':
            assert output.strip(), 'the root-owned store looked owned'
    assert not subprocess.run(['find', root] + FOREIGN + ['-print', '-quit'], capture_output=True, text=True,
                              check=True).stdout.strip(), 'the give left something'
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--entries', default='100000,1000000',
                        help='comma-separated store sizes in files and directories (default 100000,1000000)')
    parser.add_argument('--dir', default='/var/tmp', help='where the stores are made (default /var/tmp)')
    parser.add_argument('--max-minutes', type=float, default=30, help='no new store after this many minutes (default 30)')
    args = parser.parse_args()
    sizes = [int(size) for size in args.entries.split(',')]
    if os.geteuid() != 0 or not all(1000 <= size <= 2000000 for size in sizes):
        raise SystemExit('run as root; --entries each 1000-2000000')
    cold_possible = drop_caches()
    started = time.monotonic()
    rows = []
    work = tempfile.mkdtemp(prefix='storage-owner-', dir=args.dir)
    try:
        for size in sizes:
            if (time.monotonic() - started) / 60 > args.max_minutes:
                break
            root = os.path.join(work, 'store-%d' % size)
            blobs = make_store(root, size)
            count = int(subprocess.run(['sh', '-c', 'find "$1" | wc -l', 'sh', root], capture_output=True, text=True,
                                       check=True).stdout)
            for cold in ([True] if cold_possible else []) + [False]:
                rows.append((count, blobs, 'cold' if cold else 'warm', measure(root, cold)))
            shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print('Stores under %s (%s); page cache dropped before each step of a cold row: %s.\n'
          % (args.dir, subprocess.run(['df', '--output=fstype', args.dir], capture_output=True, text=True,
                                      check=False).stdout.split()[-1], 'yes' if cold_possible else 'not possible here'))
    print('| entries | blobs | cache | look, root-owned (s) | give (s) | look, owned: every run (s) | give, owned: '
          'after a recreate (s) |')
    print('|---:|---:|---|---:|---:|---:|---:|')
    for count, blobs, cache, result in rows:
        steps = (result['look_root'], result['give'], result['look_owned'], result['give_owned'])
        print('| %d | %d | %s | %.3f | %.2f | %.3f | %.2f |' % ((count, blobs, cache) + steps))
    print('\nReproduce: .venv/bin/python benchmarks/storage_owner_bench.py --entries %s' % args.entries)


if __name__ == '__main__':
    main()
