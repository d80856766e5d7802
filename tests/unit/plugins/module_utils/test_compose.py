# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for the pure compose logic of selfhosted.registry.compose_stack (no Docker needed)."""

from __future__ import annotations

import copy
import os
import textwrap

import pytest

from ansible_collections.selfhosted.registry.plugins.module_utils import _compose_labels as compose_labels
from ansible_collections.selfhosted.registry.plugins.module_utils import _compose_load as compose_load
from ansible_collections.selfhosted.registry.plugins.module_utils import _compose_plan as compose_plan
from ansible_collections.selfhosted.registry.plugins.module_utils import _compose_spec as compose_spec

WORKDIR = '/srv/stack'
IMAGE_ID = 'sha256:' + 'a' * 64
OTHER_IMAGE_ID = 'sha256:' + 'b' * 64


def project(text, name='stack', workdir=WORKDIR, filename='compose.yaml'):
    """A Project from one compose file given as (dedented) YAML text."""
    path = os.path.join(workdir, filename)
    return compose_spec.build_project([(path, compose_load.load_yaml(textwrap.dedent(text), path))], workdir, name)


def service(text, key='web', **kwargs):
    """The normalised definition of one service; ``text`` is the service body."""
    body = textwrap.indent(textwrap.dedent(text), '    ')
    extra = kwargs.pop('extra', '')
    full = 'services:\n  %s:\n    image: img:1\n%s\n%s' % (key, body, textwrap.dedent(extra))
    return project(full, **kwargs).services[key]


def error(text, **kwargs):
    with pytest.raises(compose_load.ComposeError) as info:
        project(text, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------
# YAML loading


@pytest.mark.parametrize('text, expected', [
    ('a: 8080:50', '8080:50'),          # YAML 1.1 would give the sexagesimal 483050
    ('a: no', 'no'),                    # YAML 1.1 would give False
    ('a: yes', 'yes'),
    ('a: on', 'on'),
    ('a: 2024-01-01', '2024-01-01'),    # YAML 1.1 would give a date
    ('a: true', True),
    ('a: False', False),
    ('a: 42', 42),
    ('a: 0755', 755),
    ('a: 0o755', 0o755),
    ('a: 0x1F', 31),
    ('a: 1.5', 1.5),
    ('a: ~', None),
    ('a:', None),
    ('a: "8080:50"', '8080:50'),
])
def test_yaml_scalars_resolve_like_yaml_1_2(text, expected):
    assert compose_load.load_yaml(text, 'f.yaml')['a'] == expected


def test_yaml_duplicate_key_is_an_error_with_line():
    with pytest.raises(compose_load.ComposeError) as info:
        compose_load.load_yaml('services:\n  a: {}\n  a: {}\n', '/x/compose.yaml')
    assert '/x/compose.yaml' in str(info.value)
    assert "duplicate key 'a'" in str(info.value)


def test_yaml_merge_keys_work():
    data = compose_load.load_yaml('x-base: &base\n  image: a\n  user: "1"\nb:\n  <<: *base\n  user: "2"\n', 'f')
    assert data['b'] == {'image': 'a', 'user': '2'}


@pytest.mark.parametrize('text', ['- a\n- b\n', 'just a string\n', ': : :\n  - [\n'])
def test_yaml_top_level_must_be_a_mapping(text):
    with pytest.raises(compose_load.ComposeError) as info:
        compose_load.load_yaml(text, '/x/compose.yaml')
    assert '/x/compose.yaml' in str(info.value)


def test_yaml_empty_file_is_an_empty_mapping():
    assert compose_load.load_yaml('', 'f') == {}


# --------------------------------------------------------------------------
# durations


@pytest.mark.parametrize('text, nanoseconds', [
    ('30s', 30 * 10 ** 9),
    ('1m30s', 90 * 10 ** 9),
    ('1.5h', 5400 * 10 ** 9),
    ('250ms', 250 * 10 ** 6),
    ('10us', 10 * 10 ** 3),
    ('10\u00b5s', 10 * 10 ** 3),
    ('5ns', 5),
    ('1h2m3s4ms', (3723 * 10 ** 9) + 4 * 10 ** 6),
    ('.5s', 5 * 10 ** 8),
    ('0', 0),
    ('0s', 0),
])
def test_parse_duration(text, nanoseconds):
    assert compose_load.parse_duration(text) == nanoseconds


@pytest.mark.parametrize('value', ['30', '', 'abc', '1x', '-1s', '1m 30s', 30, 1.5, True, None])
def test_parse_duration_rejects(value):
    with pytest.raises(compose_load.ComposeError):
        compose_load.parse_duration(value, 'healthcheck.interval')


@pytest.mark.parametrize('nanoseconds, text', [
    (0, '0s'),
    (90 * 10 ** 9, '1m30s'),
    (3600 * 10 ** 9, '1h0m0s'),
    (1500 * 10 ** 6, '1.5s'),
    (500 * 10 ** 6, '500ms'),
    (1500, '1.5us'),
    (7, '7ns'),
])
def test_format_duration(nanoseconds, text):
    assert compose_load.format_duration(nanoseconds) == text
    assert compose_load.parse_duration(text) == nanoseconds


@pytest.mark.parametrize('a, b', [('90s', '1m30s'), ('1h', '60m'), ('1000ms', '1s')])
def test_equal_durations_normalise_the_same(a, b):
    one = service('stop_grace_period: %s' % a)
    two = service('stop_grace_period: %s' % b)
    assert one['stop_grace_period'] == two['stop_grace_period']


# --------------------------------------------------------------------------
# every supported service key, each form


def test_minimal_service_defaults():
    svc = service('')
    assert svc == {
        'image': 'img:1', 'command': None, 'entrypoint': None, 'environment': {}, 'labels': {},
        'volumes': [], 'ports': [], 'networks': {'default': {'aliases': []}}, 'restart': 'no',
        'healthcheck': None, 'depends_on': {}, 'user': None, 'read_only': False, 'tmpfs': [],
        'stop_signal': None, 'stop_grace_period': None, 'update': {'order': 'stop-first', 'monitor': None},
    }


@pytest.mark.parametrize('key', ['command', 'entrypoint'])
@pytest.mark.parametrize('text, expected', [
    ('sleep 10', ['sleep', '10']),
    ('sh -c "echo a b"', ['sh', '-c', 'echo a b']),
    ('["sleep", "10"]', ['sleep', '10']),
    ('[sleep, 10]', ['sleep', '10']),
    ('[]', []),
])
def test_command_and_entrypoint_forms(key, text, expected):
    assert service('%s: %s' % (key, text))[key] == expected


def test_environment_list_and_map_forms_are_equal():
    as_list = service('environment:\n  - B=2\n  - A=x=y\n  - EMPTY=\n')
    as_map = service('environment:\n  A: x=y\n  B: 2\n  EMPTY: ""\n')
    assert as_list['environment'] == as_map['environment'] == {'A': 'x=y', 'B': '2', 'EMPTY': ''}


@pytest.mark.parametrize('value, expected', [('true', 'true'), ('no', 'no'), ('1.5', '1.5'), ('0', '0')])
def test_environment_map_scalars_become_strings(value, expected):
    assert service('environment:\n  V: %s\n' % value)['environment'] == {'V': expected}


@pytest.mark.parametrize('text', ['environment:\n  - FOO\n', 'environment:\n  FOO:\n', 'environment:\n  FOO: null\n'])
def test_environment_without_value_is_rejected(text):
    message = error('services:\n  web:\n    image: a\n    ' + text.replace('\n', '\n    '))
    assert 'FOO' in message and 'web' in message and 'compose.yaml' in message


def test_labels_list_and_map_forms():
    assert service('labels:\n  - a=1\n  - b\n')['labels'] == {'a': '1', 'b': ''}
    assert service('labels:\n  a: 1\n  b:\n')['labels'] == {'a': '1', 'b': ''}


def test_reserved_labels_are_rejected():
    assert 'reserved' in error('services:\n  web:\n    image: a\n    labels:\n      com.docker.compose.project: x\n')


@pytest.mark.parametrize('text, expected', [
    ('- ./data:/data', {'type': 'bind', 'source': WORKDIR + '/data', 'target': '/data', 'read_only': False}),
    ('- ../up:/up:ro', {'type': 'bind', 'source': '/srv/up', 'target': '/up', 'read_only': True}),
    ('- /etc/x:/x:rw', {'type': 'bind', 'source': '/etc/x', 'target': '/x', 'read_only': False}),
    ('- data:/var/lib/x', {'type': 'volume', 'source': 'data', 'target': '/var/lib/x', 'read_only': False}),
    ('- data:/var/lib/x:ro', {'type': 'volume', 'source': 'data', 'target': '/var/lib/x', 'read_only': True}),
    ('- {type: bind, source: ./conf, target: /etc/conf, read_only: true}',
     {'type': 'bind', 'source': WORKDIR + '/conf', 'target': '/etc/conf', 'read_only': True}),
    ('- {type: volume, source: data, target: /d}',
     {'type': 'volume', 'source': 'data', 'target': '/d', 'read_only': False}),
])
def test_volume_forms(text, expected):
    svc = service('volumes:\n  %s\n' % text, extra='volumes:\n  data:\n')
    assert svc['volumes'] == [expected]


def test_volumes_sorted_by_target():
    svc = service('volumes:\n  - /b:/z\n  - /a:/a\n')
    assert [m['target'] for m in svc['volumes']] == ['/a', '/z']


@pytest.mark.parametrize('text, fragment', [
    ('- /data', 'anonymous'),
    ('- {type: volume, target: /d}', 'anonymous'),
    ('- nope:/data', "volume 'nope'"),
    ('- /a:/b:z', "'z'"),
    ('- /a:/b:ro:x', 'too many'),
    ('- /a:relative', 'absolute'),
    ('- ~/x:/x', '~'),
    ('- {type: tmpfs, target: /t}', 'bind or volume'),
    ('- {type: bind, source: /a, target: /b, bind: {propagation: shared}}', "'bind'"),
    ('- /a:/b\n  - /c:/b', 'mounted twice'),
])
def test_volume_errors(text, fragment):
    message = error('services:\n  web:\n    image: a\n    volumes:\n      %s\n' % text.replace('\n', '\n    '))
    assert fragment in message
    assert 'web' in message and 'compose.yaml' in message


@pytest.mark.parametrize('text, expected', [
    ('"80"', {'target': 80, 'published': '', 'host_ip': '', 'protocol': 'tcp'}),
    ('80', {'target': 80, 'published': '', 'host_ip': '', 'protocol': 'tcp'}),
    ('"8080:80"', {'target': 80, 'published': '8080', 'host_ip': '', 'protocol': 'tcp'}),
    ('8080:50', {'target': 50, 'published': '8080', 'host_ip': '', 'protocol': 'tcp'}),
    ('"80:80"', {'target': 80, 'published': '80', 'host_ip': '', 'protocol': 'tcp'}),
    ('"127.0.0.1:8080:80"', {'target': 80, 'published': '8080', 'host_ip': '127.0.0.1', 'protocol': 'tcp'}),
    ('"127.0.0.1::80"', {'target': 80, 'published': '', 'host_ip': '127.0.0.1', 'protocol': 'tcp'}),
    ('"[::1]:8443:443"', {'target': 443, 'published': '8443', 'host_ip': '::1', 'protocol': 'tcp'}),
    ('"53:53/udp"', {'target': 53, 'published': '53', 'host_ip': '', 'protocol': 'udp'}),
    ('{target: 80, published: 8080, host_ip: 127.0.0.1}',
     {'target': 80, 'published': '8080', 'host_ip': '127.0.0.1', 'protocol': 'tcp'}),
    ('{target: 53, protocol: udp}', {'target': 53, 'published': '', 'host_ip': '', 'protocol': 'udp'}),
    ('{target: 80, published: "443"}', {'target': 80, 'published': '443', 'host_ip': '', 'protocol': 'tcp'}),
])
def test_port_forms(text, expected):
    assert service('ports:\n  - %s\n' % text)['ports'] == [expected]


@pytest.mark.parametrize('text, fragment', [
    ('"8000-8001:8000-8001"', 'ranges'),
    ('"70000:80"', 'out of range'),
    ('"0:80"', 'out of range'),
    ('"999.1.1.1:80:80"', 'not an IP'),
    ('"::1:80:80"', 'expected'),
    ('"80/icmp"', 'protocol'),
    ('{published: 80}', 'target'),
    ('{target: 80, mode: host}', "'mode'"),
    ('abc', 'not a port'),
])
def test_port_errors(text, fragment):
    message = error('services:\n  web:\n    image: a\n    ports:\n      - %s\n' % text)
    assert fragment in message and 'web' in message


def test_networks_list_and_map_forms():
    extra = 'networks:\n  front:\n  back:\n'
    as_list = service('networks: [front, back]', extra=extra)
    as_map = service('networks:\n  back:\n  front:\n    aliases: [registry.example, a]\n', extra=extra)
    assert as_list['networks'] == {'back': {'aliases': []}, 'front': {'aliases': []}}
    assert as_map['networks'] == {'back': {'aliases': []}, 'front': {'aliases': ['a', 'registry.example']}}


def test_default_network_is_implicit_only_when_used():
    proj = project('services:\n  a:\n    image: x\n  b:\n    image: x\n    networks: [n]\nnetworks:\n  n:\n')
    assert sorted(proj.networks) == ['default', 'n']
    assert proj.networks['default'] == {'name': 'stack_default', 'external': False, 'driver': 'bridge',
                                        'internal': False}
    proj = project('services:\n  b:\n    image: x\n    networks: [n]\nnetworks:\n  n:\n')
    assert sorted(proj.networks) == ['n']


@pytest.mark.parametrize('text, fragment', [
    ('networks: [nope]', "network 'nope'"),
    ('networks:\n      n:\n        ipv4_address: 1.2.3.4', "'ipv4_address'"),
    ('networks: []', 'empty'),
])
def test_service_network_errors(text, fragment):
    message = error('services:\n  web:\n    image: a\n    %s\nnetworks:\n  n:\n' % text)
    assert fragment in message


@pytest.mark.parametrize('value', ['no', '"no"', 'always', 'unless-stopped', 'on-failure', 'on-failure:3'])
def test_restart_values(value):
    assert service('restart: %s' % value)['restart'] == value.strip('"')


@pytest.mark.parametrize('value', ['sometimes', 'on-failure:x', '3'])
def test_restart_errors(value):
    assert 'restart' in error('services:\n  web:\n    image: a\n    restart: %s\n' % value)


@pytest.mark.parametrize('text, expected', [
    ('test: curl -f http://localhost', {'test': ['CMD-SHELL', 'curl -f http://localhost']}),
    ('test: ["CMD", "true"]\ninterval: 30s\ntimeout: 1m30s\nretries: 3\nstart_period: 500ms',
     {'test': ['CMD', 'true'], 'interval': '30s', 'timeout': '1m30s', 'retries': 3, 'start_period': '500ms'}),
    ('test: ["CMD-SHELL", "exit 0"]\ninterval: 90s', {'test': ['CMD-SHELL', 'exit 0'], 'interval': '1m30s'}),
    ('disable: true', {'test': ['NONE']}),
    ('test: ["NONE"]', {'test': ['NONE']}),
])
def test_healthcheck_forms(text, expected):
    body = 'healthcheck:\n' + textwrap.indent(text, '  ')
    assert service(body)['healthcheck'] == expected


@pytest.mark.parametrize('text, fragment', [
    ('test: [true]', 'test'),
    ('test: ["true"]', 'CMD'),
    ('interval: 30s', 'needs a test'),
    ('test: x\n      interval: 30', 'duration'),
    ('test: x\n      retries: -1', 'retries'),
    ('test: x\n      start_interval: 5s', "'start_interval'"),
    ('disable: true\n      test: x', 'disable'),
])
def test_healthcheck_errors(text, fragment):
    message = error('services:\n  web:\n    image: a\n    healthcheck:\n      %s\n' % text)
    assert fragment in message


def test_depends_on_forms():
    text = ('services:\n  db:\n    image: a\n  cache:\n    image: a\n'
            '  web:\n    image: a\n    depends_on: [db, cache]\n'
            '  api:\n    image: a\n    depends_on:\n      db:\n        condition: service_healthy\n      cache:\n')
    proj = project(text)
    assert proj.services['web']['depends_on'] == {'cache': {'condition': 'service_started'},
                                                  'db': {'condition': 'service_started'}}
    assert proj.services['api']['depends_on'] == {'cache': {'condition': 'service_started'},
                                                  'db': {'condition': 'service_healthy'}}
    assert compose_labels.depends_on_label(proj.services['api']) == 'cache:service_started:false,db:service_healthy:false'
    assert compose_labels.depends_on_label(proj.services['db']) == ''


@pytest.mark.parametrize('text, fragment', [
    ('depends_on: [nope]', "'nope', which is not defined"),
    ('depends_on: [web]', 'itself'),
    ('depends_on:\n      db:\n        condition: service_completed_successfully', 'condition'),
    ('depends_on:\n      db:\n        restart: true', "'restart'"),
])
def test_depends_on_errors(text, fragment):
    message = error('services:\n  db:\n    image: a\n  web:\n    image: a\n    %s\n' % text)
    assert fragment in message


def test_depends_on_cycle_is_an_error():
    message = error('services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n')
    assert 'cycle' in message and 'a -> b -> a' in message


@pytest.mark.parametrize('text, key, expected', [
    ('user: "1000:1000"', 'user', '1000:1000'),
    ('user: 1000', 'user', '1000'),
    ('user: nobody', 'user', 'nobody'),
    ('read_only: true', 'read_only', True),
    ('tmpfs: /run', 'tmpfs', ['/run']),
    ('tmpfs: [/tmp, /run]', 'tmpfs', ['/run', '/tmp']),
    ('tmpfs: ["/run:size=64m"]', 'tmpfs', ['/run:size=64m']),
    ('stop_signal: SIGQUIT', 'stop_signal', 'SIGQUIT'),
    ('stop_signal: quit', 'stop_signal', 'SIGQUIT'),
    ('stop_grace_period: 1m30s', 'stop_grace_period', '1m30s'),
    ('stop_grace_period: 90s', 'stop_grace_period', '1m30s'),
])
def test_scalar_keys(text, key, expected):
    assert service(text)[key] == expected


@pytest.mark.parametrize('text, fragment', [
    ('read_only: yes', 'true or false'),
    ('tmpfs: run', 'absolute'),
    ('stop_grace_period: 10', 'duration'),
    ('user: [a]', 'string'),
])
def test_scalar_key_errors(text, fragment):
    assert fragment in error('services:\n  web:\n    image: a\n    %s\n' % text)


def test_top_level_networks_and_volumes():
    proj = project('''
        name: ignored-by-param
        services:
          web:
            image: a
            networks: [front, back, ext]
            volumes: [data:/d, shared:/s, old:/o]
        networks:
          front:
          back:
            internal: true
            driver: bridge
          ext:
            external: true
            name: proxy-net
        volumes:
          data:
          shared:
            name: registry-data
            driver: local
          old:
            external: true
        ''')
    assert proj.networks == {
        'front': {'name': 'stack_front', 'external': False, 'driver': 'bridge', 'internal': False},
        'back': {'name': 'stack_back', 'external': False, 'driver': 'bridge', 'internal': True},
        'ext': {'name': 'proxy-net', 'external': True, 'driver': 'bridge', 'internal': False},
    }
    assert proj.volumes == {
        'data': {'name': 'stack_data', 'external': False, 'driver': 'local'},
        'shared': {'name': 'registry-data', 'external': False, 'driver': 'local'},
        'old': {'name': 'old', 'external': True, 'driver': 'local'},
    }


# --------------------------------------------------------------------------
# unsupported keys name the key, the service and the file


@pytest.mark.parametrize('body, key', [
    ('build: .', 'build'),
    ('container_name: x', 'container_name'),
    ('privileged: true', 'privileged'),
    ('env_file: .env', 'env_file'),
    ('deploy: {replicas: 2}', 'replicas'),
    ('devices: [/dev/fuse]', 'devices'),
    ('network_mode: host', 'network_mode'),
])
def test_unsupported_service_keys(body, key):
    message = error('services:\n  web:\n    image: a\n    %s\n' % body, filename='proxy.yaml')
    assert "unsupported key %r in service 'web'" % key in message
    assert os.path.join(WORKDIR, 'proxy.yaml') in message


@pytest.mark.parametrize('text, expected', [
    ('deploy: {}', {'order': 'stop-first', 'monitor': None}),
    ('deploy: {update_config: {order: start-first}}', {'order': 'start-first', 'monitor': None}),
    ('deploy: {update_config: {order: stop-first, monitor: 1m30s}}', {'order': 'stop-first', 'monitor': '1m30s'}),
])
def test_deploy_update_config(text, expected):
    assert service(text)['update'] == expected


@pytest.mark.parametrize('text, fragment', [
    ('deploy: {update_config: {order: rolling}}', "order must be one of stop-first, start-first, not 'rolling'"),
    ('deploy: {update_config: {monitor: 5}}', 'monitor'),
    ('deploy: {update_config: {parallelism: 2}}', "unsupported key 'parallelism'"),
    ('deploy: {update_config: {order: start-first}}\nports: ["80:80"]', 'use stop-first for a service with ports'),
    ('deploy: [update_config]', 'deploy must be a mapping'),
])
def test_deploy_errors(text, fragment):
    with pytest.raises(compose_load.ComposeError) as info:
        service(text)
    assert fragment in str(info.value)


def test_deploy_is_not_part_of_the_container_definition():
    plain = project('services:\n  web:\n    image: a\n')
    rolled = project('services:\n  web:\n    image: a\n    deploy: {update_config: {order: start-first, monitor: 5s}}\n')
    assert compose_labels.resolve_service(plain, 'web') == compose_labels.resolve_service(rolled, 'web')


@pytest.mark.parametrize('text, key', [
    ('configs: {}', 'configs'),
    ('secrets: {}', 'secrets'),
    ('include: []', 'include'),
])
def test_unsupported_top_level_keys(text, key):
    message = error('services:\n  web:\n    image: a\n%s\n' % text)
    assert 'top-level key %r' % key in message and 'compose.yaml' in message


@pytest.mark.parametrize('text, key', [
    ('networks:\n  n:\n    ipam: {}\n', 'ipam'),
    ('networks:\n  n:\n    labels: {}\n', 'labels'),
    ('volumes:\n  v:\n    driver_opts: {}\n', 'driver_opts'),
])
def test_unsupported_network_and_volume_keys(text, key):
    message = error('services:\n  web:\n    image: a\n%s' % text)
    assert repr(key) in message


def test_extension_keys_and_version_are_ignored():
    proj = project('version: "3.8"\nx-common: &c\n  image: a\nservices:\n  web:\n    <<: *c\n    x-note: hi\n')
    assert proj.services['web']['image'] == 'a'


def test_service_without_image_is_an_error():
    assert 'has no image' in error('services:\n  web:\n    command: x\n')


def test_no_services_is_an_error():
    assert 'no services' in error('networks:\n  n:\n')


@pytest.mark.parametrize('name', ['-web', 'web app', 'we/b'])
def test_invalid_service_names(name):
    assert 'service names' in error('services:\n  "%s":\n    image: a\n' % name)


# --------------------------------------------------------------------------
# interpolation


@pytest.mark.parametrize('value, expected', [
    ('$$HOME', '$HOME'),
    ('a$$b', 'a$b'),
    ('$${X}', '${X}'),
    ('no dollar', 'no dollar'),
])
def test_double_dollar_is_a_literal_dollar(value, expected):
    assert service('environment:\n  V: "%s"\n' % value)['environment']['V'] == expected


@pytest.mark.parametrize('value', ['${FOO}', '$FOO', 'x${FOO:-d}y', '$', 'a$ b', '${'])
def test_interpolation_is_rejected(value):
    message = error('services:\n  web:\n    image: a\n    environment:\n      V: "%s"\n' % value)
    assert 'interpolation is not supported' in message
    assert 'services.web.environment.V' in message
    assert 'compose.yaml' in message


# --------------------------------------------------------------------------
# several files


def two_files(first, second, name='stack'):
    docs = [('/srv/stack/a.yaml', compose_load.load_yaml(textwrap.dedent(first), 'a')),
            ('/srv/stack/b.yaml', compose_load.load_yaml(textwrap.dedent(second), 'b'))]
    return compose_spec.build_project(docs, WORKDIR, name)


def test_files_are_united():
    proj = two_files('services:\n  registry:\n    image: r\n    networks: [back]\nvolumes:\n  data:\n',
                     'services:\n  proxy:\n    image: n\n    networks: [back]\nnetworks:\n  back:\n')
    assert sorted(proj.services) == ['proxy', 'registry']
    assert sorted(proj.networks) == ['back']
    assert sorted(proj.volumes) == ['data']
    assert proj.config_files == ['/srv/stack/a.yaml', '/srv/stack/b.yaml']
    assert proj.origins['services'] == {'registry': '/srv/stack/a.yaml', 'proxy': '/srv/stack/b.yaml'}


@pytest.mark.parametrize('first, second, what', [
    ('services:\n  web:\n    image: a\n', 'services:\n  web:\n    image: b\n', "service 'web'"),
    ('services:\n  a:\n    image: a\nnetworks:\n  n:\n', 'services:\n  b:\n    image: b\nnetworks:\n  n:\n',
     "network 'n'"),
    ('services:\n  a:\n    image: a\nvolumes:\n  v:\n', 'services:\n  b:\n    image: b\nvolumes:\n  v:\n',
     "volume 'v'"),
    ('name: x\nservices:\n  a:\n    image: a\n', 'name: x\nservices:\n  b:\n    image: b\n', "'name'"),
])
def test_a_key_in_two_files_is_an_error_naming_both(first, second, what):
    with pytest.raises(compose_load.ComposeError) as info:
        two_files(first, second, name=None)
    message = str(info.value)
    assert what in message
    assert '/srv/stack/a.yaml' in message and '/srv/stack/b.yaml' in message


def test_service_may_use_a_network_from_another_file():
    proj = two_files('services:\n  a:\n    image: a\n    networks: [n]\n', 'networks:\n  n:\n    internal: true\n')
    assert proj.networks['n']['internal'] is True


# --------------------------------------------------------------------------
# project names


@pytest.mark.parametrize('workdir, expected', [
    ('/srv/registry', 'registry'),
    ('/srv/My.Registry', 'myregistry'),
    ('/srv/_stack-1', 'stack-1'),
    ('/srv/reg_2/', 'reg_2'),
])
def test_project_name_from_directory(workdir, expected):
    assert project('services:\n  a:\n    image: x\n', name=None, workdir=workdir).name == expected


def test_project_name_from_file_and_parameter():
    text = 'name: fromfile\nservices:\n  a:\n    image: x\n'
    assert project(text, name=None).name == 'fromfile'
    assert project(text, name='param').name == 'param'


@pytest.mark.parametrize('name', ['Upper', '-lead', 'has space', 'dot.ted', ''])
def test_invalid_project_names(name):
    if name == '':
        with pytest.raises(compose_load.ComposeError):
            compose_spec.validate_project_name(name)
        return
    assert 'not a valid compose project name' in error('services:\n  a:\n    image: x\n', name=name)


def test_directory_that_gives_no_name():
    assert 'cannot derive a project name' in error('services:\n  a:\n    image: x\n', name=None, workdir='/srv/...')


def test_resources_are_prefixed_with_project_name():
    proj = project('services:\n  a:\n    image: x\n    volumes: [d:/d]\nvolumes:\n  d:\n', name='reg')
    assert proj.networks['default']['name'] == 'reg_default'
    assert proj.volumes['d']['name'] == 'reg_d'
    assert compose_labels.container_name('reg', 'a') == 'reg-a-1'


# --------------------------------------------------------------------------
# signals


@pytest.mark.parametrize('value, expected', [
    ('SIGHUP', 'SIGHUP'), ('HUP', 'SIGHUP'), ('sighup', 'SIGHUP'), ('SIGRTMIN+3', 'SIGRTMIN+3'),
    ('1', '1'), (15, '15'),
])
def test_validate_signal(value, expected):
    assert compose_spec.validate_signal(value) == expected


@pytest.mark.parametrize('value', ['', 'SIG', 'HUP!', '0', '99', 'a b'])
def test_validate_signal_rejects(value):
    with pytest.raises(compose_load.ComposeError):
        compose_spec.validate_signal(value)


# --------------------------------------------------------------------------
# resolution, hashing, labels

BASE = '''
    services:
      db:
        image: db:1
      web:
        image: web:1
        command: ["serve", "--port", "80"]
        entrypoint: ["/entry"]
        environment:
          A: "1"
          B: "2"
        labels:
          team: ops
        volumes:
          - ./conf:/etc/conf:ro
          - data:/var/lib/web
        ports:
          - "127.0.0.1:8080:80"
        networks:
          front:
            aliases: [www]
        restart: always
        healthcheck:
          test: ["CMD", "true"]
          interval: 30s
        depends_on: [db]
        user: "1000"
        read_only: true
        tmpfs: [/run]
        stop_signal: SIGQUIT
        stop_grace_period: 20s
    networks:
      front:
    volumes:
      data:
    '''


def base_project():
    return project(BASE)


def test_resolve_service_uses_engine_names():
    spec = compose_labels.resolve_service(base_project(), 'web')
    assert spec['networks'] == {'stack_front': {'aliases': ['stack-web-1', 'web', 'www']}}
    assert spec['mounts'] == [
        {'type': 'bind', 'source': WORKDIR + '/conf', 'target': '/etc/conf', 'read_only': True},
        {'type': 'volume', 'source': 'stack_data', 'target': '/var/lib/web', 'read_only': False},
    ]
    assert 'depends_on' not in spec
    assert compose_labels.resolve_service(base_project(), 'db')['networks'] == {
        'stack_default': {'aliases': ['db', 'stack-db-1']}}


def test_hash_is_stable_for_the_same_definition():
    one = compose_labels.config_hash(compose_labels.resolve_service(base_project(), 'web'), IMAGE_ID)
    two = compose_labels.config_hash(compose_labels.resolve_service(base_project(), 'web'), IMAGE_ID)
    assert one == two
    assert len(one) == 64


def test_hash_ignores_key_order_and_equivalent_forms():
    reordered = BASE.replace('          A: "1"\n          B: "2"\n', '          B: "2"\n          A: "1"\n')
    as_list = BASE.replace('          A: "1"\n          B: "2"\n', '          - A=1\n          - B=2\n')
    duration = BASE.replace('interval: 30s', 'interval: 0.5m')
    expected = compose_labels.config_hash(compose_labels.resolve_service(base_project(), 'web'), IMAGE_ID)
    for text in (reordered, as_list, duration):
        assert text != BASE
        assert compose_labels.config_hash(compose_labels.resolve_service(project(text), 'web'), IMAGE_ID) == expected


@pytest.mark.parametrize('old, new', [
    ('image: web:1', 'image: web:2'),
    ('"serve", "--port", "80"', '"serve", "--port", "81"'),
    ('["/entry"]', '["/entry2"]'),
    ('A: "1"', 'A: "one"'),
    ('team: ops', 'team: dev'),
    ('./conf:/etc/conf:ro', './conf:/etc/conf:rw'),
    ('data:/var/lib/web', 'data:/var/lib/www'),
    ('127.0.0.1:8080:80', '127.0.0.1:8081:80'),
    ('aliases: [www]', 'aliases: [www, w3]'),
    ('restart: always', 'restart: unless-stopped'),
    ('interval: 30s', 'interval: 31s'),
    ('user: "1000"', 'user: "1001"'),
    ('read_only: true', 'read_only: false'),
    ('tmpfs: [/run]', 'tmpfs: [/run, /tmp]'),
    ('stop_signal: SIGQUIT', 'stop_signal: SIGTERM'),
    ('stop_grace_period: 20s', 'stop_grace_period: 21s'),
])
def test_hash_changes_when_one_field_changes(old, new):
    assert old in BASE
    before = compose_labels.config_hash(compose_labels.resolve_service(base_project(), 'web'), IMAGE_ID)
    after = compose_labels.config_hash(compose_labels.resolve_service(project(BASE.replace(old, new)), 'web'), IMAGE_ID)
    assert before != after


def test_hash_changes_with_image_id_and_project_name_but_not_depends_on():
    spec = compose_labels.resolve_service(base_project(), 'web')
    assert compose_labels.config_hash(spec, IMAGE_ID) != compose_labels.config_hash(spec, OTHER_IMAGE_ID)
    renamed = compose_labels.resolve_service(project(BASE, name='other'), 'web')
    assert compose_labels.config_hash(renamed, IMAGE_ID) != compose_labels.config_hash(spec, IMAGE_ID)
    no_deps = compose_labels.resolve_service(project(BASE.replace('        depends_on: [db]\n', '')), 'web')
    assert compose_labels.config_hash(no_deps, IMAGE_ID) == compose_labels.config_hash(spec, IMAGE_ID)


def test_container_labels_are_compose_labels():
    proj = base_project()
    spec = compose_labels.resolve_service(proj, 'web')
    labels = compose_labels.container_labels(proj, 'web', spec, IMAGE_ID, 'hash-of-web', '2.26.1-4')
    assert labels['team'] == 'ops'
    assert labels[compose_labels.LABEL_PROJECT] == 'stack'
    assert labels[compose_labels.LABEL_SERVICE] == 'web'
    assert labels[compose_labels.LABEL_CONTAINER_NUMBER] == '1'
    assert labels[compose_labels.LABEL_ONEOFF] == 'False'
    assert labels[compose_labels.LABEL_WORKING_DIR] == WORKDIR
    assert labels[compose_labels.LABEL_CONFIG_FILES] == WORKDIR + '/compose.yaml'
    assert labels[compose_labels.LABEL_IMAGE] == IMAGE_ID
    assert labels[compose_labels.LABEL_DEPENDS_ON] == 'db:service_started:false'
    assert labels[compose_labels.LABEL_CONFIG_HASH] == 'hash-of-web'
    assert labels[compose_labels.LABEL_VERSION] == '2.26.1-4'
    assert compose_labels.read_definition_label(labels) == spec


def test_container_labels_without_compose_have_no_version():
    proj = base_project()
    spec = compose_labels.resolve_service(proj, 'web')
    labels = compose_labels.container_labels(proj, 'web', spec, IMAGE_ID, 'hash-of-web')
    assert compose_labels.LABEL_VERSION not in labels


def test_resource_labels():
    proj = base_project()
    assert compose_labels.resource_labels(proj, 'network', 'front') == {
        compose_labels.LABEL_PROJECT: 'stack', compose_labels.LABEL_NETWORK: 'front'}
    assert compose_labels.resource_labels(proj, 'volume', 'data', '2.26.1')[compose_labels.LABEL_VOLUME] == 'data'
    assert compose_labels.resource_labels(proj, 'volume', 'data', '2.26.1')[compose_labels.LABEL_VERSION] == '2.26.1'


@pytest.mark.parametrize('labels', [None, {}, {compose_labels.LABEL_DEFINITION: 'not json'}, {compose_labels.LABEL_DEFINITION: '[1]'}])
def test_read_definition_label_tolerates_foreign_containers(labels):
    assert compose_labels.read_definition_label(labels) is None


# --------------------------------------------------------------------------
# start order and selection


def test_start_order_dependencies_first():
    proj = project('''
        services:
          proxy: {image: a, depends_on: [registry]}
          registry: {image: a, depends_on: [auth]}
          auth: {image: a}
          other: {image: a}
        ''')
    assert compose_spec.start_order(proj.services) == ['auth', 'other', 'registry', 'proxy']
    assert compose_spec.start_order(proj.services, ['proxy', 'auth']) == ['auth', 'proxy']
    assert compose_spec.select_services(proj, ['proxy'], include_dependencies=True) == {'proxy', 'registry', 'auth'}
    assert compose_spec.select_services(proj, ['proxy'], include_dependencies=False) == {'proxy'}
    assert compose_spec.select_services(proj, None, include_dependencies=False) == {'proxy', 'registry', 'auth', 'other'}
    with pytest.raises(compose_load.ComposeError) as info:
        compose_spec.select_services(proj, ['nope'], include_dependencies=False)
    assert 'nope' in str(info.value) and 'auth, other, proxy, registry' in str(info.value)


# --------------------------------------------------------------------------
# diffing


@pytest.mark.parametrize('before, after, expected', [
    ({'a': 1}, {'a': 1}, (None, None)),
    ({'a': 1, 'b': 2}, {'a': 1, 'b': 3}, ({'b': 2}, {'b': 3})),
    ({'env': {'A': '1', 'B': '2'}}, {'env': {'A': '1', 'B': '3', 'C': '4'}},
     ({'env': {'B': '2'}}, {'env': {'B': '3', 'C': '4'}})),
    ({'env': {'A': '1'}}, {'env': {}}, ({'env': {'A': '1'}}, {'env': {}})),
    ({'ports': [1, 2]}, {'ports': [1]}, ({'ports': [1, 2]}, {'ports': [1]})),
    ({'x': None}, {'x': 'y'}, ({'x': None}, {'x': 'y'})),
    ('a', 'b', ('a', 'b')),
])
def test_diff_values(before, after, expected):
    assert compose_plan.diff_values(before, after) == expected


def test_service_diff_shows_only_changed_fields():
    old = compose_labels.resolve_service(base_project(), 'web')
    new = compose_labels.resolve_service(project(BASE.replace('A: "1"', 'A: "9"')), 'web')
    before, after = compose_plan.service_diff(old, IMAGE_ID, new, IMAGE_ID)
    assert before == {'environment': {'A': '1'}}
    assert after == {'environment': {'A': '9'}}
    before, after = compose_plan.service_diff(old, IMAGE_ID, old, OTHER_IMAGE_ID)
    assert (before, after) == ({'image_id': IMAGE_ID}, {'image_id': OTHER_IMAGE_ID})


# --------------------------------------------------------------------------
# planning


def observed_for(proj, service_name, image_id=IMAGE_ID, running=True, spec=None, spec_hash=None):
    spec = spec or compose_labels.resolve_service(proj, service_name)
    spec_hash = spec_hash or compose_labels.config_hash(spec, image_id)
    return {
        'id': service_name + '-id', 'name': compose_labels.container_name(proj.name, service_name),
        'running': running, 'status': 'running' if running else 'exited',
        'labels': compose_labels.container_labels(proj, service_name, spec, image_id, spec_hash), 'image_id': image_id,
    }


def images(proj, image_id=IMAGE_ID):
    return dict((svc['image'], image_id) for svc in proj.services.values())


def test_plan_create_everything_in_dependency_order():
    proj = base_project()
    plan = compose_plan.plan_services(proj, set(proj.services), 'present', {}, images(proj))
    assert list(plan) == ['db', 'web']
    assert [e['action'] for e in plan.values()] == ['created', 'created']
    assert plan['web']['before'] == {'state': 'absent'}
    assert plan['web']['after']['state'] == 'running'
    assert plan['web']['after']['image_id'] == IMAGE_ID


def test_plan_unchanged_when_nothing_changed():
    proj = base_project()
    observed = dict((s, observed_for(proj, s)) for s in proj.services)
    plan = compose_plan.plan_services(proj, set(proj.services), 'present', observed, images(proj))
    assert dict((s, e['action']) for s, e in plan.items()) == {'db': 'unchanged', 'web': 'unchanged'}
    assert all(e['before'] == {} and e['after'] == {} for e in plan.values())


def test_plan_recreates_only_the_changed_service_with_a_field_diff():
    old = base_project()
    observed = dict((s, observed_for(old, s)) for s in old.services)
    new = project(BASE.replace('A: "1"', 'A: "changed"'))
    plan = compose_plan.plan_services(new, set(new.services), 'present', observed, images(new))
    assert plan['db']['action'] == 'unchanged'
    assert plan['web']['action'] == 'recreated'
    assert plan['web']['reason'] == 'definition changed'
    assert plan['web']['before'] == {'environment': {'A': '1'}}
    assert plan['web']['after'] == {'environment': {'A': 'changed'}}


def test_plan_recreates_when_the_image_changed():
    proj = base_project()
    observed = dict((s, observed_for(proj, s)) for s in proj.services)
    plan = compose_plan.plan_services(proj, {'web'}, 'present', observed, images(proj, OTHER_IMAGE_ID))
    assert plan['web']['action'] == 'recreated'
    assert plan['web']['reason'] == 'image changed'
    assert plan['web']['after'] == {'image_id': OTHER_IMAGE_ID}


def test_plan_recreates_containers_of_other_tools_once():
    proj = base_project()
    foreign = observed_for(proj, 'db')
    foreign['labels'] = {compose_labels.LABEL_CONFIG_HASH: 'compose-cli-hash'}
    plan = compose_plan.plan_services(proj, {'db'}, 'present', {'db': foreign}, images(proj))
    assert plan['db']['action'] == 'recreated'
    assert 'not created by compose_stack' in plan['db']['before']['definition']


# Where the compose CLI is installed, its hashes are compared (_compose_cli.compose_hashes).
COMPOSE_HASHES = {'db': 'compose-hash-of-db', 'web': 'compose-hash-of-web'}


def made_by_compose(proj, service_name, spec_hash, image_id=IMAGE_ID):
    record = observed_for(proj, service_name, image_id=image_id)
    record['labels'] = {compose_labels.LABEL_CONFIG_HASH: spec_hash, compose_labels.LABEL_IMAGE: image_id}
    return record


def test_plan_takes_containers_compose_made_from_the_same_files():
    proj = base_project()
    observed = dict((s, made_by_compose(proj, s, COMPOSE_HASHES[s])) for s in proj.services)
    plan = compose_plan.plan_services(proj, set(proj.services), 'present', observed, images(proj),
                                      compose_hashes=COMPOSE_HASHES)
    assert dict((s, e['action']) for s, e in plan.items()) == {'db': 'unchanged', 'web': 'unchanged'}
    assert plan['web']['hash'] == 'compose-hash-of-web'


def test_plan_recreates_a_compose_container_for_a_new_image_with_an_image_diff():
    proj = base_project()
    observed = {'db': made_by_compose(proj, 'db', COMPOSE_HASHES['db'])}
    plan = compose_plan.plan_services(proj, {'db'}, 'present', observed, images(proj, OTHER_IMAGE_ID),
                                      compose_hashes=COMPOSE_HASHES)
    assert (plan['db']['action'], plan['db']['reason']) == ('recreated', 'image changed')
    assert (plan['db']['before'], plan['db']['after']) == ({'image_id': IMAGE_ID}, {'image_id': OTHER_IMAGE_ID})


def test_plan_recreates_a_compose_container_of_other_files():
    proj = base_project()
    observed = {'db': made_by_compose(proj, 'db', 'compose-hash-of-other-files')}
    plan = compose_plan.plan_services(proj, {'db'}, 'present', observed, images(proj), compose_hashes=COMPOSE_HASHES)
    assert (plan['db']['action'], plan['db']['reason']) == ('recreated', 'container was not created by compose_stack')


def test_plan_compares_compose_hashes_of_its_own_containers():
    proj = base_project()
    observed = {'db': observed_for(proj, 'db', spec_hash=COMPOSE_HASHES['db'])}
    plan = compose_plan.plan_services(proj, {'db'}, 'present', observed, images(proj), compose_hashes=COMPOSE_HASHES)
    assert plan['db']['action'] == 'unchanged'
    changed = project(BASE.replace('image: db:1', 'image: db:2'))
    plan = compose_plan.plan_services(changed, {'db'}, 'present', observed, images(changed),
                                      compose_hashes={'db': 'compose-hash-of-db-2', 'web': 'x'})
    assert (plan['db']['action'], plan['db']['reason']) == ('recreated', 'definition changed')
    assert (plan['db']['before'], plan['db']['after']) == ({'image': 'db:1'}, {'image': 'db:2'})


def test_plan_recreates_once_when_the_hash_source_changes():
    proj = base_project()
    observed = {'db': observed_for(proj, 'db')}
    plan = compose_plan.plan_services(proj, {'db'}, 'present', observed, images(proj), compose_hashes=COMPOSE_HASHES)
    assert plan['db']['action'] == 'recreated'
    assert 'another source' in plan['db']['reason']
    assert plan['db']['after'] == {'recreate': plan['db']['reason']}


def test_plan_missing_image_in_check_mode():
    proj = base_project()
    observed = {'db': observed_for(proj, 'db')}
    plan = compose_plan.plan_services(proj, set(proj.services), 'present', observed, dict.fromkeys(images(proj)))
    assert plan['db']['action'] == 'recreated'
    assert plan['web']['action'] == 'created'
    assert 'pulled' in plan['web']['after']['image_id']


def test_plan_starts_stopped_containers():
    proj = base_project()
    observed = {'db': observed_for(proj, 'db', running=False), 'web': observed_for(proj, 'web')}
    plan = compose_plan.plan_services(proj, set(proj.services), 'present', observed, images(proj))
    assert plan['db']['action'] == 'started'
    assert plan['db']['before'] == {'state': 'exited'}


def test_plan_signal_only_for_running_unchanged_targets():
    old = base_project()
    observed = dict((s, observed_for(old, s)) for s in old.services)
    plan = compose_plan.plan_services(old, set(old.services), 'present', observed, images(old), signal='SIGHUP',
                                      signal_targets=['web'])
    assert plan['web']['action'] == 'signaled'
    assert plan['web']['after'] == {'signal': 'SIGHUP'}
    assert plan['db']['action'] == 'unchanged'
    new = project(BASE.replace('A: "1"', 'A: "2"'))
    plan = compose_plan.plan_services(new, set(new.services), 'present', observed, images(new), signal='SIGHUP',
                                      signal_targets=['web'])
    assert plan['web']['action'] == 'recreated'


def test_plan_restarted():
    proj = base_project()
    observed = {'db': observed_for(proj, 'db'), 'web': observed_for(proj, 'web', running=False)}
    plan = compose_plan.plan_services(proj, set(proj.services), 'restarted', observed, images(proj))
    assert dict((s, e['action']) for s, e in plan.items()) == {'db': 'restarted', 'web': 'started'}


def test_plan_forced_recreate():
    proj = base_project()
    observed = dict((s, observed_for(proj, s)) for s in proj.services)
    plan = compose_plan.plan_services(proj, set(proj.services), 'present', observed, images(proj),
                                      forced_recreate={'web': 'network stack_front is recreated'})
    assert plan['web']['action'] == 'recreated'
    assert plan['web']['after'] == {'recreate': 'network stack_front is recreated'}


def test_plan_stopped_and_absent_go_in_reverse_order():
    proj = base_project()
    observed = {'db': observed_for(proj, 'db'), 'web': observed_for(proj, 'web', running=False)}
    plan = compose_plan.plan_services(proj, set(proj.services), 'stopped', observed, {})
    assert list(plan) == ['web', 'db']
    assert dict((s, e['action']) for s, e in plan.items()) == {'web': 'unchanged', 'db': 'stopped'}
    plan = compose_plan.plan_services(proj, set(proj.services), 'absent', {'web': observed['web']}, {})
    assert dict((s, e['action']) for s, e in plan.items()) == {'web': 'removed', 'db': 'unchanged'}


def test_plan_does_not_modify_its_inputs():
    proj = base_project()
    observed = dict((s, observed_for(proj, s)) for s in proj.services)
    snapshot = copy.deepcopy((proj.services, observed))
    compose_plan.plan_services(proj, set(proj.services), 'present', observed, images(proj, OTHER_IMAGE_ID))
    assert (proj.services, observed) == snapshot


# --------------------------------------------------------------------------
# plan_networks / plan_volumes: pure, over a snapshot of the engine


NETWORKED = '''
services:
  web:
    image: web:1
    networks: [front, back]
    volumes: [data:/data]
  db:
    image: db:1
    networks: [back]
networks:
  front: {}
  back:
    internal: true
  shared:
    external: true
volumes:
  data: {}
'''


def record(service_name, container_id, networks):
    return {'id': container_id, 'name': 'stack-%s-1' % service_name, 'service': service_name,
            'networks': networks, 'aliases': {}}


def network(internal=False, project_name='stack', containers=None):
    return {'Driver': 'bridge', 'Internal': internal, 'Labels': {compose_labels.LABEL_PROJECT: project_name},
            'Containers': containers or {}}


def test_plan_networks_creates_what_is_missing_and_keeps_what_matches():
    proj = project(NETWORKED)
    plan = compose_plan.plan_networks(proj, ['web'], {'stack_front': None, 'stack_back': network(internal=True)}, {}, [])
    assert plan['actions'] == {'stack_front': 'created', 'stack_back': 'unchanged'}
    assert plan['diffs'] == [('stack_front', {'state': 'absent'},
                              {'state': 'present', 'driver': 'bridge', 'internal': False})]
    assert plan['forced'] == {} and plan['warnings'] == []
    assert plan['keys'] == {'stack_front': 'front', 'stack_back': 'back'}


def test_plan_networks_recreates_a_changed_network_with_its_containers():
    proj = project(NETWORKED)
    web, db = record('web', 'w1', ['stack_front', 'stack_back']), record('db', 'd1', ['stack_back'])
    existing = {'stack_front': network(), 'stack_back': network(internal=False, containers={'w1': {}, 'd1': {}})}
    plan = compose_plan.plan_networks(proj, ['web'], existing, {'web': web, 'db': db}, [])
    assert plan['actions'] == {'stack_front': 'unchanged', 'stack_back': 'recreated'}
    assert plan['diffs'] == [('stack_back', {'internal': False}, {'internal': True})]
    # web is selected: recreated; db is not: reconnected to the new network.
    assert plan['forced'] == {'web': 'network stack_back is recreated'}
    assert plan['reattach'] == {'stack_front': [], 'stack_back': [db]}


def test_plan_networks_refuses_to_recreate_a_network_others_use():
    proj = project(NETWORKED)
    existing = {'stack_front': network(), 'stack_back': network(containers={'x9': {'Name': 'intruder'}})}
    with pytest.raises(compose_load.ComposeError, match=r'stack_back changed \(internal False -> True\).*intruder'):
        compose_plan.plan_networks(proj, ['web'], existing, {}, [])


def test_plan_networks_uses_a_foreign_network_as_it_is_with_a_warning():
    proj = project(NETWORKED)
    existing = {'stack_front': network(project_name='other'), 'stack_back': network(internal=True)}
    plan = compose_plan.plan_networks(proj, ['web'], existing, {}, [])
    assert plan['actions']['stack_front'] == 'unchanged'
    assert 'not created for project stack' in plan['warnings'][0]


def test_plan_networks_needs_external_networks_to_exist():
    proj = project(NETWORKED.replace('networks: [front, back]', 'networks: [shared]'))
    assert compose_plan.plan_networks(proj, ['web'], {'shared': network(project_name='')}, {}, [])['actions'] == {}
    with pytest.raises(compose_load.ComposeError, match='network shared .* is external but does not exist'):
        compose_plan.plan_networks(proj, ['web'], {'shared': None}, {}, [])


def test_plan_volumes():
    proj = project(NETWORKED)
    plan = compose_plan.plan_volumes(proj, ['web'], {'stack_data': None})
    assert plan['actions'] == {'stack_data': 'created'}
    assert plan['diffs'] == [('stack_data', {'state': 'absent'}, {'state': 'present', 'driver': 'local'})]
    assert compose_plan.plan_volumes(proj, ['web'], {'stack_data': {'Driver': 'local'}})['actions'] == {'stack_data': 'unchanged'}
    assert compose_plan.plan_volumes(proj, ['db'], {})['actions'] == {}
    with pytest.raises(compose_load.ComposeError, match='never replaced implicitly'):
        compose_plan.plan_volumes(proj, ['web'], {'stack_data': {'Driver': 'nfs'}})
