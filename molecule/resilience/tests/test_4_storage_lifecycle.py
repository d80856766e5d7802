"""Storage lifecycle: retention policies and garbage collection under load, as users run them.

Repositories with many tags are pushed by the client; their push dates are
set back on the host (the registry keeps them as its tag links' mtimes, what
retention reads). With two policies:
- `selfhosted.registry.garbage_collect --check` lists the tags that would go
  and deletes nothing;
- `selfhosted.registry.garbage_collect` (with a schedule for the timer too),
  while the client pulls in a loop and tries a push every second, deletes
  exactly those tags: 0 failed pulls or probes; pushes in the write window
  fail at once with 503, a later push succeeds (what nginx answers while
  writes are paused, its message and Retry-After, is checked first); the space of
  the deleted images is freed (the run's report and `du` on the host);
- every image kept pulls by digest, deleted tags are gone, the API walk
  finds no broken link;
- an image whose layers were just collected is pushed again and pulls whole
  (the registry forgot them: no stale blob-descriptor cache);
- the timer is there, and the service it starts (as the schedule would)
  collects again, with its report in the journal.
"""

from __future__ import annotations

import json
import re
import shlex
import time

from conftest import (
    DOMAIN,
    PEBBLE_ROOT,
    PULLER,
    REGISTRY_HOST,
    assert_no_failed_pull,
    http_status,
    load_state,
    measure,
    pull_all,
    report,
    run_site,
    storage_root,
    walk_registry,
)

DAY = 86400
LAYER_BYTES = 512 << 10
POLICIES = [
    {"repositories": ["ci/*"], "keep_newest": 2, "keep_tags": ["v[0-9]+[.][0-9]+[.][0-9]+"]},
    {"repositories": ["nightly/**"], "delete_older_than": "30d"},
]
# repository -> {tag: days since it was pushed}
PUSHED = {
    **{f"ci/app{number}": {f"b{build}": 7 - build for build in range(1, 7)} for number in (1, 2, 3)},
    "nightly/app": {"n1": 40, "n2": 20, "n3": 1},
    "keep/base": {"1": 500},
}
PUSHED["ci/app1"]["v1.0.0"] = 100
PUSHED["ci/app2"]["latest"] = 200
EXPECTED = sorted([(f"ci/app{number}", f"b{build}") for number in (1, 2, 3) for build in range(1, 5)] + [("nightly/app", "n1")])
# Kept on the client: pushed again once its layers were collected.
AGAIN = ("ci/app1", "b1")
WORK = "/var/tmp/resilience-lifecycle"
PAUSED_MESSAGE = "read-only for a moment while garbage is collected"
RELOAD_PROXY = "/usr/local/sbin/selfhosted-registry-reload-proxy"
GC_PLAY = "selfhosted.registry.garbage_collect"
SCHEDULE = "Sun 03:00"

PUSH_ALL = """
set -eu
mkdir -p {work}
push() {{  # repository tag
  dir={work}/$(echo "$1-$2" | tr / _)
  python3 /usr/local/bin/resilience-client make-image "$dir" --name "$2" --layers 1 --layer-bytes {layer_bytes} >"$dir.json"
  skopeo copy --quiet --retry-times 0 --dest-creds "$RESILIENCE_CREDS" "oci:$dir:$2" "docker://{domain}/$1:$2"
  echo "$1 $2 $(cat "$dir.json")"
}}
{pushes}
wait
"""

# Every second a push of a new small image to a repository without a
# policy, until the stop file appears: one JSON line per attempt.
PUSH_LOOP = """
n=0
python3 /usr/local/bin/resilience-client make-image {work}/during --name during --layers 1 --layer-bytes 65536 >/dev/null
while [ ! -e {work}/push-loop.stop ] && [ $n -lt 300 ]; do
  n=$((n + 1))
  start=$(date +%s.%N)
  err=$(timeout 60 skopeo copy --quiet --retry-times 0 --dest-creds "$RESILIENCE_CREDS" \\
    oci:{work}/during:during "docker://{domain}/pushes/during-gc:t$n" 2>&1) && rc=0 || rc=$?
  end=$(date +%s.%N)
  python3 -c 'import json, sys; tag, rc, start, end, err = sys.argv[1:]
print(json.dumps(dict(tag=tag, rc=int(rc), start=float(start), end=float(end), error=err[-400:])))' \\
    "t$n" "$rc" "$start" "$end" "$err" >>{work}/push-loop.jsonl
  sleep 1
done
touch {work}/push-loop.done
"""


def pushed_link(repository: str, tag: str) -> str:
    return f"{storage_root()}/docker/registry/v2/repositories/{repository}/_manifests/tags/{tag}/current/link"


def disk_usage() -> int:
    return int(REGISTRY_HOST.out(f"du -s --block-size=1 {storage_root()}").split()[0])


def listed_tags(output: str) -> list[tuple[str, str]]:
    """The tags the report of tasks/gc.yml names ("repository:tag (sha256:...")."""
    return sorted(set(re.findall(r"([a-z0-9][a-z0-9/._-]*):([A-Za-z0-9_][A-Za-z0-9_.-]*) \(sha256:", output)))


def test_retention_and_garbage_collection_under_load(client, images):
    creds = {"RESILIENCE_CREDS": f"{PULLER['name']}:{PULLER['password']}"}
    client.run(f"rm -rf {WORK}")
    pushes = "\n".join(
        "( " + "; ".join(f"push {repository} {shlex.quote(tag)}" for tag in tags) + " ) &" for repository, tags in PUSHED.items()
    )
    output = client.out(PUSH_ALL.format(work=WORK, layer_bytes=LAYER_BYTES, domain=DOMAIN, pushes=pushes), timeout=600, env=creds)
    made = {}
    for line in output.splitlines():
        repository, tag, data = line.split(" ", 2)
        made[repository, tag] = json.loads(data)
    assert len(made) == sum(len(tags) for tags in PUSHED.values()), output
    now = time.time()
    REGISTRY_HOST.run(
        "\n".join(
            f"touch -m -d @{int(now - days * DAY)} {shlex.quote(pushed_link(repository, tag))}"
            for repository, tags in PUSHED.items()
            for tag, days in tags.items()
        )
    )
    settings = {"registry_retention_policies": POLICIES}

    # What nginx answers while writes are paused: before the registry,
    # without credentials; reads still reach the registry.
    def answer(method: str) -> str:
        return client.out(
            f"curl --silent --include --http1.1 --cacert {PEBBLE_ROOT} --request {method} https://{DOMAIN}/v2/any/blobs/uploads/", timeout=60
        )

    REGISTRY_HOST.run(f"{RELOAD_PROXY} --pause-writes")
    try:
        paused, read = answer("POST"), answer("GET")
    finally:
        REGISTRY_HOST.run(f"{RELOAD_PROXY} --resume-writes")
    resumed = answer("POST")
    assert paused.startswith("HTTP/1.1 503") and "retry-after: 60" in paused.lower() and PAUSED_MESSAGE in paused, paused
    assert read.startswith("HTTP/1.1 401") and resumed.startswith("HTTP/1.1 401"), (read, resumed)

    # The dry run, as users ask for it.
    dry = run_site(settings, play=GC_PLAY, check=True, label="garbage_collect --check")
    assert dry.rc == 0, dry.tail()
    assert listed_tags(dry.output) == EXPECTED, dry.tail(60)
    assert all(
        REGISTRY_HOST.run(f"test -e {shlex.quote(pushed_link(*key))}", check=False).returncode == 0 for key in made
    ), "the dry run deleted tags"
    # This run's settings went to a file of their own (gc.json still holds the previous ones), removed after.
    assert REGISTRY_HOST.out("find /tmp -maxdepth 1 -name '*.registry-gc.json'").strip() == "", "the dry run left its settings"

    # The real run, with the timer scheduled too, under a pull loop and pushes.
    before = disk_usage()
    client.run(f"rm -f {WORK}/push-loop.*")
    client.run(f"nohup sh -c {shlex.quote(PUSH_LOOP.format(work=WORK, domain=DOMAIN))} >{WORK}/push-loop.out 2>&1 &", env=creds)
    try:
        window, real = measure(
            client,
            images[0],
            "garbage collection",
            lambda: run_site({**settings, "registry_gc_schedule": SCHEDULE}, play=GC_PLAY, label="garbage_collect"),
        )
        time.sleep(3)  # a push after the window
    finally:
        client.run(f"touch {WORK}/push-loop.stop")
        deadline = time.time() + 90
        while time.time() < deadline and client.run(f"test -e {WORK}/push-loop.done", check=False).returncode != 0:
            time.sleep(1)
    after = disk_usage()
    assert real.rc == 0, real.tail()
    assert listed_tags(real.output) == EXPECTED, real.tail(60)
    freed = re.search(r"Freed [^(]*\(([0-9]+) bytes\)\. Writes were paused for ([0-9.]+) s", real.output)
    assert freed, real.tail(60)
    pushes = [json.loads(line) for line in client.out(f"cat {WORK}/push-loop.jsonl").splitlines()]
    refused = [push for push in pushes if push["rc"] != 0]
    report(
        f"{window.summary()}; {len(EXPECTED)} tags deleted, {int(freed.group(1))} bytes freed (du: {before - after}),"
        f" writes paused {freed.group(2)} s; pushes {len(pushes)}, refused {len(refused)}"
    )
    assert_no_failed_pull(window)
    # Each deleted image had a layer of its own.
    assert int(freed.group(1)) >= len(EXPECTED) * LAYER_BYTES, freed.group(0)
    assert before - after >= len(EXPECTED) * LAYER_BYTES - 4 * 65536, (before, after)
    assert refused, f"no push fell into the write window: {pushes}"
    # skopeo (and docker) print the status of a 5xx, not its body; docker
    # retries it by itself.
    unclear = [push for push in refused if "503" not in push["error"] or push["end"] - push["start"] > 10]
    assert not unclear, f"pushes that failed otherwise than at once with 503: {unclear}"
    last_refused = max(push["end"] for push in refused)
    assert any(push["rc"] == 0 and push["start"] > last_refused for push in pushes), f"no push succeeded after the window: {pushes}"

    # What stayed pulls whole; what went is gone.
    kept = list(load_state()["images"]) + [
        {"ref": f"{DOMAIN}/{repository}@{data['manifest']}"} for (repository, tag), data in made.items() if (repository, tag) not in EXPECTED
    ]
    kept += [{"ref": f"{DOMAIN}/pushes/during-gc:{push['tag']}"} for push in pushes if push["rc"] == 0]
    failed = {ref: error for ref, error in pull_all(client, kept).items() if error}
    assert not failed, f"kept images that no longer pull: {failed}"
    for repository, tag in EXPECTED:
        status, _headers = http_status(client, f"/v2/{repository}/manifests/{tag}", PULLER["name"], PULLER["password"])
        assert status == 404, f"{repository}:{tag} still answers {status}"
    walk = walk_registry(client)
    assert not walk["errors"], walk["errors"]

    # Collected layers, pushed again: a registry that still believed it had
    # them would let skopeo skip them, and the image would not pull.
    repository, tag = AGAIN
    directory = f"{WORK}/{repository.replace('/', '_')}-{tag}"
    client.run(
        f'skopeo copy --quiet --retry-times 0 --dest-creds "$RESILIENCE_CREDS" oci:{directory}:{tag} docker://{DOMAIN}/{repository}:{tag}',
        env=creds,
    )
    again = f"{DOMAIN}/{repository}@{made[AGAIN]['manifest']}"
    assert pull_all(client, [{"ref": again}])[again] == "", "an image pushed again after its layers were collected does not pull"
    report(f"garbage collection: kept images pull ({len(kept)}), deleted tags 404, API walk {walk['counts']}, {repository}:{tag} pushed again pulls")

    # The timer, and the service it starts, with its report in the journal.
    assert REGISTRY_HOST.out("systemctl is-enabled selfhosted-registry-gc.timer").strip() == "enabled"
    assert "Sun" in REGISTRY_HOST.out("systemctl show --property TimersCalendar --value selfhosted-registry-gc.timer")
    started = REGISTRY_HOST.out("date +%s").strip()
    REGISTRY_HOST.run("systemctl start selfhosted-registry-gc.service", timeout=300)
    journal = REGISTRY_HOST.out(f"journalctl --unit selfhosted-registry-gc.service --since @{started} --output cat")
    # ci/app1:b1 pushed again is now the newest of ci/app1: b5 goes.
    assert "deleted ci/app1:b5" in journal and "write window: closed after" in journal, journal
