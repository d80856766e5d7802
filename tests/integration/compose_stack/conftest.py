# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the compose_stack integration tests: a real Docker engine, no mocks.

The module runs on localhost as a task would (targets.run_module_directly), with the interpreter of
each Debian target (../targets.py, fixture target_python in ../conftest.py):
Debian 12's Docker SDK 5.0.3 on Python 3.11 and Debian 13's 7.1.0 on Python 3.13.
"""

from __future__ import annotations

import uuid

import docker
import pytest

from compose_stack_helpers import (  # pylint: disable=import-error
    IMAGE,
    PROJECT_PREFIX,
    LocalRegistry,
    Stack,
    build_busybox_image,
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
