# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers shared by the compose_stack integration tests (conftest.py) and
benchmarks/compose_stack_bench.py: the busybox test image, a local registry,
and a compose project the module runs on with a target's Python
(../targets.py).

The test image is a 2 MB busybox image built locally from Debian's
busybox-static (nothing is pulled from a registry).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

import docker

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from targets import run, run_module_directly  # noqa: E402 pylint: disable=import-error,wrong-import-position

DOCKER_CLI = '/usr/bin/docker' if os.path.exists('/usr/bin/docker') else shutil.which('docker')
IMAGE_REPO = 'selfhosted-test/compose-stack-busybox'
IMAGE = IMAGE_REPO + ':1'
LABEL_PROJECT = 'com.docker.compose.project'
PROJECT_PREFIX = 'cstest'

# --------------------------------------------------------------------------
# helpers


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _debian_file(package, path, workdir, use_installed=True):
    """A file of a Debian package: installed, or extracted from `apt-get download`."""
    if use_installed and os.path.exists(path):
        return path
    result = run(['apt-get', 'download', package], cwd=workdir, check=False)
    if result.returncode != 0:
        run(['apt-get', 'update', '-q'], check=False)
        result = run(['apt-get', 'download', package], cwd=workdir, check=False)
    if result.returncode != 0:
        raise RuntimeError('cannot get Debian package %s (apt-get install %s): %s' % (package, package, result.stderr))
    debs = [f for f in os.listdir(workdir) if f.startswith(package + '_') and f.endswith('.deb')]
    extract = os.path.join(workdir, package)
    run(['dpkg-deb', '-x', os.path.join(workdir, debs[0]), extract])
    return os.path.join(extract, path.lstrip('/'))


def _static_busybox(workdir):
    path = '/bin/busybox'
    if os.path.exists(path):
        ldd = run(['ldd', path], check=False)
        if 'not a dynamic executable' in ldd.stdout + ldd.stderr:
            return path
    return _debian_file('busybox-static', '/bin/busybox', workdir, use_installed=False)


def build_busybox_image(tag, workdir, extra_files=None):
    """`docker import` a rootfs of static busybox plus extra_files ({path: text})."""
    busybox = _static_busybox(workdir)
    applets = run([busybox, '--list']).stdout.split()
    tarball = os.path.join(workdir, 'rootfs-%s.tar' % uuid.uuid4().hex[:8])
    root = tempfile.mkdtemp(dir=workdir)
    files = {
        'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n',
        'etc/group': 'root:x:0:\nnogroup:x:65534:\n',
    }
    files.update(extra_files or {})
    for relative, text in files.items():
        full = os.path.join(root, relative)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, 'w') as handle:
            handle.write(text)
    os.makedirs(os.path.join(root, 'bin'))
    shutil.copy(busybox, os.path.join(root, 'bin', 'busybox'))
    for applet in applets:
        if applet != 'busybox':
            os.symlink('busybox', os.path.join(root, 'bin', applet))
    for directory in ('tmp', 'data', 'root'):
        os.makedirs(os.path.join(root, directory), exist_ok=True)
    os.chmod(os.path.join(root, 'tmp'), 0o1777)
    with tarfile.open(tarball, 'w') as tar:
        for entry in sorted(os.listdir(root)):
            tar.add(os.path.join(root, entry), arcname=entry)
    run([DOCKER_CLI, 'import', '-c', 'ENV PATH=/bin', '-c', 'CMD ["/bin/sh"]', tarball, tag])
    return tag


class Stack(object):
    """A compose project directory plus a way to run the module on it."""

    def __init__(self, root, name, python, collections, client):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.name = name
        self.python = python
        self.collections = collections
        self.client = client
        self.runs = 0

    def write(self, text, filename='compose.yaml'):
        with open(os.path.join(self.dir, filename), 'w') as handle:
            handle.write(text)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def run(self, check=False, diff=True, **args):
        """Run the module once, as a task would; return its result."""
        self.runs += 1
        args.setdefault('project_src', self.dir)
        args.setdefault('project_name', self.name)
        return run_module_directly('selfhosted.registry.compose_stack', args, self.python, self.collections,
                                   check=check, diff=diff)

    def containers(self):
        """service -> docker inspect of the project's containers."""
        result = {}
        for summary in self.client.containers(all=True, filters={'label': '%s=%s' % (LABEL_PROJECT, self.name)}):
            info = self.client.inspect_container(summary['Id'])
            result[info['Config']['Labels']['com.docker.compose.service']] = info
        return result

    def ids(self):
        return dict((s, info['Id']) for s, info in self.containers().items())

    def networks(self):
        return sorted(n['Name'] for n in self.client.networks(filters={'label': '%s=%s' % (LABEL_PROJECT, self.name)}))

    def volumes(self):
        found = self.client.volumes(filters={'label': '%s=%s' % (LABEL_PROJECT, self.name)}).get('Volumes') or []
        return sorted(v['Name'] for v in found)

    def exec_(self, service, *cmd):
        info = self.containers()[service]
        return run([DOCKER_CLI, 'exec', info['Id']] + list(cmd), check=False)

    def cleanup(self):
        """Remove only what carries this project's label (other work shares the engine)."""
        selector = {'label': '%s=%s' % (LABEL_PROJECT, self.name)}
        for summary in self.client.containers(all=True, filters=selector):
            self.client.remove_container(summary['Id'], force=True)
        for summary in self.client.containers(all=True, filters={'name': self.name + '-'}):
            self.client.remove_container(summary['Id'], force=True)
        for network in self.client.networks(filters=selector):
            self._remove_network(network['Id'])
        for volume in self.client.volumes(filters=selector).get('Volumes') or []:
            self.client.remove_volume(volume['Name'], force=True)

    def _remove_network(self, network_id, attempts=10):
        """Remove a network, and whatever is still attached to it.

        The engine may still list the endpoint of a container it has just
        removed (seen after a failed start-first replacement): such an
        endpoint goes with a forced disconnect (`docker network disconnect
        -f`); try again.
        """
        for attempt in range(attempts):
            for container_id in self.client.inspect_network(network_id).get('Containers') or {}:
                try:
                    self.client.remove_container(container_id, force=True)
                except docker.errors.NotFound:
                    try:
                        self.client.disconnect_container_from_network(container_id, network_id, force=True)
                    except docker.errors.APIError:
                        pass
            try:
                self.client.remove_network(network_id)
                return
            except docker.errors.APIError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)


class LocalRegistry(object):
    """A CNCF registry (Debian's docker-registry binary) on 127.0.0.1, plain HTTP, for pull tests."""

    def __init__(self, workdir):
        binary = _debian_file('docker-registry', '/usr/bin/docker-registry', workdir)
        port = free_port()
        config = os.path.join(workdir, 'registry.yml')
        with open(config, 'w') as handle:
            handle.write('version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n'
                         'http:\n  addr: 127.0.0.1:%d\n' % (os.path.join(workdir, 'registry-storage'), port))
        log_path = os.path.join(workdir, 'registry.log')
        with open(log_path, 'w') as log:
            self.process = subprocess.Popen([binary, 'serve', config], stdout=log,  # pylint: disable=consider-using-with
                                            stderr=subprocess.STDOUT)
        self.address = '127.0.0.1:%d' % port
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(('127.0.0.1', port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError('the local registry did not start; see %s' % log_path)
                time.sleep(0.2)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
