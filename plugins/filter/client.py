# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the client role knows of the inventory's registry hosts, and what it accepts in client_registries."""

from __future__ import annotations

import re

from ansible_collections.selfhosted.registry.plugins.test.names import dns_name

# A registry as clients name it: a DNS name, with a port where it is not 443.
ENTRY_KEYS = ('name', 'ca', 'ca_from', 'docker_hub_mirror')
_PORT_RE = re.compile(r'\A(?P<host>[^:]+)(?::(?P<port>[0-9]{1,5}))?\Z')


def client_registries(host):
    """The registry and the Docker Hub mirror that one registry host serves, from its variables."""
    port = int(host.get('proxy_https_port', 443))
    suffix = '' if port == 443 else ':%d' % port
    # A self-signed certificate is the client's trust anchor: read from its host.
    ca_from = host['inventory_hostname'] if host.get('certificates_mode', 'letsencrypt') == 'selfsigned' else ''
    entries = [{'name': (host.get('registry_domain') or host['inventory_hostname']) + suffix, 'ca_from': ca_from}]
    if host.get('registry_mirror_domain'):
        entries.append({'name': host['registry_mirror_domain'] + suffix, 'ca_from': ca_from, 'docker_hub_mirror': True})
    return entries


def client_registries_problems(registries, hosts, label='client_registries'):
    """Messages for each entry of client_registries the role cannot use; [] when all are fine."""
    if not isinstance(registries, list):
        return ['%s must be a list of registries ({name, ca, ca_from, docker_hub_mirror}), not %s' % (label, type(registries).__name__)]
    problems = []
    names = []
    for number, entry in enumerate(registries, 1):
        where = '%s entry %d' % (label, number)
        if not isinstance(entry, dict):
            problems.append('%s must be a mapping with name (and ca, ca_from, docker_hub_mirror)' % where)
            continue
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            problems.append('%s has unknown keys %s; it may have %s' % (where, ', '.join(unknown), ', '.join(ENTRY_KEYS)))
        name = entry.get('name')
        match = _PORT_RE.match(name) if isinstance(name, str) else None
        if not match or not dns_name(match.group('host')) or (match.group('port') and not 0 < int(match.group('port')) < 65536):
            problems.append('%s: name must be the registry as image names start, a DNS name with a port where it is not 443, '
                            'e.g. registry.example.com or registry.example.com:5443; got %r' % (where, name))
            continue
        where = '%s (%s)' % (label, name)
        if name in names:
            problems.append('%s is listed twice' % where)
        names.append(name)
        ca = entry.get('ca') or ''
        if ca and (not isinstance(ca, str) or '-----BEGIN CERTIFICATE-----' not in ca):
            problems.append('%s: ca must be PEM text of the CA certificate (-----BEGIN CERTIFICATE-----)' % where)
        ca_from = entry.get('ca_from') or ''
        if ca_from and ca_from not in hosts:
            problems.append('%s: ca_from must be the inventory name of the registry host whose self-signed certificate '
                            'to trust; %r is not a host of the inventory' % (where, ca_from))
        if ca and ca_from:
            problems.append('%s: set ca or ca_from, not both' % where)
        if not isinstance(entry.get('docker_hub_mirror', False), bool):
            problems.append('%s: docker_hub_mirror must be true or false' % where)
    return problems


def client_logins_problems(logins, registries, label='client_logins'):
    """Messages for each entry of client_logins the role cannot use; [] when all are fine."""
    if not isinstance(logins, list):
        return ['%s must be a list of logins ({user, username, password, registry, state}), not %s' % (label, type(logins).__name__)]
    names = [entry['name'] for entry in registries if isinstance(entry, dict) and not entry.get('docker_hub_mirror')]
    problems = []
    seen = set()
    for number, login in enumerate(logins, 1):
        where = '%s entry %d' % (label, number)
        if not isinstance(login, dict):
            problems.append('%s must be a mapping {user, username, password, registry, state}' % where)
            continue
        unknown = sorted(set(login) - {'user', 'username', 'password', 'registry', 'state'})
        if unknown:
            problems.append('%s has unknown keys %s' % (where, ', '.join(unknown)))
        if not isinstance(login.get('user'), str) or not login.get('user'):
            problems.append('%s: user must be the OS user who runs docker on this host' % where)
            continue
        registry = login.get('registry') or (names[0] if names else None)
        where = '%s (%s at %s)' % (label, login['user'], registry)
        if registry not in names:
            problems.append('%s: registry must be one of the registries in client_registries that is not a Docker Hub mirror '
                            '(%s)' % (where, ', '.join(names) or 'there is none'))
        state = login.get('state', 'present')
        if state not in ('present', 'absent'):
            problems.append('%s: state must be present or absent' % where)
        elif state == 'present' and not all(isinstance(login.get(key), str) and login.get(key) for key in ('username', 'password')):
            problems.append('%s: username and password (vault it) are needed to log in' % where)
        if (login['user'], registry) in seen:
            problems.append('%s is listed twice' % where)
        seen.add((login['user'], registry))
    return problems


_PEM_RE = re.compile(r'-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----')


def client_trust(registries, read, default_ca=''):
    """[{name, pem}] of the registries with a CA to trust: their ca, the first certificate of the file read on
    their ca_from host (read: {host: file text}), or default_ca."""
    trusted = []
    for entry in registries:
        if entry.get('ca'):
            pem = entry['ca']
        elif entry.get('ca_from'):
            found = _PEM_RE.search(read.get(entry['ca_from'], ''))
            if not found:
                raise ValueError('no certificate in tls/fullchain.pem on %s (ca_from of %s)' % (entry['ca_from'], entry['name']))
            pem = found.group(0)
        else:
            pem = default_ca
        if pem:
            trusted.append({'name': entry['name'], 'pem': pem.strip() + '\n'})
    return trusted


def containerd_hosts(trusted, mirrors, certs_dir, docker_hub='docker.io', docker_hub_server='https://registry-1.docker.io'):
    """The hosts.toml files containerd needs, [{dir, server, hosts: [{url, capabilities, ca}]}]: one per registry
    with a CA to trust, and Docker Hub's when there are mirrors (tried in order before Docker Hub itself)."""
    cas = {entry['name']: '%s/%s/ca.crt' % (certs_dir, entry['name']) for entry in trusted}
    files = [
        {'dir': name, 'server': 'https://' + name,
         'hosts': [{'url': 'https://' + name, 'capabilities': ['pull', 'resolve', 'push'], 'ca': ca}]}
        for name, ca in cas.items()
    ]
    if mirrors:
        files.append({'dir': docker_hub, 'server': docker_hub_server,
                      'hosts': [{'url': 'https://' + name, 'capabilities': ['pull', 'resolve'], 'ca': cas.get(name)}
                                for name in mirrors]})
    return files


class FilterModule:
    def filters(self):
        return {
            'client_registries': client_registries,
            'client_registries_problems': client_registries_problems,
            'client_logins_problems': client_logins_problems,
            'client_trust': client_trust,
            'containerd_hosts': containerd_hosts,
        }
