# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The service keys that confine a container: forms, errors, and what they do to the spec and its hash."""

from __future__ import annotations

import os
import textwrap

import pytest

from ansible_collections.selfhosted.registry.plugins.module_utils import _compose_labels as compose_labels
from ansible_collections.selfhosted.registry.plugins.module_utils import _compose_load as compose_load
from ansible_collections.selfhosted.registry.plugins.module_utils import _compose_spec as compose_spec

WORKDIR = '/srv/stack'
IMAGE_ID = 'sha256:' + 'a' * 64


def project(body):
    """A project of one service `web`, image img:1, with `body` as the rest of its keys."""
    text = 'services:\n  web:\n    image: img:1\n%s' % textwrap.indent(textwrap.dedent(body), '    ')
    path = os.path.join(WORKDIR, 'compose.yaml')
    return compose_spec.build_project([(path, compose_load.load_yaml(text, path))], WORKDIR, 'stack')


def spec(body):
    return compose_labels.resolve_service(project(body), 'web')


@pytest.mark.parametrize('body, key, expected', [
    ('cap_drop: [all]', 'cap_drop', ['ALL']),
    ('cap_add: [CAP_SETUID, setgid, SETUID, " NET_BIND_SERVICE "]', 'cap_add', ['NET_BIND_SERVICE', 'SETGID', 'SETUID']),
    ('security_opt: ["no-new-privileges:true", "apparmor=docker-default"]', 'security_opt',
     ['no-new-privileges:true', 'apparmor=docker-default']),
    ('pids_limit: 256', 'pids_limit', 256),
    ('pids_limit: -1', 'pids_limit', -1),
    ('mem_limit: 536870912', 'mem_limit', 512 << 20),
    ('mem_limit: 512m', 'mem_limit', 512 << 20),
    ('mem_limit: 512MB', 'mem_limit', 512 << 20),
    ('mem_limit: 1g', 'mem_limit', 1 << 30),
    ('mem_limit: 6144k', 'mem_limit', 6 << 20),
    ('ulimits: {nofile: 16384}', 'ulimits', {'nofile': {'soft': 16384, 'hard': 16384}}),
    ('ulimits: {nproc: {soft: 10, hard: 20}, core: 0}', 'ulimits',
     {'core': {'soft': 0, 'hard': 0}, 'nproc': {'soft': 10, 'hard': 20}}),
])
def test_forms(body, key, expected):
    assert spec(body)[key] == expected


@pytest.mark.parametrize('body, fragment', [
    ('cap_add: NET_ADMIN', 'cap_add must be a list of capability names'),
    ('cap_drop: [NET_ADMINS]', "cap_drop: 'NET_ADMINS' is not a Linux capability"),
    ('security_opt: no-new-privileges', 'security_opt must be a list of options'),
    ('security_opt: [""]', 'security_opt must be a list of options'),
    ('pids_limit: 0', 'pids_limit must be a positive number of processes, or -1 for no limit, not 0'),
    ('pids_limit: "100"', "pids_limit must be a positive number of processes, or -1 for no limit, not '100'"),
    ('pids_limit: true', 'pids_limit must be a positive number'),
    ('mem_limit: 1t', "mem_limit must be a number of bytes or a byte value such as 512m or 1g, not '1t'"),
    ('mem_limit: 4m', "mem_limit must be at least 6m (the engine refuses less), not '4m'"),
    ('mem_limit: 1.5g', 'mem_limit must be a number of bytes'),
    ('ulimits: [nofile=1024]', 'ulimits must be a mapping'),
    ('ulimits: {files: 10}', "ulimits: unknown limit 'files'"),
    ('ulimits: {nofile: {soft: 10}}', 'ulimits.nofile must have both soft and hard'),
    ('ulimits: {nofile: {soft: 20, hard: 10}}', 'ulimits.nofile: soft (20) must be from 0 to hard (10)'),
    ('ulimits: {nofile: lots}', "ulimits.nofile must be a whole number or {soft, hard}, not 'lots'"),
])
def test_errors_name_the_file_service_and_key(body, fragment):
    with pytest.raises(compose_load.ComposeError) as info:
        project(body)
    message = str(info.value)
    assert fragment in message
    assert message.startswith("%s: service 'web': " % os.path.join(WORKDIR, 'compose.yaml'))


def test_unset_keys_stay_out_of_the_spec_and_its_hash():
    # A service that sets none has the spec (and hash) it had before these keys existed.
    plain = spec('')
    assert not set(plain) & {'cap_add', 'cap_drop', 'security_opt', 'pids_limit', 'mem_limit', 'ulimits'}
    assert plain == spec('x-note: confinement keys unset\n')


@pytest.mark.parametrize('old, new', [
    ('cap_drop: [ALL]', 'cap_drop: [NET_RAW]'),
    ('cap_add: [SETUID]', 'cap_add: [SETUID, SETGID]'),
    ('security_opt: ["no-new-privileges:true"]', 'security_opt: []'),
    ('pids_limit: 256', 'pids_limit: 257'),
    ('mem_limit: 512m', 'mem_limit: 1g'),
    ('ulimits: {nofile: 1024}', 'ulimits: {nofile: {soft: 1024, hard: 2048}}'),
])
def test_a_change_of_one_key_changes_the_hash(old, new):
    base = 'cap_drop: [ALL]\ncap_add: [SETUID]\nsecurity_opt: ["no-new-privileges:true"]\npids_limit: 256\n' \
           'mem_limit: 512m\nulimits: {nofile: 1024}\n'
    assert old in base
    before = compose_labels.config_hash(spec(base), IMAGE_ID)
    assert compose_labels.config_hash(spec(base.replace(old, new)), IMAGE_ID) != before


def test_equivalent_forms_hash_the_same():
    one = spec('cap_add: [CAP_SETUID, SETGID]\nmem_limit: 512m\nulimits: {nofile: 1024}\n')
    two = spec('cap_add: [setgid, SETUID]\nmem_limit: 536870912\nulimits: {nofile: {soft: 1024, hard: 1024}}\n')
    assert compose_labels.config_hash(one, IMAGE_ID) == compose_labels.config_hash(two, IMAGE_ID)
