# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Several registry nodes of one name: what each node shows the others of its settings, and where they disagree; and
where a registry host keeps the certificate it serves, which balancers and clients read there."""

from __future__ import annotations

import hashlib
import json

from ansible.module_utils.parsing.convert_bool import boolean


def node_digests(settings):
    """{name: SHA-256 of its value}: enough to compare nodes, and no value (secrets among them) leaves the node."""
    if not isinstance(settings, dict):
        raise TypeError('node_digests expects a mapping of settings, not %s' % type(settings).__name__)
    return {name: hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode('utf-8')).hexdigest()
            for name, value in settings.items()}


def _names(hosts):
    return ', '.join(sorted(hosts))


def cluster_problems(nodes):
    """Messages for the nodes of one registry name that cannot serve it together; [] when they can.

    nodes: [{host, domain, load_balanced, digests}] of the hosts in the play with that registry_domain.
    Messages name the settings and the hosts, never a value.
    """
    if len(nodes) < 2:
        return []
    domain = nodes[0]['domain']
    alone = [node['host'] for node in nodes if not node['load_balanced']]
    if alone:
        return ['Hosts %s share registry_domain %s, but %s not set registry_load_balanced: true. Several nodes of one '
                'registry share its storage (S3), its cache and its HTTP secret behind a load balancer: set '
                'registry_load_balanced: true on each of them, or give each host a registry_domain of its own.'
                % (_names(node['host'] for node in nodes), domain, _names(alone) + (' does' if len(alone) == 1 else ' do'))]
    problems = []
    for name in sorted(set().union(*(node['digests'] for node in nodes))):
        groups = {}
        for node in nodes:
            groups.setdefault(node['digests'].get(name), []).append(node['host'])
        if len(groups) > 1:
            sides = sorted(_names(hosts) for hosts in groups.values())
            problems.append('The nodes of %s disagree on %s (%s): every node must have the same value, since a client '
                            'may meet any of them. Set it once for all of them (group_vars of their group).'
                            % (domain, name, '; '.join('%s one value' % side if index == 0 else '%s another' % side
                                                       for index, side in enumerate(sides))))
    return problems


def served_certificate(host):
    """The file of the certificate a registry host's nginx serves (the certificates role's tls/fullchain.pem), from
    that host's variables."""
    base_dir = host.get('certificates_base_dir') or host.get('registry_base_dir') or '/opt/registry'
    return '%s/tls/fullchain.pem' % base_dir


def registry_nodes(hostvars, hosts, domain):
    """The nodes of registry `domain` among `hosts` (group registry), sorted by name.

    A node is a host with registry_load_balanced true and that registry_domain. Each is
    {name, address, port, certificate, drained}: where a balancer reaches its nginx (registry_node_address,
    else the inventory name; proxy_https_port, else 443), the file of the certificate it serves
    there (the certificates role's tls/fullchain.pem), and whether it is to get no new requests
    (registry_node_drained).
    """
    nodes = []
    for name in sorted(hosts):
        host = hostvars[name]
        if not boolean(host.get('registry_load_balanced', False), strict=False) or host.get('registry_domain') != domain:
            continue
        nodes.append({
            'name': name,
            'address': host.get('registry_node_address') or name,
            'port': int(host.get('proxy_https_port') or 443),
            'certificate': served_certificate(host),
            'drained': boolean(host.get('registry_node_drained', False), strict=False),
        })
    return nodes


class FilterModule:
    def filters(self):
        return {
            'node_digests': node_digests,
            'cluster_problems': cluster_problems,
            'registry_nodes': registry_nodes,
            'served_certificate': served_certificate,
        }
