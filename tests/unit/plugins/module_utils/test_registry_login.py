# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Logins in a Docker client configuration, as registry_login keeps them."""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.selfhosted.registry.plugins.module_utils._registry_login import (
    LoginError, auth_value, helper_for, login_user, logins, parse_config, render, with_login, without_login,
)


def test_auth_value_is_what_docker_login_writes():
    assert auth_value('ci', 'p:ss') == base64.b64encode(b'ci:p:ss').decode()
    assert login_user({'auth': auth_value('ci', 'p:ss')}) == 'ci'


@pytest.mark.parametrize('entry', [{}, {'auth': 'not base64!'}, {'auth': base64.b64encode(b'no-colon').decode()}, 'text'])
def test_login_user_of_unusable_entries(entry):
    assert login_user(entry) is None


@pytest.mark.parametrize('text', [None, '', '  \n'])
def test_missing_or_empty_file_is_empty(text):
    assert parse_config(text, 'config.json') == {}


@pytest.mark.parametrize('text, message', [
    ('{', 'is not valid JSON'),
    ('[]', 'must hold a JSON object'),
    ('{"auths": []}', '"auths" must be a JSON object'),
])
def test_unreadable_files_are_refused(text, message):
    with pytest.raises(LoginError, match=message):
        parse_config(text, 'config.json')


def test_login_keeps_other_logins_and_settings():
    before = {'auths': {'other.example': {'auth': auth_value('x', 'y')}}, 'detachKeys': 'ctrl-e,e'}
    after = with_login(before, 'registry.example.com', 'ci', 'secret')
    assert after['detachKeys'] == 'ctrl-e,e'
    assert logins(after) == {'other.example': 'x', 'registry.example.com': 'ci'}
    assert 'registry.example.com' not in before['auths']  # the input is not changed


def test_login_replaces_fields_docker_would_prefer():
    before = {'auths': {'r.example': {'auth': auth_value('old', 'pw'), 'identitytoken': 'tok', 'username': 'old'}}}
    assert with_login(before, 'r.example', 'ci', 'pw')['auths']['r.example'] == {'auth': auth_value('ci', 'pw')}


def test_same_login_twice_changes_nothing():
    once = with_login({}, 'r.example', 'ci', 'pw')
    assert with_login(once, 'r.example', 'ci', 'pw') == once


def test_logout_removes_only_that_registry():
    config = with_login(with_login({}, 'a.example', 'u', 'p'), 'b.example', 'v', 'q')
    assert logins(without_login(config, 'a.example')) == {'b.example': 'v'}
    assert without_login({}, 'a.example') == {'auths': {}}


@pytest.mark.parametrize('config, expected', [
    ({}, None),
    ({'credsStore': 'pass'}, 'pass'),
    ({'credHelpers': {'r.example': 'ecr-login'}}, 'ecr-login'),
    ({'credHelpers': {'other.example': 'ecr-login'}}, None),
])
def test_credential_helpers_are_found(config, expected):
    assert helper_for(config, 'r.example') == expected


def test_render_is_json_that_reads_back():
    config = with_login({}, 'r.example', 'ci', 'pw')
    assert json.loads(render(config)) == config
    assert render(config).endswith('\n')
