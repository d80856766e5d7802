"""docker_install_source: upstream, as far as it can be checked without Docker's repository.

download.docker.com is unreachable from the test platform. ../docker_upstream_check.yml
runs the role in check mode with the upstream source on the converged hosts and
checks the deb822 source it renders with apt itself, then for real with a key
that is not Docker's, which the role must refuse and remove with the
repository (see the playbook).
"""

from __future__ import annotations

import os
import pathlib
import subprocess

PLAYBOOK = pathlib.Path(__file__).resolve().parent.parent / "docker_upstream_check.yml"


# One run for every registry host (the playbook's `hosts: registry`), side by
# side, not one run per host: a failure names its host in the output.
def test_upstream_source_in_check_mode():
    result = subprocess.run(
        [
            "ansible-playbook",
            "--check",
            # The inventory directory, as molecule's converge uses it.
            "--inventory",
            os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]),
            str(PLAYBOOK),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
