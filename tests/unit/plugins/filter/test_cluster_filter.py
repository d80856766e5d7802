# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Several nodes of one registry: the digests each shows the others and the problems found between them."""

from __future__ import annotations

import pytest

from ansible_collections.selfhosted.registry.plugins.filter.cluster import cluster_problems, node_digests, registry_nodes, served_certificate

SETTINGS = {'registry_http_secret': 'a' * 64, 'registry_image': 'registry:3.1.1',
            'registry_users': [{'name': 'alice', 'password': 'alice-secret'}]}


def node(host, load_balanced=True, **changed):
    return {'host': host, 'domain': 'registry.example.com', 'load_balanced': load_balanced,
            'digests': node_digests(dict(SETTINGS, **changed))}


def test_digests_are_stable_and_show_no_value():
    digests = node_digests(SETTINGS)
    assert digests == node_digests(dict(reversed(list(SETTINGS.items()))))
    assert sorted(digests) == sorted(SETTINGS)
    assert all(len(digest) == 64 and 'alice' not in digest and 'aaaa' not in digest for digest in digests.values())
    assert node_digests({'a': {'x': 1, 'y': 2}}) == node_digests({'a': {'y': 2, 'x': 1}})
    assert node_digests({'a': 1}) != node_digests({'a': '1'})


def test_digests_want_a_mapping():
    with pytest.raises(TypeError, match='mapping'):
        node_digests(['registry_image'])


def test_one_node_or_nodes_that_agree_have_no_problem():
    assert cluster_problems([node('n1', load_balanced=False)]) == []
    assert cluster_problems([]) == []
    assert cluster_problems([node('n1'), node('n2'), node('n3')]) == []


def test_hosts_of_one_name_must_all_be_load_balanced():
    problems = cluster_problems([node('n1'), node('n2', load_balanced=False)])
    assert len(problems) == 1
    assert 'Hosts n1, n2 share registry_domain registry.example.com, but n2 does not set registry_load_balanced: true' in problems[0]
    problems = cluster_problems([node('n1', False), node('n2', False)])
    assert 'but n1, n2 do not set' in problems[0]


def test_each_setting_that_differs_is_named_with_the_hosts_and_no_value():
    problems = cluster_problems([
        node('n1'), node('n2', registry_http_secret='b' * 64), node('n3', registry_http_secret='b' * 64, registry_image='registry:3.0.0'),
    ])
    assert problems == [
        'The nodes of registry.example.com disagree on registry_http_secret (n1 one value; n2, n3 another): every node '
        'must have the same value, since a client may meet any of them. Set it once for all of them (group_vars of '
        'their group).',
        'The nodes of registry.example.com disagree on registry_image (n1, n2 one value; n3 another): every node must '
        'have the same value, since a client may meet any of them. Set it once for all of them (group_vars of their group).',
    ]
    assert not any('bbbb' in problem or 'alice' in problem for problem in problems)


def test_a_setting_only_one_node_shows_counts_as_a_difference():
    first, second = node('n1'), node('n2')
    del second['digests']['registry_image']
    assert 'disagree on registry_image' in cluster_problems([first, second])[0]


def test_registry_nodes_are_the_balanced_hosts_of_the_name():
    hostvars = {
        'b': {'registry_load_balanced': 'true', 'registry_domain': 'registry.example.com', 'registry_node_drained': 'yes',
              'registry_node_address': '10.0.0.2', 'proxy_https_port': '8443', 'registry_base_dir': '/srv/registry'},
        'a': {'registry_load_balanced': True, 'registry_domain': 'registry.example.com'},
        'alone': {'registry_domain': 'registry.example.com'},
        'other': {'registry_load_balanced': True, 'registry_domain': 'other.example.com'},
        'off': {'registry_load_balanced': 'no', 'registry_domain': 'registry.example.com'},
    }
    assert registry_nodes(hostvars, list(hostvars), 'registry.example.com') == [
        {'name': 'a', 'address': 'a', 'port': 443, 'certificate': '/opt/registry/tls/fullchain.pem', 'drained': False},
        {'name': 'b', 'address': '10.0.0.2', 'port': 8443, 'certificate': '/srv/registry/tls/fullchain.pem', 'drained': True},
    ]
    assert registry_nodes(hostvars, [], 'registry.example.com') == []


@pytest.mark.parametrize('host, path', [
    ({}, '/opt/registry/tls/fullchain.pem'),
    ({'registry_base_dir': '/srv/registry'}, '/srv/registry/tls/fullchain.pem'),
    # The certificates role's own directory wins; an empty one is no directory.
    ({'registry_base_dir': '/srv/registry', 'certificates_base_dir': '/srv/tls-owner'}, '/srv/tls-owner/tls/fullchain.pem'),
    ({'registry_base_dir': '/srv/registry', 'certificates_base_dir': ''}, '/srv/registry/tls/fullchain.pem'),
])
def test_the_served_certificate_is_where_the_certificates_role_writes_it(host, path):
    assert served_certificate(host) == path
