# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the registry role's rules per repository pattern may say, for the preflight.

Access rules of the token service (registry_access_rules) and retention
policies (registry_retention_policies). How they are applied is the host
programs' (roles/registry/files/token_server.py and registry_gc.py, their
patterns repository_patterns.py).
"""

from __future__ import annotations

import re

ACTIONS = ('pull', 'push', 'delete')
KEYS = ('users', 'anonymous', 'repositories', 'actions')
# Repository names are lowercase path components; a pattern may hold * and **.
PATTERN = re.compile(r'\A[a-z0-9*]+(?:[._-]+[a-z0-9*]+)*(?:/[a-z0-9*]+(?:[._-]+[a-z0-9*]+)*)*\Z')


def _strings(value):
    return isinstance(value, list) and len(value) > 0 and all(isinstance(item, str) and item for item in value)


def access_rules_problems(rules, user_names, label='registry_access_rules'):
    """Messages naming each rule that is wrong and why; empty when every rule is right.

    user_names: the users there are; None when users are managed elsewhere too (any name is taken).
    """
    if not isinstance(rules, list):
        return ['%s must be a list of rules, got %s' % (label, type(rules).__name__)]
    known = None if user_names is None else set(user_names) | {'*'}
    problems = []
    for number, rule in enumerate(rules):
        where = '%s[%d]' % (label, number)
        if not isinstance(rule, dict):
            problems.append('%s must be a mapping with users or anonymous, repositories and actions' % where)
            continue
        unknown_keys = sorted(set(rule) - set(KEYS))
        if unknown_keys:
            problems.append('%s has unknown keys %s (known: %s)' % (where, ', '.join(unknown_keys), ', '.join(KEYS)))
        anonymous = rule.get('anonymous', False)
        if not isinstance(anonymous, bool):
            problems.append('%s: anonymous must be true or false' % where)
        if anonymous == ('users' in rule):
            problems.append('%s must name users (a list of user names, or *) or be anonymous: true, one of the two' % where)
        elif 'users' in rule:
            if not _strings(rule['users']):
                problems.append('%s: users must be a non-empty list of user names' % where)
            elif known is not None:
                strangers = sorted(set(rule['users']) - known)
                if strangers:
                    problems.append('%s names users that registry_users does not have: %s' % (where, ', '.join(strangers)))
        patterns = rule.get('repositories')
        if not _strings(patterns):
            problems.append('%s: repositories must be a non-empty list of patterns' % where)
        else:
            wrong = [pattern for pattern in patterns if not PATTERN.match(pattern)]
            if wrong:
                problems.append('%s: %s %s (lowercase path components, * within one, ** across)'
                                % (where, ', '.join(repr(pattern) for pattern in wrong),
                                   'is not a repository pattern' if len(wrong) == 1 else 'are not repository patterns'))
        actions = rule.get('actions')
        if not _strings(actions) or set(actions) - set(ACTIONS):
            problems.append('%s: actions must be a non-empty list of %s' % (where, ', '.join(ACTIONS)))
        elif anonymous is True and set(actions) - {'pull'}:
            problems.append('%s: anonymous clients may only pull' % where)
    return problems


POLICY_KEYS = ('repositories', 'keep_newest', 'delete_older_than', 'keep_tags')
# A number and a unit: seconds, minutes, hours, days, weeks (registry_gc.py reads the same).
DURATION = re.compile(r'\A[0-9]+[smhdw]\Z')
# A tag as the distribution spec allows it.
TAG = re.compile(r'\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z')


def retention_policies_problems(policies, protected_tags, label='registry_retention_policies'):
    """Messages naming each policy (or protected tag) that is wrong and why; empty when all are right."""
    if not isinstance(policies, list):
        return ['%s must be a list of policies, got %s' % (label, type(policies).__name__)]
    problems = []
    if not isinstance(protected_tags, list) or not all(isinstance(tag, str) and TAG.match(tag) for tag in protected_tags):
        problems.append('registry_retention_protected_tags must be a list of tag names (letters, digits, _ . -), e.g. [latest]')
    for number, policy in enumerate(policies):
        where = '%s[%d]' % (label, number)
        if not isinstance(policy, dict):
            problems.append('%s must be a mapping with repositories and keep_newest or delete_older_than' % where)
            continue
        unknown_keys = sorted(set(policy) - set(POLICY_KEYS))
        if unknown_keys:
            problems.append('%s has unknown keys %s (known: %s)' % (where, ', '.join(unknown_keys), ', '.join(POLICY_KEYS)))
        patterns = policy.get('repositories')
        if not _strings(patterns) or not all(PATTERN.match(pattern) for pattern in patterns):
            problems.append('%s: repositories must be a non-empty list of repository patterns '
                            '(lowercase path components, * within one, ** across)' % where)
        keep_newest = policy.get('keep_newest')
        older = policy.get('delete_older_than')
        if keep_newest is None and older is None:
            problems.append('%s must say which tags go: keep_newest (a count), delete_older_than (an age such as 30d), '
                            'or both' % where)
        if keep_newest is not None and (isinstance(keep_newest, bool) or not isinstance(keep_newest, int) or keep_newest < 0):
            problems.append('%s: keep_newest must be a whole number, 0 or more' % where)
        if older is not None and not (isinstance(older, str) and DURATION.match(older) and int(older[:-1]) > 0):
            problems.append('%s: delete_older_than must be an age: a number and s, m, h, d or w, e.g. 30d, got %r' % (where, older))
        keep_tags = policy.get('keep_tags', [])
        if not isinstance(keep_tags, list) or not all(isinstance(pattern, str) and pattern for pattern in keep_tags):
            problems.append('%s: keep_tags must be a list of regular expressions of whole tags, e.g. v[0-9]+[.][0-9]+[.][0-9]+' % where)
        else:
            for pattern in keep_tags:
                try:
                    re.compile(pattern)
                except re.error as error:
                    problems.append('%s: keep_tags: %r is not a regular expression (%s)' % (where, pattern, error))
    return problems


class FilterModule:
    def filters(self):
        return {'access_rules_problems': access_rules_problems, 'retention_policies_problems': retention_policies_problems}
