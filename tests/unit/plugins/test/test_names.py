# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's tests for names and paths."""

from __future__ import annotations

import pytest

from ansible_collections.selfhosted.registry.plugins.test.names import TestModule

TESTS = TestModule().tests()


@pytest.mark.parametrize('test, value, expected', [
    ('dns_name', 'registry.example.com', True),
    ('ip_network', '10.0.0.0/8', True),
    ('ip_network', '192.0.2.7', True),
    ('ip_network', 'fc00::/7', True),
    ('ip_network', '::1/128', True),
    ('ip_network', '10.0.0.1/8', False),  # host bits set: a typo for 10.0.0.0/8 or 10.0.0.1/32
    ('ip_network', '10.0.0.0/33', False),
    ('ip_network', 'all', False),
    ('ip_network', '', False),
    ('ip_network', None, False),
    ('pinned_image', 'registry:3.1.1', True),
    ('pinned_image', 'joxit/docker-registry-ui:2.6.0', True),
    ('pinned_image', 'registry.example:5000/team/nginx:1.30.6', True),
    ('pinned_image', 'nginx@sha256:' + '0' * 64, True),
    ('pinned_image', 'nginx:latest@sha256:' + '0' * 64, True),
    ('pinned_image', 'nginx', False),
    ('pinned_image', 'nginx:latest', False),
    ('pinned_image', 'registry.example:5000/nginx', False),  # a port, no tag
    ('pinned_image', 'nginx: 1.30', False),
    ('pinned_image', '', False),
    ('pinned_image', None, False),
    ('dns_name', 'r-1.a.example', True),
    ('dns_name', 'registry', False),  # docker would read it as a Docker Hub name
    ('dns_name', 'Registry.example.com', False),
    ('dns_name', 'https://registry.example.com', False),
    ('dns_name', 'registry.example.com:443', False),
    ('dns_name', '192.168.1.10', False),
    ('dns_name', '-a.example.com', False),
    ('dns_name', 'a' * 64 + '.example.com', False),
    ('dns_name', None, False),
    ('host_path', '/opt/registry', True),
    ('host_path', '/', False),
    ('host_path', '/opt/registry/', False),
    ('host_path', 'opt/registry', False),
    ('host_path', '/opt/my registry', False),
    ('host_path', '/opt/a:b', False),
    ('host_path', ['/opt'], False),
    ('own_directory', '/opt/registry', True),
    ('own_directory', '/srv/registry-data', True),
    ('own_directory', '/var/lib/registry', True),
    ('own_directory', '/srv', False),
    ('own_directory', '/opt', False),
    ('own_directory', '/tmp', False),
    ('own_directory', '/', False),
    ('own_directory', '/opt/registry/', False),
    ('own_directory', 'srv/registry', False),
    ('own_directory', '/srv/my registry', False),
    ('own_directory', '/proc/registry', False),
    ('own_directory', '/sys/fs/registry', False),
    ('own_directory', '/dev/registry', False),
    ('own_directory', '/devices/registry', True),
    ('own_directory', None, False),
    ('compose_project_name', 'registry', True),
    ('compose_project_name', 'my_registry-2', True),
    ('compose_project_name', 'Registry', False),
    ('compose_project_name', '-registry', False),
    ('compose_service_name', 'proxy', True),
    ('compose_service_name', 'Proxy.1', True),
    ('compose_service_name', '.proxy', False),
    ('compose_service_name', 1, False),
    ('compose_service_key', 'read_only', True),
    ('compose_service_key', 'cap_add', True),
    ('compose_service_key', 'privileged', False),
    ('compose_service_key', 1, False),
])
def test_rule(test, value, expected):
    assert TESTS[test](value) is expected
