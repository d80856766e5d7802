# Copyright (c) selfhosted.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reading compose files for selfhosted.registry.compose_stack: the YAML loader,
'$$' unescaping, durations, and the error every compose module raises.

Private module: the interface may change without notice. Pure: no engine.
"""

from __future__ import annotations

import re
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


class ComposeError(Exception):
    """A compose file or module input that cannot be used, with the fix in the message."""


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


_DOLLAR_RE = re.compile(r'\$(\$|\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*|.?)', re.S)


def unescape(value, filename, path):
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


def unescape_tree(value, filename, path):
    if isinstance(value, str):
        return unescape(value, filename, path)
    if isinstance(value, dict):
        return dict((k, unescape_tree(v, filename, '%s.%s' % (path, k))) for k, v in value.items())
    if isinstance(value, list):
        return [unescape_tree(v, filename, '%s[%d]' % (path, i)) for i, v in enumerate(value)]
    return value
