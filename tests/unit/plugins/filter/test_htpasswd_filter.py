# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The htpasswd_user_problems filter: the module's rules, all problems at once."""

from __future__ import annotations

import pytest

from ansible_collections.selfhosted.registry.plugins.filter.htpasswd import FilterModule
from ansible_collections.selfhosted.registry.plugins.module_utils import _htpasswd

PROBLEMS = FilterModule().filters()['htpasswd_user_problems']


def test_valid_users_have_no_problems():
    assert PROBLEMS([{'name': 'alice', 'password': 'secret'}, {'name': 'bob', 'state': 'absent'}]) == []


def test_every_problem_is_listed_with_its_place_and_never_a_password():
    users = [
        {'name': 'alice', 'password': 'secret-one'},
        {'name': 'b:c', 'password': 'secret-two'},
        {'name': 'carol', 'password': 'secret-three', 'state': 'gone'},
        {'name': 'alice', 'password': 'secret-four'},
        {'name': 'dave', 'password': 'x' * 73},
        'erin',
    ]
    problems = PROBLEMS(users, 'registry_users')
    assert len(problems) == 5
    assert problems[0].startswith("registry_users[1]: user name 'b:c'")
    assert "registry_users[2] (user 'carol'): state must be one of present, absent, got 'gone'" in problems[1]
    assert 'given twice, as registry_users[0] and registry_users[3]' in problems[2]
    assert 'registry_users[4]' in problems[3] and '73 bytes' in problems[3]
    assert 'registry_users[5]: each user must be a dict' in problems[4]
    assert not any('secret' in problem for problem in problems)


def test_the_module_refuses_the_first_of_the_same_problems():
    users = [{'name': 'alice', 'password': 'secret', 'state': 'gone'}]
    with pytest.raises(_htpasswd.HtpasswdError) as error:
        _htpasswd.requested_users(users=users)
    assert str(error.value) == PROBLEMS(users)[0]


def test_names_longer_than_255_characters_are_refused():
    assert PROBLEMS([{'name': 'a' * 255, 'password': 'p'}]) == []
    assert 'at most 255' in PROBLEMS([{'name': 'a' * 256, 'password': 'p'}])[0]


def test_a_list_is_required():
    with pytest.raises(TypeError, match='expects a list'):
        PROBLEMS({'name': 'alice'})
