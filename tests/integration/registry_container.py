# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A registry container of the test platform's fixture images, for the integration tests.

The images are tests/platform's selfhosted-test/registry:<version>, built
by the platform stage (or `tests/platform/platform images`) before these
tests run; a missing image fails the test with that command.
"""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import time
import uuid

import pytest

from targets import REPO, run  # pylint: disable=import-error

DOCKER = '/usr/bin/docker' if os.path.exists('/usr/bin/docker') else shutil.which('docker')
PLATFORM = os.path.join(REPO, 'tests', 'platform', 'platform')
IMAGE_REPOSITORY = 'selfhosted-test/registry'
CONTAINER_PREFIX = 'registry-it-'
CONFIG_MOUNT = '/etc/registry-it'


def registry_config(auth, delete=False):
    """A registry configuration on filesystem storage (deletes on or off), port 5000, with `auth` (YAML lines, indented)."""
    return (
        'version: 0.1\n'
        'log:\n  level: warn\n'
        'storage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n'
        + ('  delete:\n    enabled: true\n' if delete else '')
        + 'http:\n  addr: :5000\n'
        'auth:\n' + auth
    )


def require_docker():
    if DOCKER is None or run([DOCKER, 'info'], check=False).returncode != 0:
        pytest.fail('these tests need a running Docker engine and its CLI (/usr/bin/docker)')


def registry_images():
    """The platform's registry images, oldest version first."""
    listed = run([DOCKER, 'image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', IMAGE_REPOSITORY]).stdout.split()
    tags = [image for image in listed if not image.endswith(':<none>')]
    return sorted(tags, key=lambda image: [int(p) if p.isdigit() else p for p in image.split(':')[1].split('.')])


def registry_image(version=None):
    """selfhosted-test/registry:<version>, or the newest there is; built by the platform when none is."""
    require_docker()
    if not registry_images():
        built = run([PLATFORM, 'images'], check=False, timeout=1500)
        if built.returncode != 0:
            pytest.fail('tests/platform/platform images failed:\n%s%s' % (built.stdout, built.stderr))
    images = registry_images()
    wanted = [image for image in images if version is None or image == '%s:%s' % (IMAGE_REPOSITORY, version)]
    if not wanted:
        pytest.fail('no image %s:%s: run tests/platform/platform images' % (IMAGE_REPOSITORY, version or '*'))
    return wanted[-1]


class Registry:
    """One registry container with `config` as its configuration and host directories mounted read-only."""

    def __init__(self, root, image, config, mounts):
        self.config_dir = os.path.join(root, 'registry-config')
        os.makedirs(self.config_dir)
        with open(os.path.join(self.config_dir, 'config.yml'), 'w') as handle:
            handle.write(config)
        self.mounts = mounts
        self.image = image
        self.name = CONTAINER_PREFIX + uuid.uuid4().hex[:10]
        self.port = None

    def start(self):
        volumes = []
        for source, target in sorted(self.mounts.items()) + [(self.config_dir, CONFIG_MOUNT)]:
            volumes += ['--volume', '%s:%s:ro' % (source, target)]
        run([DOCKER, 'run', '--detach', '--name', self.name, '--publish', '127.0.0.1::5000'] + volumes
            + [self.image, CONFIG_MOUNT + '/config.yml'])
        self.port = int(run([DOCKER, 'port', self.name, '5000/tcp']).stdout.split()[0].rsplit(':', 1)[1])
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.request('GET', '/v2/')[0] == 401:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                logs = run([DOCKER, 'logs', '--tail', '30', self.name], check=False)
                pytest.fail('registry %s did not answer 401 on /v2/ within 30 s:\n%s%s' % (self.name, logs.stdout, logs.stderr))
            time.sleep(0.3)

    def request(self, method, path, headers=None, body=None):
        """Status, headers (lowercase names) and body of one request."""
        connection = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            return response.status, {name.lower(): value for name, value in response.getheaders()}, data
        finally:
            connection.close()

    def status(self, user=None, password=None):
        """HTTP status of GET /v2/, with basic auth when a user is given."""
        headers = {}
        if user is not None:
            headers['Authorization'] = 'Basic ' + base64.b64encode(('%s:%s' % (user, password)).encode()).decode()
        return self.request('GET', '/v2/', headers)[0]

    def started(self):
        """Start time and PID: both change if the container restarts."""
        return run([DOCKER, 'inspect', '--format', '{{.State.StartedAt}} {{.State.Pid}} {{.RestartCount}}', self.name]).stdout.strip()

    def logs(self):
        result = run([DOCKER, 'logs', self.name], check=False)
        return result.stdout + result.stderr

    def remove(self):
        run([DOCKER, 'rm', '--force', self.name], check=False)
