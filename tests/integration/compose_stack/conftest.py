# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the compose_stack integration tests: a real Docker engine, no mocks.

The module runs through ansible-playbook on localhost, with the interpreter of
each target virtualenv (see compose_stack_helpers.py): Debian 12's Docker SDK
5.0.3 on Python 3.11 and Debian 13's 7.1.0 on Python 3.13. COMPOSE_STACK_TARGETS
overrides them: "name=/path/to/python,name2=/path/to/python".
"""

from __future__ import annotations

import os
import uuid

import pytest

docker = pytest.importorskip('docker')

from compose_stack_helpers import (  # noqa: E402 pylint: disable=import-error,wrong-import-position
    IMAGE,
    PROJECT_PREFIX,
    REPO,
    TARGETS,
    LocalRegistry,
    Stack,
    build_busybox_image,
    target_venv,
)


@pytest.fixture(scope='session')
def engine():
    try:
        client = docker.APIClient(version='auto')
        client.ping()
    except Exception as exc:  # pylint: disable=broad-exception-caught
        pytest.fail('the compose_stack integration tests need a running Docker engine at the default socket: %s' % exc)
    return client


@pytest.fixture(scope='session')
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('compose-stack'))


@pytest.fixture(scope='session')
def image(engine, workdir):  # pylint: disable=redefined-outer-name
    try:
        engine.inspect_image(IMAGE)
    except docker.errors.ImageNotFound:
        build_busybox_image(IMAGE, workdir)
    return IMAGE


@pytest.fixture(scope='session')
def collections_path(workdir):  # pylint: disable=redefined-outer-name
    base = os.path.join(workdir, 'collections')
    os.makedirs(os.path.join(base, 'ansible_collections', 'selfhosted'))
    os.symlink(REPO, os.path.join(base, 'ansible_collections', 'selfhosted', 'registry'))
    return base


def _targets():
    override = os.environ.get('COMPOSE_STACK_TARGETS')
    if override:
        return [item.split('=', 1)[0] for item in override.split(',') if item]
    return sorted(TARGETS)


@pytest.fixture(scope='session', params=_targets())
def target_python(request):
    override = os.environ.get('COMPOSE_STACK_TARGETS')
    if override:
        return dict(item.split('=', 1) for item in override.split(',') if item)[request.param]
    return target_venv(request.param)


@pytest.fixture
def stack(tmp_path, target_python, collections_path, engine, image):  # pylint: disable=redefined-outer-name,unused-argument
    created = Stack(str(tmp_path), '%s-%s' % (PROJECT_PREFIX, uuid.uuid4().hex[:8]), target_python,
                    collections_path, engine)
    yield created
    created.cleanup()


@pytest.fixture(scope='session')
def local_registry(workdir):  # pylint: disable=redefined-outer-name
    registry = LocalRegistry(workdir)
    yield registry.address
    registry.stop()
