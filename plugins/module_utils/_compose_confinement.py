# Copyright (c) selfhosted.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The service keys that confine a container: its capabilities, security
options and resource limits (cap_add, cap_drop, security_opt, pids_limit,
mem_limit, ulimits), validated and normalised for the resolved spec, and
their Docker API options.

A key is in a service's spec only when the service sets it: the spec, and so
the config hash, of a service that sets none stays what it was before these
keys were supported, and its container is not recreated for them.

Private module: the interface may change without notice. Pure: no engine.
"""

from __future__ import annotations

import re

from ansible_collections.selfhosted.registry.plugins.module_utils._compose_load import ComposeError

CONFINEMENT_KEYS = ('cap_add', 'cap_drop', 'security_opt', 'pids_limit', 'mem_limit', 'ulimits')

# Linux capabilities (capabilities(7)) as the engine names them, without CAP_.
CAPABILITIES = frozenset((
    'AUDIT_CONTROL', 'AUDIT_READ', 'AUDIT_WRITE', 'BLOCK_SUSPEND', 'BPF', 'CHECKPOINT_RESTORE', 'CHOWN',
    'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'IPC_LOCK', 'IPC_OWNER', 'KILL', 'LEASE',
    'LINUX_IMMUTABLE', 'MAC_ADMIN', 'MAC_OVERRIDE', 'MKNOD', 'NET_ADMIN', 'NET_BIND_SERVICE', 'NET_BROADCAST',
    'NET_RAW', 'PERFMON', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYSLOG', 'SYS_ADMIN', 'SYS_BOOT',
    'SYS_CHROOT', 'SYS_MODULE', 'SYS_NICE', 'SYS_PACCT', 'SYS_PTRACE', 'SYS_RAWIO', 'SYS_RESOURCE', 'SYS_TIME',
    'SYS_TTY_CONFIG', 'WAKE_ALARM', 'ALL',
))
# The resource limits the engine sets (moby's ulimit names).
ULIMITS = frozenset((
    'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio',
    'rttime', 'sigpending', 'stack',
))
ULIMIT_KEYS = frozenset(('soft', 'hard'))
# compose's byte values: a number with an optional unit, 1024-based.
BYTES_RE = re.compile(r'^([0-9]+)\s*(b|k|kb|m|mb|g|gb)?$', re.IGNORECASE)
BYTE_UNITS = {'b': 1, 'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}
# The engine refuses a smaller memory limit.
MIN_MEMORY_BYTES = 6 << 20


def parse_confinement(value, where, filename):
    """The confinement keys the service mapping `value` sets, normalised; keys it does not set are left out."""
    parsers = {
        'cap_add': _parse_capabilities,
        'cap_drop': _parse_capabilities,
        'security_opt': _parse_security_opt,
        'pids_limit': _parse_pids_limit,
        'mem_limit': parse_memory_limit,
        'ulimits': _parse_ulimits,
    }
    return {key: parsers[key](value[key], '%s: %s: %s' % (filename, where, key))
            for key in CONFINEMENT_KEYS if value.get(key) is not None}


def host_config_options(spec):
    """The keyword arguments of APIClient.create_host_config for the confinement keys of a resolved spec."""
    # The SDK takes each key under its compose name, but ulimits as a list.
    options = {key: spec[key] for key in CONFINEMENT_KEYS if key in spec and key != 'ulimits'}
    if 'ulimits' in spec:
        options['ulimits'] = [{'Name': name, 'Soft': limit['soft'], 'Hard': limit['hard']}
                              for name, limit in sorted(spec['ulimits'].items())]
    return options


def _parse_capabilities(value, what):
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ComposeError('%s must be a list of capability names, such as [CHOWN, NET_BIND_SERVICE] or [ALL]' % what)
    names = set()
    for item in value:
        name = item.strip().upper()
        if name.startswith('CAP_'):
            name = name[len('CAP_'):]
        if name not in CAPABILITIES:
            raise ComposeError('%s: %r is not a Linux capability (capabilities(7), with or without CAP_, or ALL)'
                               % (what, item))
        names.add(name)
    return sorted(names)


def _parse_security_opt(value, what):
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ComposeError('%s must be a list of options, such as ["no-new-privileges:true"]' % what)
    return list(value)


def _int(value, what, hint):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ComposeError('%s must be %s, not %r' % (what, hint, value))
    return value


def _parse_pids_limit(value, what):
    hint = 'a positive number of processes, or -1 for no limit'
    limit = _int(value, what, hint)
    if limit == 0 or limit < -1:
        raise ComposeError('%s must be %s, not %r' % (what, hint, value))
    return limit


def parse_memory_limit(value, what):
    """Bytes from a number or a compose byte value ("512m", "1g"), at least what the engine accepts."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = BYTES_RE.match(value.strip()) if isinstance(value, str) else None
        if not match:
            raise ComposeError('%s must be a number of bytes or a byte value such as 512m or 1g, not %r'
                               % (what, value))
        number = int(match.group(1)) * BYTE_UNITS[(match.group(2) or 'b')[0].lower()]
    if number < MIN_MEMORY_BYTES:
        raise ComposeError('%s must be at least 6m (the engine refuses less), not %r' % (what, value))
    return number


def _parse_ulimits(value, what):
    if not isinstance(value, dict):
        raise ComposeError('%s must be a mapping of limit names to a number or {soft, hard}' % what)
    limits = {}
    for name, limit in value.items():
        item = '%s.%s' % (what, name)
        if name not in ULIMITS:
            raise ComposeError('%s: unknown limit %r; known limits: %s' % (what, name, ', '.join(sorted(ULIMITS))))
        if isinstance(limit, dict):
            if set(limit) != ULIMIT_KEYS:
                raise ComposeError('%s must have both soft and hard, and nothing else' % item)
            soft = _int(limit['soft'], '%s.soft' % item, 'a whole number')
            hard = _int(limit['hard'], '%s.hard' % item, 'a whole number')
        else:
            soft = hard = _int(limit, item, 'a whole number or {soft, hard}')
        if soft < 0 or soft > hard:
            raise ComposeError('%s: soft (%d) must be from 0 to hard (%d)' % (item, soft, hard))
        limits[name] = {'soft': soft, 'hard': hard}
    return dict(sorted(limits.items()))
