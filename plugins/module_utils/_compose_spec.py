# Copyright (c) selfhosted.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The subset of the compose spec that selfhosted.registry.compose_stack supports:
validation and normalisation of one or more files into a Project, and the
order services start in.

Private module: the interface may change without notice. Pure: no engine.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex

from ansible_collections.selfhosted.registry.plugins.module_utils._compose_confinement import CONFINEMENT_KEYS, parse_confinement
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_labels import LABEL_DEFINITION
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_load import (
    ComposeError,
    format_duration,
    load_yaml,
    parse_duration,
    unescape,
    unescape_tree,
)

SERVICE_KEYS = frozenset((
    'image', 'command', 'entrypoint', 'environment', 'volumes', 'ports',
    'networks', 'restart', 'healthcheck', 'depends_on', 'labels', 'user',
    'read_only', 'tmpfs', 'stop_signal', 'stop_grace_period', 'deploy',
) + CONFINEMENT_KEYS)
TOP_LEVEL_KEYS = frozenset(('services', 'networks', 'volumes', 'name', 'version'))
NETWORK_KEYS = frozenset(('internal', 'driver', 'name', 'external'))
VOLUME_KEYS = frozenset(('name', 'external', 'driver'))
HEALTHCHECK_KEYS = frozenset(('test', 'interval', 'timeout', 'retries', 'start_period', 'disable'))
VOLUME_LONG_KEYS = frozenset(('type', 'source', 'target', 'read_only'))
PORT_LONG_KEYS = frozenset(('target', 'published', 'host_ip', 'protocol'))
SERVICE_NETWORK_KEYS = frozenset(('aliases',))
DEPENDS_ON_KEYS = frozenset(('condition',))
DEPLOY_KEYS = frozenset(('update_config',))
UPDATE_CONFIG_KEYS = frozenset(('order', 'monitor'))
UPDATE_ORDERS = ('stop-first', 'start-first')
DEPENDS_ON_CONDITIONS = ('service_started', 'service_healthy')
RESTART_RE = re.compile(r'^(no|always|unless-stopped|on-failure(:[0-9]+)?)$')

# compose: project names are lowercase letters, digits, dashes, underscores,
# starting with a letter or digit.
PROJECT_NAME_RE = re.compile(r'^[a-z0-9][a-z0-9_-]*$')
# compose-spec schema: service, network and volume keys.
RESOURCE_KEY_RE = re.compile(r'^[a-zA-Z0-9._-]+$')
# Service names become part of container names: docker requires these to
# start with an alphanumeric character.
SERVICE_NAME_RE = re.compile(r'^[a-zA-Z0-9][a-zA-Z0-9._-]*$')


def normalize_project_name(name):
    """What compose makes of a directory name: lowercase, only [a-z0-9_-], no leading '_' or '-'."""
    name = re.sub(r'[^a-z0-9_-]', '', name.lower())
    return name.lstrip('_-')


def validate_project_name(name, source='project_name'):
    if not isinstance(name, str) or not PROJECT_NAME_RE.match(name):
        raise ComposeError(
            '%s %r is not a valid compose project name: use only lowercase letters, digits, dashes and '
            'underscores, starting with a letter or digit' % (source, name))
    return name


def validate_signal(value):
    """Accept 'SIGHUP', 'HUP', 'sighup' or a number; return what the engine API takes."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip()
        if text.isdigit():
            number = int(text)
        else:
            name = text.upper()
            if not name.startswith('SIG'):
                name = 'SIG' + name
            if not re.match(r'^SIG[A-Z0-9+-]+$', name) or len(name) < 5:
                raise ComposeError('signal %r is not a signal name such as SIGHUP or a signal number' % (value,))
            return name
    if not 1 <= number <= 64:
        raise ComposeError('signal %r is out of range: signal numbers go from 1 to 64' % (value,))
    return str(number)


class Project(object):
    """A validated, normalised compose project.

    ``services``: name -> normalised service definition (dict).
    ``networks`` / ``volumes``: key -> normalised top-level definition, each
    with the engine-side ``name`` resolved.
    """

    def __init__(self, name, working_dir, config_files, services, networks, volumes, origins):
        self.name = name
        self.working_dir = working_dir
        self.config_files = config_files
        self.services = services
        self.networks = networks
        self.volumes = volumes
        self.origins = origins

    def service_names(self):
        return sorted(self.services)


def load_project(project_src, files, project_name=None):
    """Read ``files`` (relative to ``project_src``) from disk and build a Project."""
    if not os.path.isdir(project_src):
        raise ComposeError('project_src %s is not a directory' % project_src)
    working_dir = os.path.abspath(project_src)
    documents = []
    for filename in files:
        path = os.path.normpath(os.path.join(working_dir, filename))
        try:
            with open(path, 'rb') as handle:
                text = handle.read().decode('utf-8')
        except (IOError, OSError) as exc:
            raise ComposeError('cannot read compose file %s: %s' % (path, exc))
        except UnicodeDecodeError as exc:
            raise ComposeError('compose file %s is not UTF-8: %s' % (path, exc))
        documents.append((path, load_yaml(text, path)))
    return build_project(documents, working_dir, project_name)


def build_project(documents, working_dir, project_name=None):
    """Build a Project from already parsed ``(filename, data)`` pairs."""
    if not documents:
        raise ComposeError('no compose files given: set files to at least one file')
    merged = {'services': {}, 'networks': {}, 'volumes': {}}
    origins = {'services': {}, 'networks': {}, 'volumes': {}}
    file_name = None
    file_name_origin = None
    for filename, data in documents:
        for key in data:
            if not isinstance(key, str):
                raise ComposeError('%s: top-level key %r must be a string' % (filename, key))
            if key.startswith('x-'):
                continue
            if key not in TOP_LEVEL_KEYS:
                raise ComposeError(
                    '%s: unsupported top-level key %r; compose_stack supports %s (and x-* extension keys)'
                    % (filename, key, ', '.join(sorted(TOP_LEVEL_KEYS))))
        if 'name' in data:
            if file_name_origin is not None:
                raise ComposeError("top-level key 'name' is defined in both %s and %s; define it in one file only"
                                   % (file_name_origin, filename))
            file_name = data['name']
            file_name_origin = filename
        for section in ('services', 'networks', 'volumes'):
            content = data.get(section)
            if content is None:
                continue
            if not isinstance(content, dict):
                raise ComposeError('%s: %s must be a mapping of names to definitions' % (filename, section))
            for key, value in content.items():
                if not isinstance(key, str):
                    raise ComposeError('%s: %s key %r must be a string' % (filename, section, key))
                if key in merged[section]:
                    raise ComposeError(
                        '%s %r is defined in both %s and %s: each service, network and volume must be defined '
                        'in exactly one file' % (section[:-1], key, origins[section][key], filename))
                merged[section][key] = unescape_tree(value, filename, '%s.%s' % (section, key))
                origins[section][key] = filename

    if project_name:
        name = validate_project_name(project_name)
    elif file_name is not None:
        name = validate_project_name(
            unescape(file_name, file_name_origin, 'name') if isinstance(file_name, str) else file_name,
            "top-level 'name' in %s" % file_name_origin)
    else:
        name = normalize_project_name(os.path.basename(os.path.normpath(working_dir)))
        if not name:
            raise ComposeError('cannot derive a project name from the directory %s: set project_name' % working_dir)
        validate_project_name(name, 'the project name derived from %s,' % working_dir)

    if not merged['services']:
        raise ComposeError('no services defined in %s' % ', '.join(f for f, d in documents))

    networks = {}
    for key, value in merged['networks'].items():
        networks[key] = _parse_top_network(key, value, name, origins['networks'][key])
    volumes = {}
    for key, value in merged['volumes'].items():
        volumes[key] = _parse_top_volume(key, value, name, origins['volumes'][key])

    services = {}
    for key, value in merged['services'].items():
        services[key] = _parse_service(key, value, origins['services'][key], working_dir, networks, volumes)

    # The implicit network of services that name none.
    if any(svc['networks'].get('default') is not None for svc in services.values()) and 'default' not in networks:
        networks['default'] = _parse_top_network('default', None, name, None)

    _check_dependencies(services, origins['services'])

    return Project(
        name=name,
        working_dir=working_dir,
        config_files=[f for f, dummy in documents],
        services=services,
        networks=networks,
        volumes=volumes,
        origins=origins,
    )


def _check_mapping(value, allowed, what, filename):
    """A mapping with only the allowed keys."""
    if not isinstance(value, dict):
        raise ComposeError('%s: %s must be a mapping' % (filename, what))
    _check_keys(value, allowed, what, filename)


def _check_keys(value, allowed, what, filename):
    for key in value:
        if key not in allowed:
            raise ComposeError('%s: unsupported key %r in %s; supported keys there: %s'
                               % (filename, key, what, ', '.join(sorted(allowed))))


def _bool(value, what, filename):
    if not isinstance(value, bool):
        raise ComposeError('%s: %s must be true or false, not %r' % (filename, what, value))
    return value


def _string(value, what, filename, allow_int=False):
    if isinstance(value, str):
        return value
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ComposeError('%s: %s must be a string, not %r' % (filename, what, value))


def _parse_top_resource(kind, key, value, project_name, filename, allowed, own_settings):
    """The part networks and volumes share: key, mapping, external, engine name.

    Returns (value, what, external, engine_name); ``own_settings`` are the keys
    an external resource cannot set.
    """
    what = '%s %r' % (kind, key)
    if not RESOURCE_KEY_RE.match(key):
        raise ComposeError('%s: %s: %s names may only contain letters, digits, ".", "_" and "-"' % (filename, what, kind))
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ComposeError('%s: %s must be a mapping (or empty)' % (filename, what))
    _check_keys(value, allowed, what, filename)
    external = _bool(value.get('external', False), '%s: external' % what, filename)
    if external and any(setting in value for setting in own_settings):
        raise ComposeError('%s: %s is external: %s cannot be set for an external %s'
                           % (filename, what, ' and '.join(own_settings), kind))
    if 'name' in value:
        engine_name = _string(value['name'], '%s: name' % what, filename)
    elif external:
        engine_name = key
    else:
        engine_name = '%s_%s' % (project_name, key)
    return value, what, external, engine_name


def _parse_top_network(key, value, project_name, filename):
    value, what, external, engine_name = _parse_top_resource('network', key, value, project_name, filename,
                                                             NETWORK_KEYS, ('driver', 'internal'))
    return {
        'name': engine_name,
        'external': external,
        'driver': _string(value.get('driver') or 'bridge', '%s: driver' % what, filename),
        'internal': _bool(value.get('internal', False), '%s: internal' % what, filename),
    }


def _parse_top_volume(key, value, project_name, filename):
    value, what, external, engine_name = _parse_top_resource('volume', key, value, project_name, filename,
                                                             VOLUME_KEYS, ('driver',))
    return {
        'name': engine_name,
        'external': external,
        'driver': _string(value.get('driver') or 'local', '%s: driver' % what, filename),
    }


def _parse_service(name, value, filename, working_dir, networks, volumes):
    where = "service %r" % name
    if not SERVICE_NAME_RE.match(name):
        raise ComposeError('%s: %s: service names may only contain letters, digits, ".", "_" and "-", starting '
                           'with a letter or digit' % (filename, where))
    if not isinstance(value, dict):
        raise ComposeError('%s: %s must be a mapping' % (filename, where))
    for key in value:
        if not isinstance(key, str):
            raise ComposeError('%s: %s: key %r must be a string' % (filename, where, key))
        if key.startswith('x-'):
            continue
        if key not in SERVICE_KEYS:
            hint = ''
            if key == 'build':
                hint = ' (compose_stack runs prebuilt images only: build and push the image first)'
            elif key == 'container_name':
                hint = ' (containers are always named <project>-<service>-1)'
            raise ComposeError(
                '%s: unsupported key %r in service %r%s; supported service keys: %s'
                % (filename, key, name, hint, ', '.join(sorted(SERVICE_KEYS))))
    if 'image' not in value:
        raise ComposeError('%s: %s has no image; compose_stack needs an image for every service' % (filename, where))
    image = _string(value['image'], '%s: image' % where, filename)
    if not image.strip() or image != image.strip():
        raise ComposeError('%s: %s: image %r is empty or has surrounding whitespace' % (filename, where, image))

    service = {
        'image': image,
        'command': _parse_command(value.get('command'), '%s: command' % where, filename),
        'entrypoint': _parse_command(value.get('entrypoint'), '%s: entrypoint' % where, filename),
        'environment': _parse_mapping_or_list(value.get('environment'), '%s: environment' % where, filename,
                                              require_value=True),
        'labels': _parse_mapping_or_list(value.get('labels'), '%s: labels' % where, filename, require_value=False),
        'volumes': _parse_volumes(value.get('volumes'), where, filename, working_dir, volumes),
        'ports': _parse_ports(value.get('ports'), where, filename),
        'networks': _parse_service_networks(value.get('networks'), where, filename, networks),
        'restart': _parse_restart(value.get('restart'), where, filename),
        'healthcheck': _parse_healthcheck(value.get('healthcheck'), where, filename),
        'depends_on': _parse_depends_on(value.get('depends_on'), where, filename),
        'user': None,
        'read_only': False,
        'tmpfs': _parse_tmpfs(value.get('tmpfs'), where, filename),
        'stop_signal': None,
        'stop_grace_period': None,
        'update': _parse_deploy(value.get('deploy'), where, filename),
    }
    if service['update']['order'] == 'start-first' and service['ports']:
        raise ComposeError('%s: %s: deploy.update_config.order start-first runs the old and the new container side '
                           'by side, which cannot both publish the same host ports: use stop-first for a service '
                           'with ports' % (filename, where))
    for label in service['labels']:
        if label.startswith('com.docker.compose.') or label == LABEL_DEFINITION:
            raise ComposeError('%s: %s: label %r is reserved: compose_stack sets the com.docker.compose.* labels itself'
                               % (filename, where, label))
    if value.get('user') is not None:
        service['user'] = _string(value['user'], '%s: user' % where, filename, allow_int=True)
    if 'read_only' in value:
        service['read_only'] = _bool(value['read_only'], '%s: read_only' % where, filename)
    if value.get('stop_signal') is not None:
        service['stop_signal'] = validate_signal(_string(value['stop_signal'], '%s: stop_signal' % where, filename,
                                                         allow_int=True))
    if value.get('stop_grace_period') is not None:
        service['stop_grace_period'] = format_duration(
            parse_duration(value['stop_grace_period'], '%s: %s: stop_grace_period' % (filename, where)))
    service.update(parse_confinement(value, where, filename))
    return service


def _parse_command(value, what, filename):
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ComposeError('%s: %s %r cannot be split into words: %s' % (filename, what, value, exc))
    if isinstance(value, list):
        result = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise ComposeError('%s: %s: every list item must be a string, not %r' % (filename, what, item))
            result.append(str(item))
        return result
    raise ComposeError('%s: %s must be a string or a list of strings' % (filename, what))


def _scalar_text(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def _parse_mapping_or_list(value, what, filename, require_value):
    """environment/labels: 'KEY=value' list or KEY: value map -> sorted dict of strings."""
    result = {}
    if value is None:
        return result
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise ComposeError('%s: %s: list items must be "KEY=value" strings, not %r' % (filename, what, item))
            if '=' in item:
                key, val = item.split('=', 1)
            elif require_value:
                raise ComposeError(
                    '%s: %s: %r has no value; taking values from the environment of the compose process is not '
                    'supported, write "%s=value"' % (filename, what, item, item))
            else:
                key, val = item, ''
            if not key:
                raise ComposeError('%s: %s: %r has an empty name' % (filename, what, item))
            if key in result:
                raise ComposeError('%s: %s: %r is set twice' % (filename, what, key))
            result[key] = val
    elif isinstance(value, dict):
        for key, val in value.items():
            if not isinstance(key, str) or not key or '=' in key:
                raise ComposeError('%s: %s: %r is not a valid name' % (filename, what, key))
            if val is None:
                if require_value:
                    raise ComposeError(
                        '%s: %s: %s has no value; taking values from the environment of the compose process is not '
                        'supported, give it a value (use "" for an empty one)' % (filename, what, key))
                val = ''
            if isinstance(val, (dict, list)):
                raise ComposeError('%s: %s: the value of %s must be a string, number or boolean' % (filename, what, key))
            result[key] = _scalar_text(val)
    else:
        raise ComposeError('%s: %s must be a mapping or a list of "KEY=value" strings' % (filename, what))
    return dict(sorted(result.items()))


def _parse_volumes(value, where, filename, working_dir, top_volumes):
    if value is None:
        return []
    if not isinstance(value, list):
        raise ComposeError('%s: %s: volumes must be a list' % (filename, where))
    mounts = []
    targets = {}
    for index, item in enumerate(value):
        what = '%s: volumes[%d]' % (where, index)
        if isinstance(item, str):
            mount = _parse_volume_short(item, what, filename)
        elif isinstance(item, dict):
            mount = _parse_volume_long(item, what, filename)
        else:
            raise ComposeError('%s: %s must be a "source:target[:ro]" string or a mapping' % (filename, what))
        if not mount['target'].startswith('/'):
            raise ComposeError('%s: %s: target %r must be an absolute path inside the container'
                               % (filename, what, mount['target']))
        if mount['type'] == 'bind':
            if mount['source'].startswith('~'):
                raise ComposeError('%s: %s: "~" is not expanded; use an absolute path or one relative to the '
                                   'project directory' % (filename, what))
            mount['source'] = os.path.normpath(os.path.join(working_dir, mount['source']))
        else:
            if mount['source'] not in top_volumes:
                raise ComposeError(
                    '%s: %s refers to volume %r, which is not defined under the top-level volumes key (bind mounts '
                    'start with "/" or ".")' % (filename, what, mount['source']))
        if mount['target'] in targets:
            raise ComposeError('%s: %s: %s is mounted twice' % (filename, where, mount['target']))
        targets[mount['target']] = True
        mounts.append(mount)
    return sorted(mounts, key=lambda m: m['target'])


def _parse_volume_short(item, what, filename):
    parts = item.split(':')
    if len(parts) == 1:
        raise ComposeError(
            '%s: %s %r is an anonymous volume; these are not supported (their data is not kept when a '
            'container is recreated): give a named volume or a host path as source' % (filename, what, item))
    if len(parts) > 3:
        raise ComposeError('%s: %s %r has too many ":"-separated parts; write "source:target[:ro]"'
                           % (filename, what, item))
    source, target = parts[0], parts[1]
    read_only = False
    if len(parts) == 3:
        for option in parts[2].split(','):
            if option == 'ro':
                read_only = True
            elif option == 'rw':
                read_only = False
            else:
                raise ComposeError('%s: %s: mount option %r is not supported; use ro or rw' % (filename, what, option))
    if not source or not target:
        raise ComposeError('%s: %s %r needs both a source and a target' % (filename, what, item))
    kind = 'bind' if source.startswith(('/', '.', '~')) else 'volume'
    return {'type': kind, 'source': source, 'target': target, 'read_only': read_only}


def _parse_volume_long(item, what, filename):
    _check_keys(item, VOLUME_LONG_KEYS, what, filename)
    kind = item.get('type')
    if kind not in ('bind', 'volume'):
        raise ComposeError('%s: %s: type must be bind or volume, not %r' % (filename, what, kind))
    if not item.get('source'):
        raise ComposeError('%s: %s needs a source (anonymous volumes are not supported)' % (filename, what))
    if not item.get('target'):
        raise ComposeError('%s: %s needs a target' % (filename, what))
    return {
        'type': kind,
        'source': _string(item['source'], '%s: source' % what, filename),
        'target': _string(item['target'], '%s: target' % what, filename),
        'read_only': _bool(item.get('read_only', False), '%s: read_only' % what, filename),
    }


def _port_number(text, what, filename, allow_empty=False):
    if text == '' and allow_empty:
        return ''
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str) or not text.isdigit():
        if isinstance(text, str) and '-' in text:
            raise ComposeError('%s: %s: port ranges (%r) are not supported; list each port' % (filename, what, text))
        raise ComposeError('%s: %s: %r is not a port number' % (filename, what, text))
    number = int(text)
    if not 1 <= number <= 65535:
        raise ComposeError('%s: %s: port %d is out of range 1-65535' % (filename, what, number))
    return number


def _host_ip(text, what, filename):
    if text in (None, ''):
        return ''
    try:
        return str(ipaddress.ip_address(_string(text, '%s: host_ip' % what, filename)))
    except ValueError:
        raise ComposeError('%s: %s: %r is not an IP address' % (filename, what, text))


def _parse_ports(value, where, filename):
    if value is None:
        return []
    if not isinstance(value, list):
        raise ComposeError('%s: %s: ports must be a list' % (filename, where))
    result = []
    for index, item in enumerate(value):
        what = '%s: ports[%d]' % (where, index)
        if isinstance(item, dict):
            _check_keys(item, PORT_LONG_KEYS, what, filename)
            if 'target' not in item:
                raise ComposeError('%s: %s needs a target port' % (filename, what))
            published = item.get('published')
            port = {
                'target': _port_number(item['target'], what, filename),
                'published': '' if published is None else str(_port_number(published, what, filename)),
                'host_ip': _host_ip(item.get('host_ip'), what, filename),
                'protocol': _string(item.get('protocol', 'tcp'), '%s: protocol' % what, filename),
            }
        elif isinstance(item, (str, int)) and not isinstance(item, bool):
            port = _parse_port_short(str(item), what, filename)
        else:
            raise ComposeError('%s: %s must be a string like "127.0.0.1:8080:80" or a mapping' % (filename, what))
        if port['protocol'] not in ('tcp', 'udp', 'sctp'):
            raise ComposeError('%s: %s: protocol must be tcp, udp or sctp, not %r' % (filename, what, port['protocol']))
        if port in result:
            raise ComposeError('%s: %s duplicates an earlier port' % (filename, what))
        result.append(port)
    return sorted(result, key=lambda p: (p['target'], p['protocol'], p['host_ip'], p['published']))


def _parse_port_short(text, what, filename):
    protocol = 'tcp'
    if '/' in text:
        text, protocol = text.rsplit('/', 1)
    host_ip = ''
    if text.startswith('['):
        end = text.find(']')
        if end < 0 or text[end + 1:end + 2] != ':':
            raise ComposeError('%s: %s: %r: write IPv6 host addresses as "[::1]:8080:80"' % (filename, what, text))
        host_ip = _host_ip(text[1:end], what, filename)
        rest = text[end + 2:].split(':')
        if len(rest) != 2:
            raise ComposeError('%s: %s: %r: expected "[ip]:published:target"' % (filename, what, text))
        published, target = rest
    else:
        parts = text.split(':')
        if len(parts) == 1:
            published, target = '', parts[0]
        elif len(parts) == 2:
            published, target = parts
        elif len(parts) == 3:
            host_ip = _host_ip(parts[0], what, filename)
            published, target = parts[1], parts[2]
        else:
            raise ComposeError('%s: %s: %r: expected "[host_ip:][published:]target[/protocol]" (IPv6 addresses in '
                               'brackets)' % (filename, what, text))
    published_number = _port_number(published, what, filename, allow_empty=True)
    return {
        'target': _port_number(target, what, filename),
        'published': str(published_number) if published_number != '' else '',
        'host_ip': host_ip,
        'protocol': protocol,
    }


def _parse_service_networks(value, where, filename, networks):
    if value is None:
        return {'default': {'aliases': []}}
    result = {}
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise ComposeError('%s: %s: networks list items must be network names, not %r' % (filename, where, item))
            result[item] = {'aliases': []}
    elif isinstance(value, dict):
        for key, config in value.items():
            what = '%s: networks.%s' % (where, key)
            if config is None:
                config = {}
            if not isinstance(config, dict):
                raise ComposeError('%s: %s must be a mapping (or empty)' % (filename, what))
            _check_keys(config, SERVICE_NETWORK_KEYS, what, filename)
            aliases = config.get('aliases') or []
            if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
                raise ComposeError('%s: %s: aliases must be a list of names' % (filename, what))
            result[key] = {'aliases': sorted(set(aliases))}
    else:
        raise ComposeError('%s: %s: networks must be a list of names or a mapping' % (filename, where))
    if not result:
        raise ComposeError('%s: %s: networks is empty; leave it out to use the default network' % (filename, where))
    for key in result:
        if key not in networks and key != 'default':
            raise ComposeError('%s: %s refers to network %r, which is not defined under the top-level networks key'
                               % (filename, where, key))
    return dict(sorted(result.items()))


def _parse_restart(value, where, filename):
    if value is None:
        return 'no'
    if value is False:
        return 'no'
    if not isinstance(value, str) or not RESTART_RE.match(value):
        raise ComposeError('%s: %s: restart must be no, always, unless-stopped or on-failure[:N], not %r'
                           % (filename, where, value))
    return value


def _parse_healthcheck(value, where, filename):
    if value is None:
        return None
    what = '%s: healthcheck' % where
    _check_mapping(value, HEALTHCHECK_KEYS, what, filename)
    if value.get('disable'):
        if set(value) - set(['disable']):
            raise ComposeError('%s: %s: disable: true cannot be combined with other settings' % (filename, what))
        return {'test': ['NONE']}
    result = {}
    test = value.get('test')
    if test is None:
        raise ComposeError('%s: %s needs a test' % (filename, what))
    if isinstance(test, str):
        result['test'] = ['CMD-SHELL', test]
    elif isinstance(test, list) and test and all(isinstance(t, str) for t in test):
        if test[0] not in ('CMD', 'CMD-SHELL', 'NONE'):
            raise ComposeError('%s: %s: a test list must start with CMD, CMD-SHELL or NONE, not %r'
                               % (filename, what, test[0]))
        result['test'] = list(test)
    else:
        raise ComposeError('%s: %s: test must be a string or a list of strings' % (filename, what))
    for key in ('interval', 'timeout', 'start_period'):
        if value.get(key) is not None:
            result[key] = format_duration(parse_duration(value[key], '%s: %s: %s' % (filename, what, key)))
    if value.get('retries') is not None:
        retries = value['retries']
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ComposeError('%s: %s: retries must be a whole number' % (filename, what))
        result['retries'] = retries
    return result


def _parse_deploy(value, where, filename):
    """How a container is replaced: deploy.update_config.order and .monitor, as in the compose spec.

    Not part of the container's definition: changing it recreates nothing.
    """
    update = {'order': 'stop-first', 'monitor': None}
    if value is None:
        return update
    what = '%s: deploy' % where
    _check_mapping(value, DEPLOY_KEYS, what, filename)
    config = value.get('update_config') or {}
    what += '.update_config'
    _check_mapping(config, UPDATE_CONFIG_KEYS, what, filename)
    if config.get('order') is not None:
        if config['order'] not in UPDATE_ORDERS:
            raise ComposeError('%s: %s: order must be one of %s, not %r'
                               % (filename, what, ', '.join(UPDATE_ORDERS), config['order']))
        update['order'] = config['order']
    if config.get('monitor') is not None:
        update['monitor'] = format_duration(parse_duration(config['monitor'], '%s: %s: monitor' % (filename, what)))
    return update


def _parse_depends_on(value, where, filename):
    if value is None:
        return {}
    result = {}
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise ComposeError('%s: %s: depends_on list items must be service names' % (filename, where))
            result[item] = {'condition': 'service_started'}
    elif isinstance(value, dict):
        for key, config in value.items():
            what = '%s: depends_on.%s' % (where, key)
            if config is None:
                config = {}
            _check_mapping(config, DEPENDS_ON_KEYS, what, filename)
            condition = config.get('condition', 'service_started')
            if condition not in DEPENDS_ON_CONDITIONS:
                raise ComposeError('%s: %s: condition must be one of %s, not %r'
                                   % (filename, what, ', '.join(DEPENDS_ON_CONDITIONS), condition))
            result[key] = {'condition': condition}
    else:
        raise ComposeError('%s: %s: depends_on must be a list of service names or a mapping' % (filename, where))
    return dict(sorted(result.items()))


def _parse_tmpfs(value, where, filename):
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.startswith('/') for i in items):
        raise ComposeError('%s: %s: tmpfs must be an absolute path or a list of them' % (filename, where))
    return sorted(set(items))


def _check_dependencies(services, origins):
    for name, service in services.items():
        for dep in service['depends_on']:
            if dep == name:
                raise ComposeError('%s: service %r depends on itself' % (origins[name], name))
            if dep not in services:
                raise ComposeError('%s: service %r depends on %r, which is not defined'
                                   % (origins[name], name, dep))
    start_order(services)


def start_order(services, names=None):
    """Services in dependency order (dependencies first, ties by name); raises on cycles."""
    names = sorted(services) if names is None else sorted(names)
    order = []
    state = {}

    def visit(name, path):
        if state.get(name) == 'done':
            return
        if state.get(name) == 'visiting':
            cycle = path[path.index(name):] + [name]
            raise ComposeError('depends_on forms a cycle: %s' % ' -> '.join(cycle))
        state[name] = 'visiting'
        for dep in sorted(services[name]['depends_on']):
            visit(dep, path + [name])
        state[name] = 'done'
        order.append(name)

    for name in names:
        visit(name, [])
    wanted = set(names)
    return [n for n in order if n in wanted]


def with_dependencies(project, names):
    """``names`` plus everything they depend on, transitively."""
    result = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in result:
            continue
        result.add(name)
        stack.extend(project.services[name]['depends_on'])
    return result


def select_services(project, names, include_dependencies):
    if not names:
        return set(project.services)
    unknown = sorted(set(names) - set(project.services))
    if unknown:
        raise ComposeError('services %s are not defined in the project; defined services: %s'
                           % (', '.join(unknown), ', '.join(project.service_names())))
    if include_dependencies:
        return with_dependencies(project, names)
    return set(names)
