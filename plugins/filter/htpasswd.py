# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The htpasswd_user module's rules for users, for checks on the controller."""

from __future__ import annotations

from ansible_collections.selfhosted.registry.plugins.module_utils._htpasswd import user_problems


def htpasswd_user_problems(users, label='users'):
    if not isinstance(users, list):
        raise TypeError('htpasswd_user_problems expects a list of users, got %s' % type(users).__name__)
    return user_problems(users, label)


class FilterModule:
    def filters(self):
        return {'htpasswd_user_problems': htpasswd_user_problems}
