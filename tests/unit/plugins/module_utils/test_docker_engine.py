# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The translation of a resolved service into Docker API options, and of `docker inspect` into a record, without an engine."""

from __future__ import annotations

import textwrap

import pytest

from ansible_collections.selfhosted.registry.plugins.module_utils import _compose_labels as compose_labels
from ansible_collections.selfhosted.registry.plugins.module_utils import _compose_load as compose_load
from ansible_collections.selfhosted.registry.plugins.module_utils import _compose_spec as compose_spec
from ansible_collections.selfhosted.registry.plugins.module_utils._docker_engine import container_options, container_record

COMPOSE = '''
services:
  web:
    image: web:1
    command: [serve, --port, "8080"]
    environment:
      B: two
      A: one
    user: "1000:1000"
    read_only: true
    tmpfs: [/tmp, "/run:size=1m"]
    volumes: [./conf:/conf:ro, data:/data]
    ports: ["127.0.0.1:8080:8080", "8443:8443/udp"]
    networks:
      front: {}
      back:
        aliases: [api]
    restart: on-failure:3
    healthcheck:
      test: [CMD, wget, -q, http://127.0.0.1:8080/]
      interval: 5s
      retries: 3
    stop_signal: SIGQUIT
    stop_grace_period: 1m30s
networks:
  front: {}
  back: {}
volumes:
  data: {}
'''


def spec():
    files = [('/srv/stack/compose.yaml', compose_load.load_yaml(textwrap.dedent(COMPOSE), 'compose.yaml'))]
    project = compose_spec.build_project(files, '/srv/stack', 'stack')
    return compose_labels.resolve_service(project, 'web')


def test_container_options():
    options = container_options(spec(), extra_binds=['anon:/cache'])
    assert options['create'] == {
        'image': 'web:1',
        'command': ['serve', '--port', '8080'],
        'entrypoint': None,
        'environment': ['A=one', 'B=two'],
        'user': '1000:1000',
        'ports': [(8080, 'tcp'), (8443, 'udp')],
        'healthcheck': {'test': ['CMD', 'wget', '-q', 'http://127.0.0.1:8080/'], 'interval': 5 * 10 ** 9, 'retries': 3},
        'stop_signal': 'SIGQUIT',
        'stop_timeout': 90,
    }
    assert options['host_config'] == {
        'binds': ['/srv/stack/conf:/conf:ro', 'stack_data:/data:rw', 'anon:/cache'],
        'port_bindings': {'8080/tcp': [('127.0.0.1', '8080')], '8443/udp': [('', '8443')]},
        'restart_policy': {'Name': 'on-failure', 'MaximumRetryCount': 3},
        'read_only': True,
        'tmpfs': {'/tmp': '', '/run': 'size=1m'},
        'network_mode': 'stack_back',
    }
    # Created on the first network, connected to the others after.
    assert options['networks'] == [('stack_back', ['api', 'stack-web-1', 'web']),
                                   ('stack_front', ['stack-web-1', 'web'])]


CONFINED = '''
services:
  web:
    image: web:1
    cap_drop: [ALL]
    cap_add: [cap_setuid, SETGID, SETUID]
    security_opt: ["no-new-privileges:true"]
    pids_limit: 256
    mem_limit: 512m
    ulimits:
      nproc: 512
      nofile: {soft: 1024, hard: 4096}
'''


def test_confinement_keys_become_host_config_options():
    files = [('/srv/s/compose.yaml', compose_load.load_yaml(textwrap.dedent(CONFINED), 'compose.yaml'))]
    confined = compose_labels.resolve_service(compose_spec.build_project(files, '/srv/s', 's'), 'web')
    host_config = container_options(confined)['host_config']
    assert {key: host_config[key] for key in ('cap_add', 'cap_drop', 'security_opt', 'pids_limit', 'mem_limit')} == {
        'cap_add': ['SETGID', 'SETUID'],
        'cap_drop': ['ALL'],
        'security_opt': ['no-new-privileges:true'],
        'pids_limit': 256,
        'mem_limit': 512 << 20,
    }
    assert host_config['ulimits'] == [{'Name': 'nofile', 'Soft': 1024, 'Hard': 4096},
                                      {'Name': 'nproc', 'Soft': 512, 'Hard': 512}]


def test_defaults_leave_the_engine_its_own():
    files = [('/srv/s/compose.yaml', compose_load.load_yaml('services:\n  web:\n    image: web:1\n', 'compose.yaml'))]
    plain = compose_spec.build_project(files, '/srv/s', 's')
    options = container_options(compose_labels.resolve_service(plain, 'web'))
    assert options['host_config']['binds'] is None and options['host_config']['read_only'] is None
    assert options['host_config']['restart_policy'] == {'Name': 'no', 'MaximumRetryCount': 0}
    assert not {'cap_add', 'cap_drop', 'security_opt', 'pids_limit', 'mem_limit', 'ulimits'} & set(options['host_config'])
    assert options['create']['healthcheck'] is None and options['create']['stop_timeout'] is None
    assert options['networks'] == [('s_default', ['s-web-1', 'web'])]


# The stop timeout a container was created with (stop_grace_period, set by
# compose_stack or by compose) is the one it is stopped with; else Docker's 10 s.
@pytest.mark.parametrize('config, expected', [
    ({'StopTimeout': 70}, 70), ({'StopTimeout': 0}, 0), ({}, 10),
])
def test_container_record_stop_timeout(config, expected):
    info = {'Id': 'f' * 64, 'Name': '/stack-web-1', 'Config': dict(config, Labels={}), 'State': {'Running': True}}
    assert container_record(info)['stop_timeout'] == expected
