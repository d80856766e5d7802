# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's tests for container limits."""

from __future__ import annotations

import pytest

from ansible_collections.selfhosted.registry.plugins.test.limits import TestModule

TESTS = TestModule().tests()


@pytest.mark.parametrize('value, expected', [
    ('1g', True),
    ('512m', True),
    ('512MB', True),
    (6 << 20, True),
    ('6m', True),
    ('5m', False),  # the engine refuses less than 6 MiB
    ('1.5g', False),
    ('1t', False),
    ('', False),
    (True, False),
    (None, False),
    (['1g'], False),
])
def test_memory_limit(value, expected):
    assert TESTS['memory_limit'](value) is expected


@pytest.mark.parametrize('value, expected', [
    ('168h', True),
    ('1h30m', True),
    ('90s', True),
    ('0', False),  # proxy.ttl 0: the mirror would never delete what it fetched
    ('0s', False),
    ('7d', False),  # Go has no days
    ('', False),
    (168, False),
    (True, False),
])
def test_positive_duration(value, expected):
    assert TESTS['positive_duration'](value) is expected
