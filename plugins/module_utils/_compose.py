# Copyright (c) selfhosted.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure compose-file logic for selfhosted.registry.compose_stack.

Private module: the interface may change without notice. Nothing in here
talks to the Docker engine, so everything can be unit-tested on its own:

* loading compose files (a YAML 1.2-like loader, duplicate keys rejected),
* validating and normalising the supported subset of the compose spec,
* the union of several files,
* resolving each service into an engine-facing ``spec``,
* config hashing, planning the per-service actions, and diffing.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import os
import re
import shlex
import traceback

try:
    import yaml
except ImportError:  # pragma: no cover - exercised on hosts without PyYAML
    yaml = None
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_YAML = True
    YAML_IMPORT_ERROR = None


# Labels compose v2 writes and reads (github.com/docker/compose pkg/api/labels.go).
LABEL_PROJECT = 'com.docker.compose.project'
LABEL_SERVICE = 'com.docker.compose.service'
LABEL_CONFIG_HASH = 'com.docker.compose.config-hash'
LABEL_CONTAINER_NUMBER = 'com.docker.compose.container-number'
LABEL_ONEOFF = 'com.docker.compose.oneoff'
LABEL_WORKING_DIR = 'com.docker.compose.project.working_dir'
LABEL_CONFIG_FILES = 'com.docker.compose.project.config_files'
LABEL_VERSION = 'com.docker.compose.version'
LABEL_IMAGE = 'com.docker.compose.image'
LABEL_DEPENDS_ON = 'com.docker.compose.depends_on'
LABEL_NETWORK = 'com.docker.compose.network'
LABEL_VOLUME = 'com.docker.compose.volume'
# Our own label: the resolved service spec the container was created from, so
# that --diff can show what changed. Not read by compose.
LABEL_DEFINITION = 'io.selfhosted.registry.compose-stack.definition'

# Value written to com.docker.compose.version: the compose release whose
# container layout (names, labels, aliases) this module reproduces.
COMPOSE_COMPAT_VERSION = '2.26.1'

# Bumped whenever the normalised spec changes shape, so containers created by
# an older normalisation are recreated once rather than compared wrongly.
SPEC_FORMAT = 1

SERVICE_KEYS = frozenset((
    'image', 'command', 'entrypoint', 'environment', 'volumes', 'ports',
    'networks', 'restart', 'healthcheck', 'depends_on', 'labels', 'user',
    'read_only', 'tmpfs', 'stop_signal', 'stop_grace_period', 'deploy',
))
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


class ComposeError(Exception):
    """A compose file or module input that cannot be used, with the fix in the message."""


# ---------------------------------------------------------------------------
# YAML loading
# ---------------------------------------------------------------------------

_INT_RE = re.compile(r'^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$')
_FLOAT_RE = re.compile(
    r'^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?'
    r'|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$')
_BOOL_RE = re.compile(r'^(?:true|True|TRUE|false|False|FALSE)$')
_NULL_RE = re.compile(r'^(?:~|null|Null|NULL|)$')

_LOADER = None


def _build_loader():
    """A SafeLoader with YAML 1.2 core-schema scalars and no duplicate keys.

    PyYAML implements YAML 1.1: there ``8080:50`` is the integer 483050,
    ``no`` is False and ``2024-01-01`` is a date. The compose CLI reads YAML
    1.2, where all three are strings. Resolving like 1.2 keeps the meaning of a
    file the same for this module and for ``docker compose``.
    """

    class ComposeLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
        yaml_implicit_resolvers = {}

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen = {}
                for key_node, dummy in node.value:
                    if key_node.tag == 'tag:yaml.org,2002:merge':
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        hash(key)
                    except TypeError:
                        continue
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            'while constructing a mapping', node.start_mark,
                            'found duplicate key %r (first defined on line %d)' % (key, seen[key] + 1),
                            key_node.start_mark)
                    seen[key] = key_node.start_mark.line
            return super(ComposeLoader, self).construct_mapping(node, deep=deep)

    def construct_int(loader, node):
        value = loader.construct_scalar(node)
        if value.startswith('0o'):
            return int(value[2:], 8)
        if value.startswith('0x'):
            return int(value[2:], 16)
        return int(value, 10)

    ComposeLoader.add_implicit_resolver('tag:yaml.org,2002:null', _NULL_RE, ['~', 'n', 'N', ''])
    ComposeLoader.add_implicit_resolver('tag:yaml.org,2002:bool', _BOOL_RE, list('tTfF'))
    ComposeLoader.add_implicit_resolver('tag:yaml.org,2002:int', _INT_RE, list('-+0123456789'))
    ComposeLoader.add_implicit_resolver('tag:yaml.org,2002:float', _FLOAT_RE, list('-+0123456789.'))
    ComposeLoader.add_implicit_resolver('tag:yaml.org,2002:merge', re.compile(r'^(?:<<)$'), ['<'])
    ComposeLoader.add_constructor('tag:yaml.org,2002:int', construct_int)
    return ComposeLoader


def load_yaml(text, filename):
    """Parse one compose file's text; raise ComposeError naming the file."""
    global _LOADER  # pylint: disable=global-statement
    if not HAS_YAML:
        raise ComposeError('PyYAML is required to read compose files')
    if _LOADER is None:
        _LOADER = _build_loader()
    try:
        data = yaml.load(text, Loader=_LOADER)  # nosec B506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ComposeError('%s is not valid YAML: %s' % (filename, exc))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ComposeError('%s: the top level of a compose file must be a mapping, not %s'
                           % (filename, type(data).__name__))
    return data


# ---------------------------------------------------------------------------
# Small value parsers
# ---------------------------------------------------------------------------

_DURATION_UNITS = (
    ('ns', 1),
    ('us', 1000),
    ('\u00b5s', 1000),
    ('ms', 1000 * 1000),
    ('s', 1000 * 1000 * 1000),
    ('m', 60 * 1000 * 1000 * 1000),
    ('h', 60 * 60 * 1000 * 1000 * 1000),
)
_DURATION_PART_RE = re.compile(r'([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|ms|s|m|h)')


def parse_duration(value, where='duration'):
    """Parse a compose/Go duration ('30s', '1m30s', '1.5h', '250ms') into nanoseconds."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ComposeError('%s: %r is not a duration; write it as a string with a unit, like "30s" or "1m30s"'
                           % (where, value))
    text = value.strip()
    if text == '0':
        return 0
    if not text:
        raise ComposeError('%s: empty duration; write it like "30s" or "1m30s"' % where)
    units = dict(_DURATION_UNITS)
    pos = 0
    total = 0
    while pos < len(text):
        match = _DURATION_PART_RE.match(text, pos)
        if not match:
            raise ComposeError('%s: %r is not a valid duration; use numbers with the units h, m, s, ms, us or ns, '
                               'like "1m30s"' % (where, value))
        number, unit = match.group(1), match.group(2)
        if '.' in number:
            whole, frac = number.split('.', 1)
            scale = units[unit]
            total += int(whole or '0') * scale
            if frac:
                total += int(frac) * scale // (10 ** len(frac))
        else:
            total += int(number) * units[unit]
        pos = match.end()
    return total


def format_duration(nanoseconds):
    """Canonical text for a duration in nanoseconds, in the style of Go's Duration.String()."""
    if nanoseconds == 0:
        return '0s'
    if nanoseconds < 1000 * 1000 * 1000:
        for unit, scale in (('ms', 1000 * 1000), ('us', 1000), ('ns', 1)):
            if nanoseconds >= scale:
                return _format_fraction(nanoseconds, scale) + unit
    hours, rest = divmod(nanoseconds, 3600 * 10 ** 9)
    minutes, rest = divmod(rest, 60 * 10 ** 9)
    text = ''
    if hours:
        text += '%dh' % hours
    if hours or minutes:
        text += '%dm' % minutes
    return text + _format_fraction(rest, 10 ** 9) + 's'


def _format_fraction(value, scale):
    whole, frac = divmod(value, scale)
    if not frac:
        return str(whole)
    digits = len(str(scale)) - 1
    return ('%d.%0*d' % (whole, digits, frac)).rstrip('0')


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


# ---------------------------------------------------------------------------
# Variable interpolation: not supported, '$$' is a literal '$'
# ---------------------------------------------------------------------------

_DOLLAR_RE = re.compile(r'\$(\$|\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*|.?)', re.S)


def _unescape(value, filename, path):
    """Resolve '$$' to '$'; any other '$' is compose interpolation, which this module rejects."""
    if '$' not in value:
        return value

    def replace(match):
        if match.group(1) == '$':
            return '$'
        raise ComposeError(
            '%s: %s contains %r: variable interpolation is not supported by compose_stack. '
            'Render the final value (for example with a Jinja template) or write "$$" for a literal "$".'
            % (filename, path, match.group(0)))
    return _DOLLAR_RE.sub(replace, value)


def _unescape_tree(value, filename, path):
    if isinstance(value, str):
        return _unescape(value, filename, path)
    if isinstance(value, dict):
        return dict((k, _unescape_tree(v, filename, '%s.%s' % (path, k))) for k, v in value.items())
    if isinstance(value, list):
        return [_unescape_tree(v, filename, '%s[%d]' % (path, i)) for i, v in enumerate(value)]
    return value


# ---------------------------------------------------------------------------
# Project loading: union of files, validation, normalisation
# ---------------------------------------------------------------------------

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
                merged[section][key] = _unescape_tree(value, filename, '%s.%s' % (section, key))
                origins[section][key] = filename

    if project_name:
        name = validate_project_name(project_name)
    elif file_name is not None:
        name = validate_project_name(
            _unescape(file_name, file_name_origin, 'name') if isinstance(file_name, str) else file_name,
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


# ---------------------------------------------------------------------------
# Resolution into the engine-facing spec, hashing, labels
# ---------------------------------------------------------------------------

def container_name(project_name, service_name, number=1):
    return '%s-%s-%d' % (project_name, service_name, number)


def resolve_service(project, service_name):
    """The engine-facing spec of a service: what its container is created from.

    Names are resolved (networks and volumes to their engine names, bind
    sources to absolute paths); ``depends_on`` is left out, as compose leaves
    it out of its config hash.
    """
    service = project.services[service_name]
    mounts = []
    for mount in service['volumes']:
        mount = dict(mount)
        if mount['type'] == 'volume':
            mount['source'] = project.volumes[mount['source']]['name']
        mounts.append(mount)
    networks = {}
    for key, config in service['networks'].items():
        aliases = set(config['aliases'])
        aliases.add(service_name)
        aliases.add(container_name(project.name, service_name))
        networks[project.networks[key]['name']] = {'aliases': sorted(aliases)}
    spec = {
        'format': SPEC_FORMAT,
        'image': service['image'],
        'command': service['command'],
        'entrypoint': service['entrypoint'],
        'environment': dict(service['environment']),
        'labels': dict(service['labels']),
        'mounts': mounts,
        'ports': [dict(p) for p in service['ports']],
        'networks': networks,
        'restart': service['restart'],
        'healthcheck': copy.deepcopy(service['healthcheck']),
        'user': service['user'],
        'read_only': service['read_only'],
        'tmpfs': list(service['tmpfs']),
        'stop_signal': service['stop_signal'],
        'stop_grace_period': service['stop_grace_period'],
    }
    return spec


def canonical_json(data):
    return json.dumps(data, sort_keys=True, separators=(',', ':'), ensure_ascii=True)


def config_hash(spec, image_id):
    """sha256 over the resolved spec and the image ID it runs."""
    payload = canonical_json({'spec': spec, 'image_id': image_id})
    return hashlib.sha256(payload.encode('utf-8')).hexdigest()


def depends_on_label(service):
    """com.docker.compose.depends_on as compose v2 writes it: 'svc:condition:restart', comma separated."""
    return ','.join('%s:%s:false' % (name, dep['condition']) for name, dep in sorted(service['depends_on'].items()))


def container_labels(project, service_name, spec, image_id):
    labels = dict(spec['labels'])
    labels.update({
        LABEL_PROJECT: project.name,
        LABEL_SERVICE: service_name,
        LABEL_CONTAINER_NUMBER: '1',
        LABEL_ONEOFF: 'False',
        LABEL_WORKING_DIR: project.working_dir,
        LABEL_CONFIG_FILES: ','.join(project.config_files),
        LABEL_VERSION: COMPOSE_COMPAT_VERSION,
        LABEL_IMAGE: image_id,
        LABEL_DEPENDS_ON: depends_on_label(project.services[service_name]),
        LABEL_CONFIG_HASH: config_hash(spec, image_id),
        LABEL_DEFINITION: canonical_json(spec),
    })
    return labels


def resource_labels(project, kind, key):
    return {
        LABEL_PROJECT: project.name,
        LABEL_NETWORK if kind == 'network' else LABEL_VOLUME: key,
        LABEL_VERSION: COMPOSE_COMPAT_VERSION,
    }


def stop_timeout_seconds(spec, default=10):
    if spec and spec.get('stop_grace_period'):
        return int(parse_duration(spec['stop_grace_period']) // 10 ** 9)
    return default


def read_definition_label(labels):
    """The spec stored on a container by this module, or None."""
    text = (labels or {}).get(LABEL_DEFINITION)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------
# Diffing and planning
# ---------------------------------------------------------------------------

_MISSING = object()


def diff_values(before, after):
    """Only what differs between two JSON-like values.

    Returns ``(before_part, after_part)``; for dicts, recursively only the
    differing keys (a key missing on one side is left out there). None, None
    when equal.
    """
    parts = _diff(before, after)
    return (None, None) if parts is None else parts


def _diff(before, after):
    if before == after:
        return None
    if isinstance(before, dict) and isinstance(after, dict):
        old, new = {}, {}
        for key in sorted(set(before) | set(after)):
            value_b = before.get(key, _MISSING)
            value_a = after.get(key, _MISSING)
            if value_b is _MISSING:
                new[key] = value_a
            elif value_a is _MISSING:
                old[key] = value_b
            else:
                parts = _diff(value_b, value_a)
                if parts is not None:
                    old[key], new[key] = parts
        return old, new
    return before, after


def service_diff(old_spec, old_image_id, new_spec, new_image_id):
    before = dict(old_spec or {})
    after = dict(new_spec or {})
    before['image_id'] = old_image_id
    after['image_id'] = new_image_id
    old, new = diff_values(before, after)
    return old or {}, new or {}


def plan_services(project, selected, state, observed, image_ids, signal=None, signal_targets=None,
                  forced_recreate=None):
    """Decide the action of each selected service. Pure: no engine access.

    ``observed``: service -> container record (``id``, ``name``, ``running``,
    ``status``, ``labels``, ``image_id``) or None.
    ``image_ids``: image reference -> local image ID, None when the image is
    not there (check mode, before a pull).
    ``forced_recreate``: service -> reason, for services whose container must
    be replaced for reasons outside its spec (a network that is recreated).

    Returns service -> dict(action, reason, before, after, spec, hash, image_id)
    in the order the actions are carried out.
    """
    forced_recreate = forced_recreate or {}
    signal_targets = set(signal_targets or ())
    if state in ('present', 'restarted'):
        order = start_order(project.services, selected)
    else:
        order = list(reversed(start_order(project.services, selected)))
    plan = {}
    for name in order:
        current = observed.get(name)
        entry = {'action': 'unchanged', 'reason': None, 'before': {}, 'after': {},
                 'spec': None, 'hash': None, 'image_id': None}
        if state in ('present', 'restarted'):
            spec = resolve_service(project, name)
            image_id = image_ids.get(spec['image'])
            entry.update(spec=spec, image_id=image_id,
                         hash=config_hash(spec, image_id) if image_id else None)
            _plan_converge(entry, current, state, name in signal_targets and signal, forced_recreate.get(name))
        elif state == 'stopped':
            if current is not None and current['running']:
                entry.update(action='stopped', reason='container is running',
                             before={'state': current['status']}, after={'state': 'exited'})
        elif state == 'absent':
            if current is not None:
                entry.update(action='removed', reason='container exists',
                             before={'state': current['status']}, after={'state': 'absent'})
        else:
            raise ComposeError('unknown state %r' % state)
        plan[name] = entry
    return plan


def _plan_converge(entry, current, state, signal, forced_reason):
    spec, image_id = entry['spec'], entry['image_id']
    if current is None:
        after = dict(spec)
        after['image_id'] = image_id or '(pulled when the module runs)'
        after['state'] = 'running'
        entry.update(action='created', reason='no container for the service', before={'state': 'absent'},
                     after=after)
        return
    labels = current.get('labels') or {}
    old_spec = read_definition_label(labels)
    old_image_id = labels.get(LABEL_IMAGE) or current.get('image_id')
    reason = None
    if forced_reason:
        reason = forced_reason
    elif image_id is None:
        reason = 'image %s is not present yet' % spec['image']
    elif labels.get(LABEL_CONFIG_HASH) != entry['hash']:
        if old_spec is None:
            reason = 'container was not created by compose_stack'
        elif old_image_id != image_id and old_spec == spec:
            reason = 'image changed'
        else:
            reason = 'definition changed'
    if reason:
        if old_spec is None:
            before = {'definition': '(unknown: %s)' % reason}
            after = dict(spec)
            after['image_id'] = image_id
        else:
            before, after = service_diff(old_spec, old_image_id, spec, image_id or '(pulled when the module runs)')
        if forced_reason and not before and not after:
            before, after = {'recreate': None}, {'recreate': forced_reason}
        entry.update(action='recreated', reason=reason, before=before, after=after)
        return
    if not current['running']:
        entry.update(action='started', reason='container is %s' % current['status'],
                     before={'state': current['status']}, after={'state': 'running'})
        return
    if state == 'restarted':
        entry.update(action='restarted', reason='state=restarted',
                     before={'state': 'running'}, after={'state': 'restarted'})
        return
    if signal:
        entry.update(action='signaled', reason='signal %s requested' % signal,
                     before={}, after={'signal': signal})


# ---------------------------------------------------------------------------
# Networks and volumes
# ---------------------------------------------------------------------------

def _describe_change(before, after):
    return ', '.join('%s %s -> %s' % (key, before[key], after[key]) for key in sorted(after) if before.get(key) != after[key])


def _require_external(kind, name, key, current):
    if current is None:
        raise ComposeError('%s %s (%r in the compose files) is external but does not exist: create it first, or '
                           'drop external: true' % (kind, name, key))


def plan_networks(project, selected, existing, observed, others):
    """Decide what happens to each network the selected services use. Pure: no engine access.

    ``existing``: engine network name -> ``docker network inspect`` of it, or
    None when it does not exist. ``observed``: service -> current container
    record; ``others``: the project's other container records (each with
    ``id``, ``name``, ``service``, ``networks``).

    Returns dict(actions={name: created|recreated|unchanged},
    diffs=[(name, before, after)], forced={service: reason} (containers to
    recreate because their network is), reattach={name: [records]}
    (containers to reconnect to the new network), keys={name: key},
    warnings=[...]). External networks get no action. Raises ComposeError.
    """
    plan = dict(actions={}, diffs=[], forced={}, reattach={}, keys={}, warnings=[])
    keys = sorted(set(key for service in selected for key in project.services[service]['networks']))
    for key in keys:
        net = project.networks[key]
        name = net['name']
        current = existing.get(name)
        plan['keys'][name] = key
        plan['reattach'][name] = []
        if net['external']:
            _require_external('network', name, key, current)
            continue
        if current is None:
            plan['actions'][name] = 'created'
            plan['diffs'].append((name, {'state': 'absent'},
                                  {'state': 'present', 'driver': net['driver'], 'internal': net['internal']}))
            continue
        if (current.get('Labels') or {}).get(LABEL_PROJECT) != project.name:
            plan['warnings'].append('network %s exists but was not created for project %s; it is used as it is. '
                                    'Set external: true to make that explicit.' % (name, project.name))
            plan['actions'][name] = 'unchanged'
            continue
        before = {'driver': current.get('Driver'), 'internal': bool(current.get('Internal'))}
        after = {'driver': net['driver'], 'internal': net['internal']}
        if before == after:
            plan['actions'][name] = 'unchanged'
            continue
        # The network is replaced. Containers of the selected services on it are recreated; other containers of
        # the project (services not selected, or defined in other files) are reconnected to the new one.
        records = list(observed.values()) + list(others)
        project_ids = set(record['id'] for record in records)
        foreign = sorted(container.get('Name', container_id)
                         for container_id, container in (current.get('Containers') or {}).items()
                         if container_id not in project_ids)
        if foreign:
            raise ComposeError('network %s changed (%s) and must be recreated, but containers outside project %s '
                               'use it: %s. Disconnect them first.'
                               % (name, _describe_change(before, after), project.name, ', '.join(foreign)))
        plan['actions'][name] = 'recreated'
        plan['diffs'].append((name,) + diff_values(before, after))
        for record in records:
            if name not in record['networks']:
                continue
            if record['service'] in selected and observed.get(record['service']) is record:
                plan['forced'][record['service']] = 'network %s is recreated' % name
            else:
                plan['reattach'][name].append(record)
    return plan


def plan_volumes(project, selected, existing):
    """Decide what happens to each named volume the selected services mount. Pure: no engine access.

    ``existing``: engine volume name -> ``docker volume inspect`` of it, or
    None. Returns dict(actions={name: created|unchanged}, diffs=[(name,
    before, after)], keys={name: key}). External volumes get no action.
    Volumes are never replaced: a driver change raises ComposeError.
    """
    plan = dict(actions={}, diffs=[], keys={})
    keys = sorted(set(mount['source'] for service in selected for mount in project.services[service]['volumes']
                      if mount['type'] == 'volume'))
    for key in keys:
        vol = project.volumes[key]
        name = vol['name']
        current = existing.get(name)
        plan['keys'][name] = key
        if vol['external']:
            _require_external('volume', name, key, current)
            continue
        if current is None:
            plan['actions'][name] = 'created'
            plan['diffs'].append((name, {'state': 'absent'}, {'state': 'present', 'driver': vol['driver']}))
        elif current.get('Driver') != vol['driver']:
            raise ComposeError('volume %s exists with driver %s, but the compose files ask for %s. Volumes are '
                               'never replaced implicitly: move the data and remove the volume yourself'
                               % (name, current.get('Driver'), vol['driver']))
        else:
            plan['actions'][name] = 'unchanged'
    return plan
