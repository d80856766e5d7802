# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""retention_policies_problems: what the registry role's preflight says about registry_retention_policies."""

from __future__ import annotations

import pytest

from ansible_collections.selfhosted.registry.plugins.filter.access_rules import retention_policies_problems


def test_good_policies_have_no_problems():
    policies = [
        {'repositories': ['ci/**'], 'keep_newest': 10, 'delete_older_than': '30d', 'keep_tags': [r'v[0-9]+(\.[0-9]+){2}']},
        {'repositories': ['team/*', 'base'], 'keep_newest': 0},
        {'repositories': ['**'], 'delete_older_than': '26w'},
    ]
    assert retention_policies_problems(policies, ['latest', 'stable']) == []


@pytest.mark.parametrize('policy, message', [
    ({'repositories': ['ci/**'], 'keep_newest': 3, 'keep': ['x']}, 'has unknown keys keep'),
    ({'repositories': ['ci/**']}, 'must say which tags go: keep_newest'),
    ({'repositories': [], 'keep_newest': 3}, 'repositories must be a non-empty list of repository patterns'),
    ({'repositories': ['CI/**'], 'keep_newest': 3}, 'repositories must be a non-empty list of repository patterns'),
    ({'repositories': ['ci/**'], 'keep_newest': -1}, 'keep_newest must be a whole number, 0 or more'),
    ({'repositories': ['ci/**'], 'keep_newest': True}, 'keep_newest must be a whole number'),
    ({'repositories': ['ci/**'], 'keep_newest': '3'}, 'keep_newest must be a whole number'),
    ({'repositories': ['ci/**'], 'delete_older_than': '30'}, "delete_older_than must be an age: a number and s, m, h, d or w, e.g. 30d, got '30'"),
    ({'repositories': ['ci/**'], 'delete_older_than': '0d'}, 'delete_older_than must be an age'),
    ({'repositories': ['ci/**'], 'delete_older_than': 30}, 'delete_older_than must be an age'),
    ({'repositories': ['ci/**'], 'keep_newest': 1, 'keep_tags': 'v*'}, 'keep_tags must be a list of regular expressions'),
    ({'repositories': ['ci/**'], 'keep_newest': 1, 'keep_tags': ['v[0-9']}, "keep_tags: 'v[0-9' is not a regular expression"),
])
def test_each_mistake_is_named(policy, message):
    problems = retention_policies_problems([{'repositories': ['ok'], 'keep_newest': 1}, policy], [])
    assert len(problems) == 1 and problems[0].startswith('registry_retention_policies[1]'), problems
    assert message in problems[0]


def test_not_a_list_and_bad_protected_tags():
    assert retention_policies_problems({'repositories': ['x']}, []) == ['registry_retention_policies must be a list of policies, got dict']
    assert retention_policies_problems([], ['latest', 'no spaces']) == [
        'registry_retention_protected_tags must be a list of tag names (letters, digits, _ . -), e.g. [latest]']
