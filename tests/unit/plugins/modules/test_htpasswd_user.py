# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for selfhosted.registry.htpasswd_user: the module on a real file in a temp dir."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args

from ansible_collections.selfhosted.registry.plugins.module_utils import _htpasswd
from ansible_collections.selfhosted.registry.plugins.modules import htpasswd_user


@pytest.fixture(autouse=True)
def fresh_warnings():
    """AnsibleModule collects warnings per process; start every test without any."""
    ansible_warnings._global_warnings.clear()
    yield
    ansible_warnings._global_warnings.clear()


def run_module(capsys, **args):
    """Run the module with these arguments; returns its JSON result."""
    args.setdefault('cost', 4)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            htpasswd_user.main()
    return json.loads(capsys.readouterr().out)


def entries(path):
    with open(path) as handle:
        return [line.rstrip('\n') for line in handle]


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'htpasswd')


def test_creates_file_private_with_2y_hashes_then_no_change(capsys, path):
    result = run_module(capsys, path=path, users=[{'name': 'alice', 'password': 'pw-a1-secret'}, {'name': 'bob', 'password': 'pw-b1-secret'}])
    assert result['changed'] is True
    assert (result['added'], result['removed'], result['updated']) == (['alice', 'bob'], [], [])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = entries(path)
    assert [line.split(':')[0] for line in lines] == ['alice', 'bob']
    assert all(line.split(':', 1)[1].startswith('$2y$04$') for line in lines)
    assert _htpasswd.check_password('pw-a1-secret', lines[0].split(':', 1)[1])

    before = open(path).read()
    again = run_module(capsys, path=path, users=[{'name': 'alice', 'password': 'pw-a1-secret'}, {'name': 'bob', 'password': 'pw-b1-secret'}])
    assert again['changed'] is False
    assert (again['added'], again['removed'], again['updated']) == ([], [], [])
    assert open(path).read() == before


def test_result_never_contains_passwords_or_hashes(capsys, path):
    run_module(capsys, path=path, name='alice', password='first-secret')
    stored = entries(path)[0].split(':', 1)[1]
    with patch_module_args({'path': path, 'name': 'alice', 'password': 'second-secret', 'cost': 4, '_ansible_diff': True}):
        with pytest.raises(SystemExit):
            htpasswd_user.main()
    output = capsys.readouterr().out
    result = json.loads(output)
    assert result['updated'] == ['alice']
    assert result['diff'][0]['after'] == 'alice (new password)\n'
    for secret in ('first-secret', 'second-secret', stored, stored[7:]):
        assert secret not in output


@pytest.mark.parametrize('existing', [False, True])
def test_check_mode_predicts_and_touches_nothing(capsys, path, tmp_path, existing):
    if existing:
        run_module(capsys, path=path, users=[{'name': 'alice', 'password': 'pw-a-secret'}, {'name': 'zed', 'password': 'pw-z-secret'}])
        stat_before = os.stat(path)
        content_before = open(path).read()
    args = dict(path=path, exclusive=True, users=[
        {'name': 'alice', 'password': 'changed'}, {'name': 'bob', 'password': 'pw-b-secret'}])
    predicted = run_module(capsys, _ansible_check_mode=True, _ansible_diff=True, **args)
    if existing:
        assert os.stat(path).st_mtime_ns == stat_before.st_mtime_ns
        assert open(path).read() == content_before
        assert os.listdir(str(tmp_path)) == ['htpasswd']
    else:
        assert os.listdir(str(tmp_path)) == []
    real = run_module(capsys, **args)
    for key in ('changed', 'added', 'removed', 'updated'):
        assert predicted[key] == real[key]
    assert predicted['changed'] is True
    assert run_module(capsys, _ansible_check_mode=True, **args)['changed'] is False


def test_comments_and_other_users_are_kept(capsys, path):
    with open(path, 'w') as handle:
        handle.write('# registry users\nzed:%s\n\n# CI\nci:$apr1$abc$def\n' % _htpasswd.hash_password('pw-z-secret', 4))
    result = run_module(capsys, path=path, users=[{'name': 'ci', 'password': 'pw-c-secret'}, {'name': 'new', 'password': 'pw-n-secret'}])
    assert (result['added'], result['updated']) == (['new'], ['ci'])
    lines = entries(path)
    assert lines[0] == '# registry users' and lines[2] == '' and lines[3] == '# CI'
    assert [line.split(':')[0] for line in lines] == ['# registry users', 'zed', '', '# CI', 'ci', 'new']
    assert lines[4].startswith('ci:$2y$04$')


def test_warns_about_non_bcrypt_users(capsys, path):
    with open(path, 'w') as handle:
        handle.write('old:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n')
    result = run_module(capsys, path=path, name='alice', password='pw-a-secret')
    assert len(result['warnings']) == 1
    warning = json.dumps(result['warnings'])  # structured, not a string
    assert 'old (SHA-1)' in warning and 'W6ph5' not in warning


def test_exclusive_removes_others(capsys, path):
    run_module(capsys, path=path, users=[{'name': n, 'password': 'pw-%s-secret' % n} for n in ('a', 'b', 'c')])
    result = run_module(capsys, path=path, name='b', password='pw-b-secret', exclusive=True)
    assert result['removed'] == ['a', 'c']
    assert [line.split(':')[0] for line in entries(path)] == ['b']


def test_exclusive_with_no_users_creates_an_empty_file(capsys, path):
    result = run_module(capsys, path=path, users=[], exclusive=True)
    assert result['changed'] is True
    assert open(path).read() == ''
    assert run_module(capsys, path=path, users=[], exclusive=True)['changed'] is False


def test_absent_on_missing_file_creates_nothing(capsys, path):
    result = run_module(capsys, path=path, name='alice', state='absent')
    assert result['changed'] is False
    assert not os.path.exists(path)


def test_mode_and_existing_attributes(capsys, path):
    run_module(capsys, path=path, name='alice', password='pw-a-secret', mode='0640')
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    # An update keeps the mode of the existing file.
    run_module(capsys, path=path, name='bob', password='pw-b-secret')
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    # A mode change alone is a change, shown as a second diff.
    result = run_module(capsys, path=path, name='bob', password='pw-b-secret', mode='0600', _ansible_diff=True)
    assert result['changed'] is True and result['updated'] == []
    assert result['diff'][1]['before'] == {'mode': '0640'} and result['diff'][1]['after'] == {'mode': '0600'}


def test_backup(capsys, path, tmp_path):
    run_module(capsys, path=path, name='alice', password='pw-a-secret')
    original = open(path).read()
    result = run_module(capsys, path=path, name='bob', password='pw-b-secret', backup=True)
    assert open(result['backup_file']).read() == original
    assert 'backup_file' not in run_module(capsys, path=path, name='bob', password='pw-b-secret', backup=True)


def test_symlink_is_followed(capsys, tmp_path):
    real = tmp_path / 'real'
    real.write_text('')
    link = tmp_path / 'link'
    link.symlink_to(real)
    run_module(capsys, path=str(link), name='alice', password='pw-a-secret')
    assert os.path.islink(str(link))
    assert real.read_text().startswith('alice:$2y$')


@pytest.mark.parametrize('args, expected', [
    (dict(name='a:b', password='pw-x-secret'), "name: user name 'a:b' contains ':'"),
    (dict(name='alice', password='x' * 73), 'bcrypt uses only the first 72 bytes'),
    (dict(name='alice', password=''), 'the password is empty'),
    (dict(name='alice'), 'a password is required with state=present'),
    (dict(users=[{'name': 'a', 'password': 'pw-x-secret'}, {'name': 'a', 'password': 'pw-y-secret'}]), "user 'a' is given twice"),
    (dict(name='alice', password='pw-x-secret', cost=3), 'cost must be an integer from 4 to 31'),
    (dict(name='alice', password='pw-x-secret', users=[]), 'mutually exclusive'),
    (dict(state='absent', users=[]), 'mutually exclusive'),
    (dict(password='pw-x-secret'), 'one of the following is required: name, users'),
])
def test_bad_input_fails_before_writing(capsys, path, args, expected):
    with open(path, 'w') as handle:
        handle.write('zed:%s\n' % _htpasswd.hash_password('pw-z-secret', 4))
    before = open(path).read()
    result = run_module(capsys, path=path, **args)
    assert result['failed'] is True
    assert expected in result['msg']
    assert open(path).read() == before


@pytest.mark.parametrize('content, expected', [
    ('alice:x\nbroken\n', 'line 2: no'),
    ('alice:x\nalice:y\n', "user 'alice' appears on lines 1 and 2"),
])
def test_malformed_existing_file_fails_untouched(capsys, path, content, expected):
    with open(path, 'w') as handle:
        handle.write(content)
    result = run_module(capsys, path=path, name='bob', password='pw-b-secret')
    assert result['failed'] is True and expected in result['msg']
    assert open(path).read() == content


def test_missing_parent_directory(capsys, tmp_path):
    result = run_module(capsys, path=str(tmp_path / 'nope' / 'htpasswd'), name='a', password='pw-a-secret')
    assert result['failed'] is True
    assert 'does not exist; create it first' in result['msg']


def test_path_is_a_directory(capsys, tmp_path):
    result = run_module(capsys, path=str(tmp_path), name='a', password='pw-a-secret')
    assert result['failed'] is True and 'is a directory' in result['msg']


def test_missing_bcrypt_names_the_package(capsys, path, monkeypatch):
    monkeypatch.setattr(_htpasswd, 'bcrypt', None)
    result = run_module(capsys, path=path, name='a', password='pw-a-secret')
    assert result['failed'] is True
    assert 'python3-bcrypt' in result['msg'] and 'bcrypt' in result['msg']
    assert not os.path.exists(path)
