# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""access_rules_problems: what the registry role's preflight says about registry_access_rules."""

from __future__ import annotations

import pytest

from ansible_collections.selfhosted.registry.plugins.filter.access_rules import access_rules_problems

USERS = ['alice', 'ci']


def test_good_rules_have_no_problems():
    rules = [
        {'users': ['alice'], 'repositories': ['**'], 'actions': ['pull', 'push', 'delete']},
        {'users': ['*'], 'repositories': ['team/*', 'base-images/**'], 'actions': ['pull']},
        {'anonymous': True, 'repositories': ['public/*'], 'actions': ['pull']},
    ]
    assert access_rules_problems(rules, USERS) == []


@pytest.mark.parametrize('rule, message', [
    ({'users': ['alice'], 'repositories': ['**'], 'actions': ['pull'], 'tags': ['x']}, 'has unknown keys tags'),
    ({'repositories': ['**'], 'actions': ['pull']}, 'must name users (a list of user names, or *) or be anonymous: true'),
    ({'users': ['alice'], 'anonymous': True, 'repositories': ['**'], 'actions': ['pull']}, 'one of the two'),
    ({'users': 'alice', 'repositories': ['**'], 'actions': ['pull']}, 'users must be a non-empty list'),
    ({'users': ['alcie'], 'repositories': ['**'], 'actions': ['pull']}, 'names users that registry_users does not have: alcie'),
    ({'users': ['alice'], 'repositories': [], 'actions': ['pull']}, 'repositories must be a non-empty list'),
    ({'users': ['alice'], 'repositories': ['Team/*', '/abs'], 'actions': ['pull']}, "'Team/*', '/abs' are not repository patterns"),
    ({'users': ['alice'], 'repositories': ['**'], 'actions': ['pull', 'own']}, 'actions must be a non-empty list of pull, push, delete'),
    ({'anonymous': True, 'repositories': ['**'], 'actions': ['pull', 'push']}, 'anonymous clients may only pull'),
    ('everything', 'must be a mapping'),
])
def test_each_problem_names_the_rule_and_the_fix(rule, message):
    problems = access_rules_problems([{'users': ['ci'], 'repositories': ['**'], 'actions': ['pull']}, rule], USERS)
    assert len(problems) == 1 and problems[0].startswith('registry_access_rules[1]'), problems
    assert message in problems[0]


def test_users_managed_elsewhere_are_not_checked_by_name():
    assert access_rules_problems([{'users': ['someone'], 'repositories': ['**'], 'actions': ['pull']}], None) == []


def test_not_a_list():
    assert access_rules_problems({'users': ['alice']}, USERS) == ['registry_access_rules must be a list of rules, got dict']
