"""Backup and restore: the host backed up while it serves, destroyed, restored on a new host, every digest back.

- `selfhosted.registry.backup` while the client pulls in a loop: 0 failed
  pulls or probes; one archive on the controller;
- the registry host is destroyed (stopped, its name gone from the network)
  and `selfhosted.registry.restore` runs against a new, empty host of the
  scenario (`restored`), which takes over the registry's name;
- through that name: the same certificate is served, alice logs in with her
  password, every image pushed by the earlier tests pulls by digest, the
  API walk finds no broken link, retention's push dates came along;
- afterwards the new host is stopped and the old one started again, for
  the last test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import (
    DOCKER,
    DOMAIN,
    EPHEMERAL,
    NETWORK,
    REGISTRY_HOST,
    Container,
    assert_no_failed_pull,
    load_state,
    measure,
    network,
    pull_all,
    report,
    run_site,
    served_serial,
    storage_root,
    wait_until_served,
    walk_registry,
)

NEW_HOST = Container("restored")
# Every tag's link and its modification time (retention's push date).
TAG_LINKS = "cd {storage}/docker/registry/v2/repositories && find . -path '*/_manifests/tags/*/current/link' -printf '%P %T@\\n' | sort"


def test_backup_destroy_restore_on_a_new_host(client, images):
    backups = Path(EPHEMERAL) / "backups"
    serial = served_serial(client)
    links = REGISTRY_HOST.out(TAG_LINKS.format(storage=storage_root()))
    window, backup = measure(
        client, images[0], "backup", lambda: run_site({"registry_backup_dir": str(backups)}, play="selfhosted.registry.backup", label="backup")
    )
    assert backup.rc == 0, backup.tail()
    assert_no_failed_pull(window)
    (archive,) = (backups / "debian13").glob("debian13-*.tar")

    # The host is gone; a new one answers for the registry's name.
    subprocess.run([DOCKER, "stop", REGISTRY_HOST.name], capture_output=True, check=True)
    network("disconnect", NETWORK, NEW_HOST.name)
    network("connect", "--alias", DOMAIN, "--alias", "restored", NETWORK, NEW_HOST.name)
    try:
        restore = run_site(
            {"registry_restore_archive": str(archive)}, play="selfhosted.registry.restore", label="restore", registry_hosts=["restored"]
        )
        assert restore.rc == 0, restore.tail()
        assert wait_until_served(client), f"{DOMAIN} is not served by the restored host"
        assert served_serial(client) == serial, "the restored host serves another certificate"
        kept = list(load_state()["images"])
        failed = {ref: error for ref, error in pull_all(client, kept).items() if error}
        assert not failed, f"images that do not pull from the restored host: {failed}"
        walk = walk_registry(client)
        assert not walk["errors"], walk["errors"]
        restored_links = NEW_HOST.out(TAG_LINKS.format(storage=storage_root()))
        assert restored_links == links, "tags or their push dates differ on the restored host"
        report(
            f"{window.summary()}; archive {archive.stat().st_size} bytes; restored on a new host: same certificate,"
            f" {len(kept)} images pull by digest, API walk {walk['counts']}, push dates kept"
        )
    finally:
        subprocess.run([DOCKER, "stop", NEW_HOST.name], capture_output=True, check=False)
        subprocess.run([DOCKER, "start", REGISTRY_HOST.name], capture_output=True, check=True)
        assert wait_until_served(client, timeout=300), f"{DOMAIN} is not served again by {REGISTRY_HOST.name}"
