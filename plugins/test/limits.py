# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Container limits the roles accept: the rules compose_stack applies, checked before anything changes."""

from __future__ import annotations

from ansible_collections.selfhosted.registry.plugins.module_utils._compose_confinement import parse_memory_limit
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_load import ComposeError, parse_duration


def memory_limit(value):
    try:
        parse_memory_limit(value, 'value')
    except ComposeError:
        return False
    return True


def positive_duration(value):
    """A Go duration above zero ('168h', '1h30m'), as the registry's and compose's durations are written."""
    try:
        return parse_duration(value, 'value') > 0
    except ComposeError:
        return False


class TestModule:
    def tests(self):
        return {
            'memory_limit': memory_limit,
            'positive_duration': positive_duration,
        }
