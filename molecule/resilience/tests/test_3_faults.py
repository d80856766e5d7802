"""Faults: the host reboots, the Docker daemon restarts, the registry's disk fills up.

After each fault the registry must be back by itself, with every image pushed
so far pulling by digest (full transfer, blobs checked against their digests)
and an API walk (catalog, tags, manifests, blobs) finding no broken link.
The full disk must make pushes fail cleanly (an error, no hang, no restarted
registry, earlier images still served) and pushes work again once space is
freed; `registry garbage-collect --dry-run` then walks the storage without
error.
"""

from __future__ import annotations

import json
import subprocess
import time

from conftest import (
    CLIENT_TOOL,
    DOCKER,
    PULLER,
    REGISTRY_HOST,
    add_image,
    apply_overrides,
    containers_of_stack,
    http_status,
    load_state,
    manifest_path,
    measure,
    pull_all,
    push_layout,
    report,
    run_site,
    served_serial,
    wait_until_served,
    walk_registry,
)

# A small file system for the registry's storage: tmpfs, mounted in the host.
SMALL_FS = "/srv/registry-disk"
# Room on the small file system beyond what the registry holds when it moves there.
SMALL_FS_HEADROOM_MIB = 48


def assert_all_data_there(client, label: str) -> None:
    images = load_state()["images"]
    failed = {ref: error for ref, error in pull_all(client, images).items() if error}
    assert not failed, f"{label}: images that no longer pull: {failed}"
    walk = walk_registry(client)
    report(f"{label}: {len(images)} images pull by digest; API walk {walk['counts']}, broken links {len(walk['errors'])}")
    assert not walk["errors"], walk["errors"]


def wait_for_boot(host, timeout: float) -> str:
    """systemd's state once the boot is over ('running', 'degraded', ...), '' if the host never answered."""
    deadline, state = time.time() + timeout, ""
    while time.time() < deadline:
        result = host.run("systemctl is-system-running --wait", check=False, timeout=max(5, deadline - time.time()))
        state = result.stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(1)
    return state


# Why a container of the stack did not start: its state and the flag Docker
# keeps on disk when it thinks the container was stopped on purpose.
STOPPED_DIAGNOSIS = r"""
for id in $(docker ps -aq --filter label=com.docker.compose.project=registry --filter status=exited); do
  docker inspect --format '{{.Name}} {{.State.Status}} exit={{.State.ExitCode}} finished={{.State.FinishedAt}} restart={{.HostConfig.RestartPolicy.Name}}' "$id"
  python3 -c 'import json, sys; print("  HasBeenManuallyStopped:", json.load(open(sys.argv[1])).get("HasBeenManuallyStopped"))' \
    "/var/lib/docker/containers/$(docker inspect --format '{{.Id}}' "$id")/config.v2.json"
done
"""


def test_host_reboot(client, images):
    """A clean reboot: systemd stops, the host boots again; the stack must come back by itself with all data."""
    before = containers_of_stack()
    start = time.time()
    # The host image stops systemd with SIGRTMIN+3: a clean shutdown, then a new boot.
    subprocess.run([DOCKER, "restart", "--time", "60", REGISTRY_HOST.name], check=True, capture_output=True, timeout=180)
    system = wait_for_boot(REGISTRY_HOST, timeout=180)
    booted = time.time()
    served = wait_until_served(client, manifest_path(images[0]), timeout=60)
    report(
        f"reboot: host booted ({system!r}) {booted - start:.1f}s after the restart began; registry served again "
        + (f"{served - start:.1f}s after it began" if served else "NOT within 60 s after the boot")
    )
    after = containers_of_stack()
    not_running = {service: line for service, line in after.items() if line.split()[2] != "running"}
    if not served or not_running:
        diagnosis = REGISTRY_HOST.out(STOPPED_DIAGNOSIS, check=False).strip()
        for line in diagnosis.splitlines():
            report(f"    reboot: not restarted: {line}")
        # What an administrator would do, so that the data can still be checked.
        REGISTRY_HOST.run("docker ps -aq --filter label=com.docker.compose.project=registry --filter status=exited | xargs -r docker start")
        assert wait_until_served(client, manifest_path(images[0]), timeout=120), "the registry is not served even after starting its containers by hand"
    assert system == "running", REGISTRY_HOST.out("systemctl --failed --no-legend", check=False)
    served_serial(client)  # the certificate still verifies against Pebble's root
    assert_all_data_there(client, "after the reboot")
    for service in ("registry", "proxy"):
        assert after[service].split()[:2] == before[service].split()[:2], f"{service} was recreated: {before[service]} -> {after[service]}"
    assert not not_running, f"containers that did not come back by themselves after the reboot: {not_running}"
    assert served, "the registry was not served again after the reboot"


def test_docker_daemon_restart(client, images):
    before = containers_of_stack()
    window, result = measure(
        client,
        images[0],
        "docker daemon restart (systemctl restart docker)",
        lambda: REGISTRY_HOST.run("systemctl restart docker", check=False, timeout=300),
    )
    assert result.returncode == 0, result.stderr
    after = containers_of_stack()
    kept = all(before[s].split()[3] == after[s].split()[3] for s in ("registry", "proxy"))
    report(f"    containers kept running through the daemon restart (live-restore): {'yes' if kept else 'no, restarted'}")
    for kind in ("pull", "probe"):
        for line in window.failure_details(kind, limit=3):
            report(f"    daemon restart: failed {kind} {line}")
    for service in ("registry", "proxy"):
        assert after[service].split()[0] == before[service].split()[0], f"{service} was recreated"
        assert after[service].split()[2] == "running", after[service]
    last = window.of("pull")[-2:]
    assert last and all(a.ok for a in last), f"pulls still fail after the daemon restart: {[a.detail for a in last]}"
    assert_all_data_there(client, "after the daemon restart")


def test_full_disk(client, images):
    host = REGISTRY_HOST
    # The storage moves to a small file system, with what it holds so far.
    host.run(
        f"size=$(( $(du -sm /opt/registry/data | cut -f1) + {SMALL_FS_HEADROOM_MIB} ))m"
        f" && mkdir -p {SMALL_FS} && (mountpoint -q {SMALL_FS} || mount -t tmpfs -o size=$size,mode=0755 registry-disk {SMALL_FS})"
        f" && mkdir -p {SMALL_FS}/data && cp -a /opt/registry/data/. {SMALL_FS}/data/",
        timeout=300,
    )
    changes = {"registry_storage_root": f"{SMALL_FS}/data"}
    run = run_site(changes, label="disk: storage on a small file system")
    assert run.rc == 0, run.tail()
    apply_overrides(changes)
    assert wait_until_served(client, manifest_path(images[0]), timeout=120), "the registry does not serve from the new storage"
    assert_all_data_there(client, f"storage moved to a tmpfs with {SMALL_FS_HEADROOM_MIB} MiB to spare")

    # A new image on the client (two 3 MiB layers), then the disk fills up.
    directory, name = "/var/tmp/resilience-image-diskfull", "diskfull"
    made = client.out(f"{CLIENT_TOOL} make-image {directory} --name {name} --layers 2 --layer-bytes {3 << 20}")
    # Full but for 2 MiB: the upload starts and the disk runs out in the middle of a layer.
    host.run(
        f"avail=$(df --output=avail -B1M {SMALL_FS} | tail -n 1); dd if=/dev/zero of={SMALL_FS}/filler bs=1M count=$((avail - 2)) 2>/dev/null; sync",
        timeout=120,
    )
    free = host.out(f"df --output=avail -B1 {SMALL_FS} | tail -n 1").strip()
    registry_before = containers_of_stack()["registry"]

    start = time.time()
    push = push_layout(client, directory, name, "data/diskfull", timeout=240)
    seconds = time.time() - start
    error = (push.stderr or push.stdout).strip().replace("\n", " ")
    report(f"full disk ({free} bytes free): push rc={push.returncode} after {seconds:.1f}s: {error[-300:]}")
    assert push.returncode != 0, "the push succeeded on a full disk: is the storage really on the small file system?"
    assert seconds < 200, "the push hung instead of failing"
    assert containers_of_stack()["registry"] == registry_before, "the registry container restarted or was recreated"
    logged = host.out("docker logs --since 10m registry-registry-1 2>&1 | grep -c 'no space left on device' || true").strip()
    report(f"    registry log lines with 'no space left on device': {logged}")
    # Reading still works on a full disk.
    assert_all_data_there(client, "while the disk is full")

    host.run(f"rm -f {SMALL_FS}/filler")
    push = push_layout(client, directory, name, "data/diskfull", timeout=240)
    assert push.returncode == 0, f"the push fails after space was freed: {push.stderr}"
    manifest = json.loads(made)
    add_image({"ref": f"registry.resilience.test/data/diskfull@{manifest['manifest']}", "blobs": manifest["blobs"]})
    client.run(f"rm -rf {directory}", check=False)
    assert_all_data_there(client, "after space was freed")

    gc = host.run(
        # The config path the container was started with (its major version's).
        "docker exec registry-registry-1 registry garbage-collect --dry-run"
        " $(docker inspect --format '{{index .Config.Cmd 0}}' registry-registry-1) 2>&1",
        check=False,
        timeout=300,
    )
    lines = gc.stdout.splitlines()
    marked = [line for line in lines if "marking " in line]
    eligible = [line for line in lines if "eligible for deletion" in line]
    problems = [line for line in lines if any(word in line.lower() for word in ("error", "failed", "unknown", "not found"))]
    report(
        f"    garbage-collect --dry-run: rc={gc.returncode}, {len(marked)} marked, {len(eligible)} eligible for deletion, problems {problems[:3]}"
    )
    assert gc.returncode == 0, gc.stdout[-2000:]
    assert not problems, problems
    # Still up, still checking passwords (anonymous clients may pull load/*
    # since test_1_zero_downtime.py's (a), so /v2/ lets them in too).
    assert http_status(client, "/v2/", PULLER["name"], PULLER["password"])[0] == 200
    assert http_status(client, "/v2/", PULLER["name"], "not-the-password")[0] == 401
