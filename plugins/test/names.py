# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Names and paths the roles accept: one definition of each rule."""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.selfhosted.registry.plugins.module_utils._compose_spec import PROJECT_NAME_RE, SERVICE_KEYS, SERVICE_NAME_RE

# A public DNS name in lowercase: labels of letters, digits and '-', at least
# two labels, the last one starting with a letter (so never an IP address).
DNS_NAME_RE = re.compile(r'^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$')
# A host directory that becomes a bind mount: absolute, no trailing slash,
# no white space or ':' (the separator of compose's short volume syntax).
HOST_PATH_RE = re.compile(r'^/[^\s:]*[^/\s:]$')
# A host directory that a role creates and sets the owner and mode of: a
# host_path below a top-level directory (/srv/registry-data, never /srv,
# /opt or /tmp, whose owner and mode the system relies on), outside the
# kernel's file systems (/proc, /sys, /dev), which hold no files.
OWN_DIRECTORY_RE = re.compile(r'^/(?!(proc|sys|dev)/)[^/\s:]+/[^\s:]*[^/\s:]$')
# The tag of an image reference: after the last ':' that no '/' follows
# (registry.example:5000/app has none), before any @digest.
IMAGE_TAG_RE = re.compile(r':([^:/@]+)(@|$)')


def _matches(pattern, value):
    return isinstance(value, str) and pattern.match(value) is not None


def dns_name(value):
    return _matches(DNS_NAME_RE, value)


def host_path(value):
    return _matches(HOST_PATH_RE, value)


def own_directory(value):
    return _matches(OWN_DIRECTORY_RE, value)


def compose_project_name(value):
    return _matches(PROJECT_NAME_RE, value)


def compose_service_name(value):
    return _matches(SERVICE_NAME_RE, value)


def compose_service_key(value):
    return isinstance(value, str) and value in SERVICE_KEYS


def ip_network(value):
    """An IPv4 or IPv6 network in CIDR form, or one address, as nginx's allow takes it (no host bits set)."""
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return True


def pinned_image(value):
    """An image reference that names one release: a tag other than `latest`, or a digest.

    An image that changes under the same name changes a container without a change in Ansible."""
    if not isinstance(value, str) or not value or re.search(r'\s', value):
        return False
    if '@sha256:' in value:
        return True
    tag = IMAGE_TAG_RE.search(value)
    return tag is not None and tag.group(1) != 'latest'


class TestModule:
    def tests(self):
        return {
            'dns_name': dns_name,
            'host_path': host_path,
            'own_directory': own_directory,
            'compose_project_name': compose_project_name,
            'compose_service_name': compose_service_name,
            'compose_service_key': compose_service_key,
            'ip_network': ip_network,
            'pinned_image': pinned_image,
        }
