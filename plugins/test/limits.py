# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Container limits the roles accept: the rules compose_stack applies, checked before anything changes."""

from __future__ import annotations

from ansible_collections.selfhosted.registry.plugins.module_utils._compose_confinement import parse_memory_limit
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_load import ComposeError


def memory_limit(value):
    try:
        parse_memory_limit(value, 'value')
    except ComposeError:
        return False
    return True


class TestModule:
    def tests(self):
        return {
            'memory_limit': memory_limit,
        }
