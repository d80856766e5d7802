# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What an access rule of the token service may say (registry_access_rules), for the preflight.

How the rules are applied is the token service's (roles/registry/files/token_server.py).
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


class FilterModule:
    def filters(self):
        return {'access_rules_problems': access_rules_problems}
