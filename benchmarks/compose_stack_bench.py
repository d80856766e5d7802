# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: how long a no-op run of selfhosted.registry.compose_stack takes.

A 2-service stack (a "registry" with a healthcheck and a named volume, a
"proxy" that depends on it being healthy, publishes a port and bind-mounts a
directory) is created once; then the same definition is applied again and
again, which changes nothing. Measured, each as a new process like Ansible
starts it:

* module: the module alone, run directly with its arguments file, once per
  target interpreter (Docker SDK 5.0.3 / Python 3.11, SDK 7.1.0 / Python 3.13);
* playbook: a one-task ansible-playbook run, minus the same playbook with an
  empty task (ansible.builtin.meta: noop), i.e. what the task adds;
* compose CLI: `docker-compose up -d` on the same files, for reference, when
  the compose v2 CLI is in the Debian 13 target virtualenv.

Not a test: it asserts nothing, prints a Markdown table. Needs a Docker engine
and the integration tests' target virtualenvs and test image (run those tests
once first, or let this script build them).

  .venv/bin/python benchmarks/compose_stack_bench.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration', 'compose_stack'))

import docker  # noqa: E402 pylint: disable=wrong-import-position

import compose_stack_helpers as fixtures  # noqa: E402 pylint: disable=import-error,wrong-import-position
import targets as target_hosts  # noqa: E402 pylint: disable=import-error,wrong-import-position

COMPOSE = '''services:
  registry:
    image: {image}
    command: ["sh", "-c", "touch /tmp/ready; exec sleep 100000"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
    volumes:
      - data:/var/lib/registry
    restart: unless-stopped
    stop_grace_period: 1s
  proxy:
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    ports:
      - "127.0.0.1:{port}:443"
    volumes:
      - ./conf:/etc/nginx/conf.d:ro
    depends_on:
      registry:
        condition: service_healthy
    restart: unless-stopped
volumes:
  data:
'''


def timed(command, env=None, runs=10):
    samples = []
    for dummy in range(runs):
        start = time.monotonic()
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        samples.append(time.monotonic() - start)
        if completed.returncode != 0:
            raise SystemExit('benchmark command failed: %s\n%s%s'
                             % (' '.join(command), completed.stdout, completed.stderr))
        if '"changed": true' in completed.stdout:
            raise SystemExit('a no-op run reported a change: %s' % completed.stdout)
    return samples


def summary(samples):
    return '%.2f' % statistics.median(samples), '%.2f' % min(samples), '%.2f' % max(samples)


def module_importer_dir(workdir):
    """A directory with only the ansible package (for ansible.module_utils), not the dev venv's docker SDK."""
    import ansible  # pylint: disable=import-outside-toplevel
    target = os.path.join(workdir, 'ansible-only')
    os.makedirs(target)
    os.symlink(os.path.dirname(ansible.__file__), os.path.join(target, 'ansible'))
    return target


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--runs', type=int, default=15)
    options = parser.parse_args()

    client = docker.APIClient(version='auto')
    workdir = tempfile.mkdtemp(prefix='compose-stack-bench-')
    try:
        client.inspect_image(fixtures.IMAGE)
    except docker.errors.ImageNotFound:
        fixtures.build_busybox_image(fixtures.IMAGE, workdir)
    targets = dict((name, target_hosts.target_python(name)) for name in target_hosts.target_names())

    name = 'csbench-%s' % uuid.uuid4().hex[:6]
    project = os.path.join(workdir, name)
    os.makedirs(os.path.join(project, 'conf'))
    with open(os.path.join(project, 'compose.yaml'), 'w') as handle:
        handle.write(COMPOSE.format(image=fixtures.IMAGE, port=fixtures.free_port()))

    collections = os.path.join(workdir, 'collections')
    os.makedirs(os.path.join(collections, 'ansible_collections', 'selfhosted'))
    os.symlink(REPO, os.path.join(collections, 'ansible_collections', 'selfhosted', 'registry'))
    module_path = os.path.join(REPO, 'plugins', 'modules', 'compose_stack.py')
    args_file = os.path.join(workdir, 'args.json')
    with open(args_file, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': {'project_src': project, 'project_name': name}}, handle)
    module_env = dict(os.environ, PYTHONPATH=os.pathsep.join([collections, module_importer_dir(workdir)]))

    def playbook(task, filename):
        path = os.path.join(workdir, filename)
        with open(path, 'w') as handle:
            json.dump([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [task]}], handle)
        return path

    ansible_env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR='1',
                       ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0')
    playbook_bin = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    module_play = playbook({'selfhosted.registry.compose_stack': {'project_src': project, 'project_name': name}},
                           'module.yml')
    empty_play = playbook({'ansible.builtin.meta': 'noop'}, 'empty.yml')

    rows = []
    try:
        first = subprocess.run([targets['debian13'], module_path, args_file], env=module_env, capture_output=True,
                               text=True, check=False)
        if '"failed": true' in first.stdout or first.returncode != 0:
            raise SystemExit('creating the stack failed: %s%s' % (first.stdout, first.stderr))
        for target, python in sorted(targets.items()):
            samples = timed([python, module_path, args_file], env=module_env, runs=options.runs)
            rows.append(('module alone, %s target' % target,) + summary(samples))
        for target, python in sorted(targets.items()):
            base = [playbook_bin, '-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % python]
            with_task = timed(base + [module_play], env=ansible_env, runs=options.runs)
            without = timed(base + [empty_play], env=ansible_env, runs=options.runs)
            rows.append(('ansible-playbook, one task, %s target' % target,) + summary(with_task))
            rows.append(('  of which the task (minus an empty play)',
                         '%.2f' % (statistics.median(with_task) - statistics.median(without)), '', ''))
        cli = os.path.join(os.path.dirname(targets['debian13']), 'docker-compose')
        if os.access(cli, os.X_OK):
            samples = timed([cli, '-p', name, '-f', os.path.join(project, 'compose.yaml'), 'up', '-d'],
                            runs=options.runs)
            rows.append(('reference: docker-compose v5 up -d (recreates once, then no-op)',)
                        + summary(samples[1:] or samples))
    finally:
        subprocess.run([os.path.join(os.path.dirname(targets['debian13']), 'python'), module_path,
                        _absent_args(workdir, project, name)], env=module_env, capture_output=True, check=False)
        for volume in client.volumes(filters={'label': 'com.docker.compose.project=%s' % name}).get('Volumes') or []:
            client.remove_volume(volume['Name'], force=True)

    print('No-op run of a 2-service stack, %d runs each, seconds (median / min / max):\n' % options.runs)
    print('| what | median | min | max |')
    print('|---|---|---|---|')
    for row in rows:
        print('| %s | %s | %s | %s |' % row)


def _absent_args(workdir, project, name):
    path = os.path.join(workdir, 'absent.json')
    with open(path, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': {'project_src': project, 'project_name': name, 'state': 'absent',
                                           'remove_volumes': True}}, handle)
    return path


if __name__ == '__main__':
    main()
