# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Logins in a Docker client configuration file (config.json), as `docker login` keeps them.

Pure functions: what the file says, and what it must say after a login or a
logout. The module reads and writes the file; nothing here does I/O.
"""

from __future__ import annotations

import base64
import json


class LoginError(Exception):
    """A configuration file the module must not change, or cannot read."""


def auth_value(username, password):
    """The `auth` entry `docker login` writes: base64 of user:password."""
    return base64.b64encode(('%s:%s' % (username, password)).encode('utf-8')).decode('ascii')


def login_user(entry):
    """The user name an `auths` entry logs in as, or None (no usable `auth`)."""
    try:
        decoded = base64.b64decode(entry.get('auth', ''), validate=True).decode('utf-8')
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    user, sep, _password = decoded.partition(':')
    return user if sep else None


def parse_config(text, path):
    """The file's JSON object; an empty or missing file is an empty one."""
    if text is None or not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as error:
        raise LoginError('%s is not valid JSON (%s): fix or remove it; docker would not read it either' % (path, error))
    if not isinstance(config, dict):
        raise LoginError('%s must hold a JSON object, not %s' % (path, type(config).__name__))
    auths = config.get('auths', {})
    if not isinstance(auths, dict):
        raise LoginError('%s: "auths" must be a JSON object' % path)
    return config


def helper_for(config, registry):
    """The credential helper that docker would use for registry instead of the file, or None."""
    helpers = config.get('credHelpers') or {}
    if isinstance(helpers, dict) and helpers.get(registry):
        return helpers[registry]
    return config.get('credsStore') or None


def logins(config):
    """{registry: user} of every login in the file: what the module's diff shows (never a password)."""
    return {name: login_user(entry) for name, entry in sorted(config.get('auths', {}).items()) if isinstance(entry, dict)}


def with_login(config, registry, username, password):
    """A copy of config with the login for registry set; other keys and logins stay as they are."""
    updated = dict(config)
    auths = dict(updated.get('auths', {}))
    entry = dict(auths.get(registry) or {})
    entry['auth'] = auth_value(username, password)
    # Left by other tools beside `auth`; docker prefers them, so they go.
    for key in ('username', 'password', 'identitytoken', 'registrytoken'):
        entry.pop(key, None)
    auths[registry] = entry
    updated['auths'] = auths
    return updated


def without_login(config, registry):
    """A copy of config without a login for registry."""
    updated = dict(config)
    auths = dict(updated.get('auths', {}))
    auths.pop(registry, None)
    updated['auths'] = auths
    return updated


def render(config):
    """The file's text, as docker writes it (indented JSON)."""
    return json.dumps(config, indent='\t', sort_keys=False) + '\n'
