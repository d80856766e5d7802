# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the collection importable for unit tests run with plain pytest.

`ansible-test units` runs from a copy at .../ansible_collections/selfhosted/registry
and installs Ansible's collection loader itself: then this file does nothing.
Run as `pytest tests/unit` from the repository root (any directory name), the
tests still import `ansible_collections.selfhosted.registry...`: this links the
repository into a temporary ansible_collections tree and puts that on sys.path.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import tempfile


def _make_collection_importable():
    try:
        importlib.import_module('ansible_collections.selfhosted.registry')
        return
    except ImportError:
        pass
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parts = root.split(os.sep)
    if parts[-3:] == ['ansible_collections', 'selfhosted', 'registry']:
        base = os.sep.join(parts[:-3])
    else:
        digest = hashlib.sha256(root.encode()).hexdigest()[:12]
        base = os.path.join(tempfile.gettempdir(), 'selfhosted-registry-pytest-%s' % digest)
        link = os.path.join(base, 'ansible_collections', 'selfhosted', 'registry')
        if not os.path.islink(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            try:
                os.symlink(root, link)
            except FileExistsError:  # another test process made it meanwhile
                pass
    sys.path.insert(0, base)


_make_collection_importable()
