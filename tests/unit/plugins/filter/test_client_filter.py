# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The client role's registries: from the inventory, their checks, the CAs to trust, containerd's files."""

from __future__ import annotations

import pytest

from ansible_collections.selfhosted.registry.plugins.filter.client import (
    client_logins_problems, client_registries, client_registries_problems, client_trust, containerd_hosts,
)

PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----'


def test_a_registry_host_with_a_mirror_and_a_self_signed_certificate():
    host = {'inventory_hostname': 'r1', 'registry_domain': 'registry.example.com', 'registry_mirror_domain': 'mirror.example.com',
            'certificates_mode': 'selfsigned'}
    assert client_registries(host) == [
        {'name': 'registry.example.com', 'ca_from': 'r1'},
        {'name': 'mirror.example.com', 'ca_from': 'r1', 'docker_hub_mirror': True},
    ]


def test_a_registry_host_on_another_port_with_a_public_certificate():
    host = {'inventory_hostname': 'r1', 'registry_domain': 'registry.example.com', 'proxy_https_port': 5443}
    assert client_registries(host) == [{'name': 'registry.example.com:5443', 'ca_from': ''}]


def test_good_registries_have_no_problems():
    registries = [{'name': 'registry.example.com', 'ca': PEM}, {'name': 'mirror.example.com:5443', 'ca_from': 'r1', 'docker_hub_mirror': True}]
    assert client_registries_problems(registries, ['r1']) == []


@pytest.mark.parametrize('registries, message', [
    ('registry.example.com', 'must be a list'),
    (['registry.example.com'], 'must be a mapping'),
    ([{'name': 'registry'}], 'name must be the registry'),
    ([{'name': 'registry.example.com:99999'}], 'name must be the registry'),
    ([{'name': 'https://registry.example.com'}], 'name must be the registry'),
    ([{'name': 'r.example.com', 'cert': PEM}], 'unknown keys cert'),
    ([{'name': 'r.example.com', 'ca': 'not pem'}], 'ca must be PEM'),
    ([{'name': 'r.example.com', 'ca_from': 'nowhere'}], 'not a host of the inventory'),
    ([{'name': 'r.example.com', 'ca': PEM, 'ca_from': 'r1'}], 'not both'),
    ([{'name': 'r.example.com', 'docker_hub_mirror': 'yes'}], 'true or false'),
    ([{'name': 'r.example.com'}, {'name': 'r.example.com'}], 'listed twice'),
])
def test_bad_registries_are_named(registries, message):
    problems = client_registries_problems(registries, ['r1'])
    assert any(message in problem for problem in problems), problems


REGISTRIES = [{'name': 'registry.example.com'}, {'name': 'mirror.example.com', 'docker_hub_mirror': True}]


def test_good_logins_have_no_problems():
    logins = [{'user': 'deploy', 'username': 'ci', 'password': 'pw'},
              {'user': 'other', 'registry': 'registry.example.com', 'state': 'absent'}]
    assert client_logins_problems(logins, REGISTRIES) == []


@pytest.mark.parametrize('logins, message', [
    ({}, 'must be a list'),
    ([{'username': 'ci', 'password': 'pw'}], 'user must be the OS user'),
    ([{'user': 'deploy', 'username': 'ci'}], 'username and password'),
    ([{'user': 'deploy', 'username': 'ci', 'password': 'pw', 'registry': 'mirror.example.com'}], 'not a Docker Hub mirror'),
    ([{'user': 'deploy', 'username': 'ci', 'password': 'pw', 'state': 'gone'}], 'present or absent'),
    ([{'user': 'deploy', 'username': 'ci', 'password': 'pw', 'passwd': 'x'}], 'unknown keys passwd'),
    ([{'user': 'deploy', 'username': 'a', 'password': 'p'}, {'user': 'deploy', 'username': 'b', 'password': 'q'}], 'listed twice'),
])
def test_bad_logins_are_named_without_their_password(logins, message):
    problems = client_logins_problems(logins, REGISTRIES)
    assert any(message in problem for problem in problems), problems
    assert not any('pw' in problem.split(':')[0] for problem in problems)


def test_the_ca_of_each_registry_comes_from_its_entry_its_host_or_the_default():
    registries = [{'name': 'a.example.com', 'ca': PEM}, {'name': 'b.example.com', 'ca_from': 'r1'}, {'name': 'c.example.com'}]
    read = {'r1': 'junk\n' + PEM.replace('MIIB', 'MIIC') + '\n' + PEM}
    assert client_trust(registries, read, PEM.replace('MIIB', 'MIID')) == [
        {'name': 'a.example.com', 'pem': PEM + '\n'},
        {'name': 'b.example.com', 'pem': PEM.replace('MIIB', 'MIIC') + '\n'},  # the server certificate: the first
        {'name': 'c.example.com', 'pem': PEM.replace('MIIB', 'MIID') + '\n'},
    ]
    assert client_trust([{'name': 'c.example.com'}], {}, '') == []


def test_a_host_without_a_certificate_is_an_error():
    with pytest.raises(ValueError, match='no certificate'):
        client_trust([{'name': 'b.example.com', 'ca_from': 'r1'}], {'r1': ''})


def test_containerd_gets_each_registry_and_docker_hub_through_the_mirrors():
    trusted = [{'name': 'registry.example.com', 'pem': PEM}, {'name': 'mirror.example.com', 'pem': PEM}]
    files = containerd_hosts(trusted, ['mirror.example.com'], '/etc/containerd/certs.d')
    assert files[0] == {'dir': 'registry.example.com', 'server': 'https://registry.example.com', 'hosts': [
        {'url': 'https://registry.example.com', 'capabilities': ['pull', 'resolve', 'push'],
         'ca': '/etc/containerd/certs.d/registry.example.com/ca.crt'}]}
    assert files[-1] == {'dir': 'docker.io', 'server': 'https://registry-1.docker.io', 'hosts': [
        {'url': 'https://mirror.example.com', 'capabilities': ['pull', 'resolve'], 'ca': '/etc/containerd/certs.d/mirror.example.com/ca.crt'}]}
    assert [f['dir'] for f in containerd_hosts([], [], '/x')] == []
