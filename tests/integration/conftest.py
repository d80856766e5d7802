# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of every integration test: the targets (targets.py) and the collection."""

from __future__ import annotations

import pytest

import targets


@pytest.fixture(scope='session', params=targets.target_names())
def target_python(request):
    """The interpreter of one Debian target; every test that asks for it runs once per target."""
    try:
        return targets.target_python(request.param)
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope='session')
def newest_target_python():
    """The newest target's interpreter, for what the Docker SDK's version cannot change."""
    try:
        return targets.target_python(targets.target_names()[-1])
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope='session')
def collections_path(tmp_path_factory):
    return targets.collections_tree(str(tmp_path_factory.mktemp('collections')))
