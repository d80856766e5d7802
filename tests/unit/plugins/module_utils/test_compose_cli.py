# Copyright (c) selfhosted.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""compose_stack beside the compose CLI: its version, its hashes and the project's .env.

The real CLI runs in molecule/default (tests/test_compose_cli.py, Debian 13):
here the parsing and the rules, with the CLI's answers given.
"""

from __future__ import annotations

import pytest

from ansible_collections.selfhosted.registry.plugins.module_utils import _compose_cli as compose_cli
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_load import ComposeError
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_spec import build_project

WORKDIR = '/srv/stack'


def stack(files=('compose.yaml',), services=('registry',)):
    documents = [(WORKDIR + '/' + name, {'services': {}}) for name in files]
    documents[0][1]['services'] = dict((name, {'image': 'img:1'}) for name in services)
    return build_project(documents, WORKDIR, 'stack')


class Answers(object):
    """run_command that answers as the CLI would, and records what it was asked."""

    def __init__(self, rc=0, out='', err=''):
        self.answer = (rc, out, err)
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        return self.answer


@pytest.mark.parametrize('docker, answer, expected', [
    ('/usr/bin/docker', (0, '2.26.1-4\n', ''), '2.26.1-4'),
    # Debian 12's docker.io has no compose plugin: the CLI does not know the command.
    ('/usr/bin/docker', (1, '', "docker: 'compose' is not a docker command."), None),
    ('/usr/bin/docker', (0, '\n', ''), None),
    (None, (0, '2.26.1', ''), None),
])
def test_compose_version(docker, answer, expected):
    assert compose_cli.compose_version(Answers(*answer), docker) == expected


def test_compose_hashes_of_the_project_files():
    proj = stack(files=('compose.yaml', 'compose.proxy.yaml'), services=('registry', 'proxy'))
    run = Answers(out='proxy e3ed38d6\nregistry 598f16a6\n')
    assert compose_cli.compose_hashes(run, '/usr/bin/docker', proj) == {'proxy': 'e3ed38d6', 'registry': '598f16a6'}
    assert run.calls == [['/usr/bin/docker', 'compose', '--project-directory', WORKDIR, '--project-name', 'stack',
                          '--file', WORKDIR + '/compose.yaml', '--file', WORKDIR + '/compose.proxy.yaml',
                          'config', '--hash', '*']]


@pytest.mark.parametrize('answer, message', [
    ((1, '', 'yaml: line 3: mapping values are not allowed'), 'cannot read the project files'),
    ((0, 'other 1234\n', ''), 'no hash for registry'),
])
def test_compose_hashes_errors_name_the_cause(answer, message):
    with pytest.raises(ComposeError) as caught:
        compose_cli.compose_hashes(Answers(*answer), '/usr/bin/docker', stack())
    assert message in str(caught.value)


def test_parse_env_reads_assignments_only():
    text = '# made by hand\nA=1\n\nCOMPOSE_FILE = a.yaml:b.yaml\nnot an assignment\n'
    assert compose_cli.parse_env(text) == {'A': '1', 'COMPOSE_FILE': 'a.yaml:b.yaml'}


def exists_only(*names):
    return lambda path: path in [WORKDIR + '/' + name for name in names]


@pytest.mark.parametrize('current, exists, files, expected', [
    # The registry role's run, then the proxy role's, then the registry's again: the union, stable.
    (None, exists_only('compose.yaml'), ('compose.yaml',), ['compose.yaml']),
    ('compose.yaml', exists_only('compose.yaml', 'compose.proxy.yaml'), ('compose.yaml', 'compose.proxy.yaml'),
     ['compose.yaml', 'compose.proxy.yaml']),
    ('compose.yaml:compose.proxy.yaml', exists_only('compose.yaml', 'compose.proxy.yaml'), ('compose.yaml',),
     ['compose.yaml', 'compose.proxy.yaml']),
    # A file since removed leaves the list; duplicates do not stay.
    ('compose.yaml:gone.yaml:compose.yaml', exists_only('compose.yaml'), ('compose.yaml',), ['compose.yaml']),
])
def test_env_files_is_the_union_of_the_runs(current, exists, files, expected):
    assert compose_cli.env_files(stack(files=files), current, exists=exists) == expected


def test_env_files_keeps_files_outside_the_directory_absolute():
    proj = build_project([('/etc/stack/extra.yaml', {'services': {'a': {'image': 'img:1'}}})], WORKDIR, 'stack')
    assert compose_cli.env_files(proj, None, exists=lambda path: False) == ['/etc/stack/extra.yaml']


def test_render_env_replaces_in_place_and_keeps_other_lines():
    text = '# mine\nTZ=UTC\nCOMPOSE_FILE=compose.yaml\n'
    rendered = compose_cli.render_env(text, {'COMPOSE_FILE': 'compose.yaml:compose.proxy.yaml',
                                             'COMPOSE_PROJECT_NAME': 'stack'})
    assert rendered == '# mine\nTZ=UTC\nCOMPOSE_FILE=compose.yaml:compose.proxy.yaml\nCOMPOSE_PROJECT_NAME=stack\n'


def test_env_text_creates_then_keeps_the_file():
    proj = stack()
    text = compose_cli.env_text(proj, None)
    assert text == 'COMPOSE_FILE=compose.yaml\nCOMPOSE_PROJECT_NAME=stack\n'
    assert compose_cli.env_text(proj, text) == text
