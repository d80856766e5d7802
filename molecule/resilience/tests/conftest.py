"""Shared machinery of the resilience tests: containers, site playbook runs, pull loops, host state.

The tests drive the scenario from the machine that runs molecule:
- commands in the test containers go through `docker exec` (the registry host
  is rebooted by test_3_faults.py, and its published SSH port may change);
- the site playbook runs with molecule's inventory, copied with the current
  SSH ports and with the variables a test removes, plus extra vars;
- the client container pulls with skopeo and probes with its own tool
  (files/resilience_client.py, installed by prepare.yml).

State that later test files build on (the variables the site playbook now
runs with, the images pushed so far) is kept in molecule's ephemeral
directory, so each file also runs on its own after the ones before it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

DOCKER = os.environ.get("DOCKER") or "/usr/bin/docker"
SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "resilience")
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp/molecule-resilience"))
INVENTORY_DIR = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent if "MOLECULE_INVENTORY_FILE" in os.environ else None
SCENARIO_DIR = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path(__file__).resolve().parent.parent))

DOMAIN = "registry.resilience.test"
# molecule.yml's registry_users.
PULLER = {"name": "alice", "password": "alice-test-password"}
CI_USER = {"name": "ci", "password": "ci-test-password-0123456789"}
PEBBLE_ROOT = "/usr/local/share/selfhosted-test/pebble-root.pem"
# Run by the client's python3: ansible-test allows no shebang in test files.
CLIENT_TOOL = "python3 /usr/local/bin/resilience-client"
STATE_FILE = EPHEMERAL / "resilience-state.json"
# Kept after molecule's destroy prunes the ephemeral directory: next to the
# platform's build logs.
LOG_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "selfhosted-test" / "logs"
REPORT_FILE = LOG_DIR / "resilience-report.txt"
SITE_RUNS_LOG = LOG_DIR / "resilience-site-runs.log"

# Lines for the report at the end of the run (pytest_terminal_summary).
REPORT: list[str] = []


def report(line: str) -> None:
    REPORT.append(line)
    with open(REPORT_FILE, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def pytest_sessionstart(session: pytest.Session) -> None:
    EPHEMERAL.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    REPORT_FILE.write_text(f"resilience report, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    SITE_RUNS_LOG.write_text("")
    # The collection as the work tree has it now (see _private_collections).
    shutil.rmtree(PRIVATE_COLLECTIONS, ignore_errors=True)
    for old in LOG_DIR.glob("resilience-load-*.jsonl"):
        old.unlink()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    terminalreporter.section("resilience report")
    for line in REPORT:
        terminalreporter.write_line(line)
    terminalreporter.write_line(
        f"(also in {REPORT_FILE}; site playbook runs in {SITE_RUNS_LOG}, pull loop records in {LOG_DIR}/resilience-load-*.jsonl)"
    )


# --- containers ----------------------------------------------------------------------------------


class CommandFailed(AssertionError):
    pass


@dataclasses.dataclass
class Container:
    """A test container of the scenario, driven with `docker exec`."""

    platform: str

    @property
    def name(self) -> str:
        return f"{SCENARIO}-{self.platform}"

    def run(self, script: str, *, check: bool = True, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
        argv = [DOCKER, "exec", "-i"]
        for key, value in (env or {}).items():
            argv.append(f"--env={key}={value}")
        argv += [self.name, "bash", "-c", script]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise CommandFailed(f"{self.name}: {script!r} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        return result

    def out(self, script: str, **kwargs) -> str:
        return self.run(script, **kwargs).stdout

    def inspect(self, template: str) -> str:
        return subprocess.run(
            [DOCKER, "inspect", "--format", template, self.name], capture_output=True, text=True, check=True
        ).stdout.strip()

    def ssh_port(self) -> int:
        output = subprocess.run([DOCKER, "port", self.name, "22/tcp"], capture_output=True, text=True, check=True).stdout
        return int(output.splitlines()[0].rsplit(":", 1)[1])


# The platform's network (molecule/resources/vars/platform.yml): tests move the registry's name between hosts on it.
NETWORK = "selfhosted-test"


def network(*arguments: str) -> None:
    """`docker network ARGUMENTS`: connect or disconnect a test container, with the aliases it answers to."""
    subprocess.run([DOCKER, "network", *arguments], capture_output=True, text=True, check=True)


REGISTRY_HOST = Container("debian13")
CLIENT = Container("client")


@pytest.fixture(scope="session")
def registry_host() -> Container:
    return REGISTRY_HOST


@pytest.fixture(scope="session")
def client() -> Container:
    return CLIENT


def containers_of_stack(host: Container = REGISTRY_HOST) -> dict:
    """service -> 'id image started-at restart-count' of the registry project's containers."""
    output = host.out(
        "docker ps -aq --filter label=com.docker.compose.project=registry | xargs -r docker inspect --format"
        ' \'{{ index .Config.Labels "com.docker.compose.service" }} {{.Id}} {{.Config.Image}} {{.State.Status}}'
        " {{.State.StartedAt}} {{.RestartCount}}'"
    )
    return dict(line.split(" ", 1) for line in output.splitlines() if line.strip())


# --- state shared between the test files -------------------------------------------------------


def load_state() -> dict:
    if STATE_FILE.exists():
        return json.loads(STATE_FILE.read_text())
    return {"overrides": {}, "images": []}


def save_state(state: dict) -> None:
    STATE_FILE.write_text(json.dumps(state, indent=2) + "\n")


# --- the site playbook ---------------------------------------------------------------------------


@dataclasses.dataclass
class SiteRun:
    rc: int
    output: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def recap(self) -> dict:
        """host -> {ok, changed, unreachable, failed, ...} from the PLAY RECAP."""
        hosts = {}
        for line in self.output.splitlines():
            match = re.match(r"^(\S+)\s+:\s+(ok=.*)$", line)
            if match:
                hosts[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
        return hosts

    def failures(self) -> list[dict]:
        """Every failed task: play, task, the result (JSON) that Ansible printed, and the tasks that ran before it."""
        found, play, task, tasks = [], None, None, []
        for line in self.output.splitlines():
            if line.startswith("PLAY ["):
                play = line[6 : line.rindex("]")]
            elif line.startswith("TASK ["):
                task = line[6 : line.rindex("]")]
                tasks.append(task)
            match = re.match(r"^(?:fatal|failed): \[[^\]]+\].*? => (\{.*\})\s*$", line)
            if match:
                try:
                    result = json.loads(match.group(1))
                except json.JSONDecodeError:
                    result = {"msg": match.group(1)}
                found.append({"play": play, "task": task, "result": result, "after": list(tasks)})
        return found

    def changed_tasks(self) -> set[str]:
        """The names of the tasks and handlers that reported a change on some host."""
        changed, task = set(), None
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line[line.index("[") + 1 : line.rindex("]")]
            elif line.startswith("changed: [") and task:
                changed.add(task)
        return changed

    def failure_messages(self) -> list[str]:
        messages = []
        for failure in self.failures():
            result = failure["result"]
            messages.append(str(result.get("msg", "")))
            for item in result.get("results", []) or []:
                if isinstance(item, dict) and item.get("failed"):
                    messages.append(str(item.get("msg", "")))
        return messages

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def _site_inventory(
    unset: tuple[str, ...], target: Path, registry_hosts: list[str] | None = None, groups: dict | None = None, host_vars: dict | None = None
) -> Path:
    """Molecule's inventory in `target`, with the current SSH ports and without the variables in `unset`.

    `registry_hosts`: the hosts of the group `registry` instead of the scenario's; `groups`: more groups, name -> hosts;
    `host_vars`: more variables of some hosts, name -> variables.
    """
    assert INVENTORY_DIR is not None, "run the tests through molecule (MOLECULE_INVENTORY_FILE is not set)"
    shutil.copytree(INVENTORY_DIR, target)
    hosts_file = target / "ansible_inventory.yml"
    inventory = yaml.safe_load(hosts_file.read_text())
    if registry_hosts is not None:
        inventory["registry"]["hosts"] = {name: None for name in registry_hosts}
    for group, names in (groups or {}).items():
        inventory[group] = {"hosts": {name: None for name in names}}
    for name, hostvars in (inventory["all"].get("hosts") or {}).items():
        # A stopped host (test_5_backup_restore.py) has no port, nor a play.
        if Container(name).inspect("{{.State.Running}}") == "true":
            hostvars["ansible_port"] = Container(name).ssh_port()
        hostvars.update((host_vars or {}).get(name, {}))
    # The groups repeat the hosts (YAML anchors in molecule's file): same values.
    for group in inventory.values():
        for name in group.get("hosts") or {}:
            group["hosts"][name] = inventory["all"]["hosts"][name]
    hosts_file.write_text(yaml.safe_dump(inventory, default_flow_style=False))
    for directory in ("group_vars", "host_vars"):
        for path in (target / directory).glob("*") if (target / directory).exists() else []:
            data = yaml.safe_load(path.read_text()) or {}
            for key in unset:
                data.pop(key, None)
            path.write_text(yaml.safe_dump(data, default_flow_style=False))
    return target


_LOG_LOCK = threading.Lock()
_COLLECTION_LOCK = threading.Lock()
PROJECT_DIR = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or SCENARIO_DIR.parent.parent)
PRIVATE_COLLECTIONS = EPHEMERAL / "resilience-collections"


def _private_collections() -> Path:
    """The collection from the work tree, copied once per session for the tests' own site runs.

    Molecule installs the collection into ~/.ansible/collections before every
    command, for every scenario: a run of another scenario on the same
    machine replaces it while this one's 40 playbook runs use it (seen as
    "Could not find or access .../playbooks/preflight.yml" mid-run).
    """
    with _COLLECTION_LOCK:
        target = PRIVATE_COLLECTIONS / "ansible_collections" / "selfhosted" / "registry"
        if not target.exists():
            shutil.rmtree(PRIVATE_COLLECTIONS, ignore_errors=True)
            target.mkdir(parents=True)
            shutil.copy2(PROJECT_DIR / "galaxy.yml", target)
            for name in ("meta", "playbooks", "plugins", "roles"):
                shutil.copytree(PROJECT_DIR / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    return PRIVATE_COLLECTIONS


def run_site(
    extra: dict | None = None,
    unset: tuple[str, ...] = (),
    timeout: float = 900,
    label: str = "site",
    playbook: str | None = None,
    diff: bool = False,
    play: str | None = None,
    check: bool = False,
    registry_hosts: list[str] | None = None,
    groups: dict | None = None,
    host_vars: dict | None = None,
    verbosity: int = 0,
) -> SiteRun:
    """The site playbook (converge.yml, which imports selfhosted.registry.site) on the registry host, as a user runs it.

    Extra vars: the state's overrides (what earlier tests changed), then `extra`.
    `playbook`: another ansible-playbook than the one of the tests' virtualenv; `diff`: with --diff;
    `play`: another playbook (a collection's, e.g. selfhosted.registry.garbage_collect); `check`: with --check;
    `registry_hosts`: the hosts of the group `registry` (default: the scenario's); `groups`: more groups, name -> hosts;
    `host_vars`: more variables of some hosts, name -> variables (below extra vars, unlike `extra`);
    `verbosity`: as many -v.
    """
    state = load_state()
    variables = {k: v for k, v in state["overrides"].items() if k not in unset}
    variables.update(extra or {})
    work = Path(tempfile.mkdtemp(prefix="resilience-run-", dir=EPHEMERAL))
    inventory = _site_inventory(unset, work / "inventory", registry_hosts, groups, host_vars)
    vars_file = work / "extra-vars.json"
    vars_file.write_text(json.dumps(variables))
    playbook = playbook or shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(_private_collections()),
        ANSIBLE_NOCOLOR="true",
        ANSIBLE_FORCE_COLOR="false",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_CALLBACK_FORMAT_PRETTY="false",
    )
    start = time.time()
    result = subprocess.run(
        [
            playbook,
            f"--inventory={inventory}",
            f"--extra-vars=@{vars_file}",
            *(["--diff"] if diff else []),
            *(["--check"] if check else []),
            *([f"-{'v' * verbosity}"] if verbosity else []),
            play or str(SCENARIO_DIR / "converge.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    run = SiteRun(rc=result.returncode, output=result.stdout + result.stderr, start=start, end=time.time())
    shutil.rmtree(work, ignore_errors=True)
    with _LOG_LOCK, open(SITE_RUNS_LOG, "a", encoding="utf-8") as f:
        f.write(f"\n===== {label} rc={run.rc} {run.seconds:.1f}s vars={json.dumps(extra or {})} unset={list(unset)}\n{run.output}\n")
    return run


def apply_overrides(changes: dict) -> None:
    """Record variables the site now runs with (after a successful run)."""
    state = load_state()
    state["overrides"].update(changes)
    save_state(state)


# --- images on the registry ----------------------------------------------------------------------


def push_image(
    client: Container,
    repository: str,
    *,
    layers: int = 1,
    layer_bytes: int = 1 << 20,
    platforms: str = "amd64",
    timeout: float = 300,
    tag: str | None = None,
) -> dict:
    """Make an image of random layers on the client (an index for several platforms) and push it; returns {ref, blobs}.

    `tag`: push it as that tag (default: a new one), replacing the image it named.
    """
    name = tag or uuid.uuid4().hex[:8]
    directory = f"/var/tmp/resilience-image-{uuid.uuid4().hex[:8]}"
    made = json.loads(
        client.out(
            f"{CLIENT_TOOL} make-image {directory} --name {name} --layers {layers} --layer-bytes {layer_bytes} --platforms {platforms}",
            timeout=timeout,
        )
    )
    try:
        result = push_layout(client, directory, name, repository, timeout=timeout)
        if result.returncode != 0:
            raise CommandFailed(f"push of {repository} failed: {result.stderr.strip()}")
    finally:
        client.run(f"rm -rf {directory}", check=False)
    return {"ref": f"{DOMAIN}/{repository}@{made['manifest']}", "blobs": made["blobs"]}


def push_layout(client: Container, directory: str, name: str, repository: str, timeout: float = 300) -> subprocess.CompletedProcess:
    creds = f"{PULLER['name']}:{PULLER['password']}"
    return client.run(
        f'timeout {int(timeout)} skopeo copy --quiet --all --retry-times 0 --dest-creds "$RESILIENCE_CREDS" '
        f"oci:{directory}:{name} docker://{DOMAIN}/{repository}:{name}",
        check=False,
        timeout=timeout + 30,
        env={"RESILIENCE_CREDS": creds},
    )


def pull_all(client: Container, images: list[dict], timeout: float = 900) -> dict:
    """Pull every image by digest, every platform of an index (full transfer, blobs checked against their digests).

    Returns ref -> error ('' if ok).
    """
    refs = " ".join(shlex.quote(image["ref"]) for image in images)
    script = f"""
for ref in {refs}; do
  rm -rf /var/tmp/resilience-pull-check
  if err=$(timeout 300 skopeo copy --quiet --all --retry-times 0 --src-creds "$RESILIENCE_CREDS" \\
      "docker://$ref" oci:/var/tmp/resilience-pull-check:check 2>&1); then
    echo "OK $ref"
  else
    echo "FAIL $ref $(echo "$err" | tr '\\n' ' ' | tail -c 300)"
  fi
done
rm -rf /var/tmp/resilience-pull-check
"""
    output = client.out(script, timeout=timeout, env={"RESILIENCE_CREDS": f"{PULLER['name']}:{PULLER['password']}"})
    results = {}
    for line in output.splitlines():
        status, ref, *rest = line.split(" ", 2)
        results[ref] = "" if status == "OK" else (rest[0] if rest else "failed")
    for image in images:
        results.setdefault(image["ref"], "not attempted")
    return results


def walk_registry(client: Container) -> dict:
    """The client tool's API walk: counts and broken links."""
    return json.loads(
        client.out(
            f"{CLIENT_TOOL} walk --registry {DOMAIN} --ca {PEBBLE_ROOT}",
            timeout=300,
            env={"RESILIENCE_CREDS": f"{PULLER['name']}:{PULLER['password']}"},
        )
    )


# What the client accepts for manifests (the pushed images are OCI).
MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


def http_status(
    client: Container, path: str, user: str | None = None, password: str | None = None, bearer: str | None = None
) -> tuple[int, dict]:
    """Status and headers (lowercase names) of a GET through nginx, as a client authenticates (basic auth or a token),
    or with the token `bearer` and no other."""
    command = f"{CLIENT_TOOL} status --registry {DOMAIN} --ca {PEBBLE_ROOT} --accept {shlex.quote(MANIFEST_ACCEPT)} {shlex.quote(path)}"
    if bearer is not None:
        result = json.loads(client.out(command + f" --bearer {shlex.quote(bearer)}", timeout=60))
    elif user is None:
        result = json.loads(client.out(command + " --anonymous", timeout=60))
    else:
        result = json.loads(client.out(command, timeout=60, env={"RESILIENCE_CREDS": f"{user}:{password}"}))
    return result["status"], result["headers"]


def wait_until_served(client: Container, path: str = "/v2/", timeout: float = 180) -> float | None:
    """Time at which `path` answers 200 to the puller through nginx and TLS, None on timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if http_status(client, path, PULLER["name"], PULLER["password"])[0] == 200:
                return time.time()
        except AssertionError:
            pass  # connection refused or reset while the host boots or the stack starts
        time.sleep(1)
    return None


def manifest_path(image: dict) -> str:
    """The API path of an image's manifest, by digest."""
    repository, _at, digest = image["ref"].partition("/")[2].partition("@")
    return f"/v2/{repository}/manifests/{digest}"


def served_serial(client: Container) -> str:
    return client.out(
        f"openssl s_client -connect {DOMAIN}:443 -servername {DOMAIN} -CAfile {PEBBLE_ROOT} -verify_return_error"
        f" </dev/null 2>/dev/null | openssl x509 -noout -serial"
    ).strip()


@pytest.fixture(scope="session")
def images(client: Container) -> list[dict]:
    """Images on the registry: pushed once, kept in the state; the first one is what the load loop pulls."""
    state = load_state()
    if not state["images"]:
        pushed = [push_image(client, "load/pulled", layers=2, layer_bytes=2 << 20)]
        for name in ("data/one", "data/two", "data/three"):
            pushed.append(push_image(client, name, layers=1, layer_bytes=512 << 10))
        state = load_state()
        state["images"] = pushed
        save_state(state)
    return state["images"]


def add_image(image: dict) -> None:
    state = load_state()
    state["images"].append(image)
    save_state(state)


# --- the pull loop -------------------------------------------------------------------------------


@dataclasses.dataclass
class Attempt:
    kind: str
    start: float
    end: float
    ok: bool
    detail: str


@dataclasses.dataclass
class Load:
    """The client's pull loop and manifest probe; results as Attempts."""

    client: Container
    log: str

    def records(self) -> list[Attempt]:
        output = self.client.out(f"cat {self.log} 2>/dev/null || true")
        return [
            Attempt(r["kind"], r["start"], r["end"], r["ok"], r.get("detail", ""))
            for r in (json.loads(line) for line in output.splitlines() if line.strip())
        ]

    def wait_for_pulls(self, count: int, after: float, timeout: float) -> None:
        """Until `count` pulls that started after `after` have ended (bounded)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len([a for a in self.records() if a.kind == "pull" and a.start >= after]) >= count:
                return
            time.sleep(1)
        raise AssertionError(f"fewer than {count} pulls after {after} within {timeout}s: {self.records()[-5:]}")

    def wait_until_pulls_succeed(self, count: int, after: float, timeout: float) -> float | None:
        """Until `count` pulls in a row that started after `after` succeeded; time of the first, None on timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            pulls = [a for a in self.records() if a.kind == "pull" and a.start >= after]
            run = 0
            for attempt in pulls:
                run = run + 1 if attempt.ok else 0
                if run >= count:
                    ok_pulls = [a for a in pulls if a.ok]
                    return ok_pulls[-count].start if ok_pulls else None
            time.sleep(1)
        return None


@contextlib.contextmanager
def load_loop(client: Container, image: dict, phase: str, max_seconds: float = 900, max_pulls: int = 2000, pull_retries: int = 0):
    """Run the pull loop during the block: ready once 2 pulls succeeded, stopped (bounded) at the end.

    `pull_retries`: each pull tries a failed request again that often, as docker does (default: never).
    """
    log = f"/var/tmp/resilience-load-{re.sub('[^a-z0-9]+', '-', phase.lower()).strip('-')}.jsonl"
    client.run(f"rm -f {log} {log}.done {log}.stop")
    client.run(
        f"nohup {CLIENT_TOOL} load --ref {image['ref']} --ca {PEBBLE_ROOT} --log {log} --stop-file {log}.stop"
        f" --max-seconds {max_seconds} --max-pulls {max_pulls} --pull-timeout 60 --pull-retries {pull_retries} --pull-interval 1 --probe-interval 0.25"
        f" >{log}.out 2>&1 &",
        env={"RESILIENCE_CREDS": f"{PULLER['name']}:{PULLER['password']}"},
    )
    loop = Load(client, log)
    try:
        start = time.time()
        loop.wait_for_pulls(2, after=start - 5, timeout=120)
        yield loop
    finally:
        client.run(f"touch {log}.stop")
        deadline = time.time() + 90
        while time.time() < deadline and client.run(f"test -e {log}.done", check=False).returncode != 0:
            time.sleep(1)
        subprocess.run([DOCKER, "cp", f"{client.name}:{log}", str(LOG_DIR)], capture_output=True, check=False)


@dataclasses.dataclass
class Window:
    """What the pull loop saw around one action [start, end]."""

    phase: str
    start: float
    end: float
    attempts: list[Attempt]

    def of(self, kind: str) -> list[Attempt]:
        return [a for a in self.attempts if a.kind == kind]

    def during(self, kind: str) -> list[Attempt]:
        return [a for a in self.of(kind) if a.start < self.end and a.end > self.start]

    def failed(self, kind: str) -> list[Attempt]:
        return [a for a in self.of(kind) if not a.ok]

    def outage(self, kind: str) -> tuple[float, float] | None:
        """(lower, upper) bound of the failure window in seconds, None without failures.

        lower: first failed attempt's start to the last failed attempt's end;
        upper: end of the last success before the first failure to the start
        of the first success after the last failure.
        """
        attempts = sorted(self.of(kind), key=lambda a: a.start)
        failed = [a for a in attempts if not a.ok]
        if not failed:
            return None
        first, last = failed[0], failed[-1]
        before = [a for a in attempts if a.ok and a.end <= first.start]
        after = [a for a in attempts if a.ok and a.start >= last.end]
        lower = last.end - first.start
        upper = (after[0].start if after else last.end) - (before[-1].end if before else first.start)
        return lower, upper

    def summary(self) -> str:
        parts = [f"{self.phase}: action {self.end - self.start:.1f}s"]
        for kind in ("pull", "probe"):
            outage = self.outage(kind)
            window = "" if outage is None else f", failure window {outage[0]:.1f}-{outage[1]:.1f}s"
            parts.append(
                f"{kind}s {len(self.of(kind))} ({len(self.during(kind))} during the action), failed {len(self.failed(kind))}{window}"
            )
        return "; ".join(parts)

    def failure_details(self, kind: str, limit: int = 5) -> list[str]:
        return [f"{a.start - self.start:+.1f}s: {a.detail}" for a in self.failed(kind)[:limit]]


def assert_no_failed_pull(window: Window) -> None:
    assert window.during("pull"), f"{window.phase}: no pull overlapped the change; the test proves nothing"
    assert not window.failed("pull"), f"{window.phase}: failed pulls: {window.failure_details('pull')}"
    assert not window.failed("probe"), f"{window.phase}: failed probes: {window.failure_details('probe')}"


def measure(client: Container, image: dict, phase: str, action, settle_pulls: int = 2) -> tuple[Window, object]:
    """Run `action()` while the client pulls in a loop; a few pulls after it ends are part of the window."""
    with load_loop(client, image, phase) as loop:
        start = time.time()
        result = action()
        end = time.time()
        loop.wait_for_pulls(settle_pulls, after=end, timeout=180)
    window = Window(phase, start, end, loop.records())
    report(window.summary())
    return window, result


# --- state of the registry host --------------------------------------------------------------------

SNAPSHOT_PATHS = "/opt/registry /etc/docker/daemon.json /etc/systemd/system/docker.service.d /etc/letsencrypt"
# The registry's storage is listed (size, time) but not hashed: its files are
# written once, under their digest, and hashing the 600 MiB layer of
# test_0_upgrade.py again for every bad-input case is CPU that adds nothing.
REGISTRY_STORAGE = "/opt/registry/data"
SNAPSHOT_SCRIPT = f"""
set -e
find {SNAPSHOT_PATHS} -xdev -printf '%p %y %m %u:%g %s %T@ %l\\n' 2>/dev/null | sort
find {SNAPSHOT_PATHS} -xdev -type f -not -path '{REGISTRY_STORAGE}/*' -print0 2>/dev/null | sort -z | xargs -0 sha256sum
for id in $(docker ps -aq); do
  docker inspect --format '{{{{.Id}}}} {{{{.Name}}}} {{{{.Config.Image}}}} {{{{.Image}}}} {{{{.State.StartedAt}}}} {{{{.RestartCount}}}}' "$id"
done | sort
docker image ls --no-trunc --format '{{{{.Repository}}}}:{{{{.Tag}}}} {{{{.ID}}}}' | sort
docker network ls --no-trunc --format '{{{{.ID}}}} {{{{.Name}}}}' | sort
"""


def host_snapshot(host: Container = REGISTRY_HOST) -> list[str]:
    """Files (metadata, and SHA-256 outside the registry's storage) under /opt/registry, daemon.json,
    dockerd drop-ins, /etc/letsencrypt; containers (ID, image, start time, restarts), images, networks."""
    return host.out(SNAPSHOT_SCRIPT, timeout=120).splitlines()


def storage_root() -> str:
    """Where the registry's data is now: REGISTRY_STORAGE until test_3_faults.py moves it."""
    return load_state()["overrides"].get("registry_storage_root", REGISTRY_STORAGE)


def snapshot_diff(before: list[str], after: list[str]) -> list[str]:
    removed = sorted(set(before) - set(after))
    added = sorted(set(after) - set(before))
    return [f"- {line}" for line in removed] + [f"+ {line}" for line in added]


# --- token signing keys (test_1_zero_downtime.py's rotation, test_2_zero_downtime_key_expiry.py) --------

TOKEN_DIR = "/opt/registry/token"
# A token as the token service signs one, with the key and certificate in the
# directory given, for pulls of a repository, valid for an hour: the
# registry takes it as long as it trusts that key.
FORGE_TOKEN = """
import sys, time
sys.path.insert(0, "/usr/local/lib/selfhosted-registry")
import token_server
directory, audience, repository = sys.argv[1:]
now = int(time.time())
claims = {"iss": "selfhosted-registry-token", "sub": "alice", "aud": audience, "exp": now + 3600, "nbf": now - 1,
          "iat": now, "jti": "resilience", "access": [{"type": "repository", "name": repository, "actions": ["pull"]}]}
print(token_server.Signer(directory + "/signing-key.pem", directory + "/signing-certificate.pem").sign(claims))
"""


REPLACED_SIGNER = "/var/tmp/resilience-replaced-signer"


def repository_of(image: dict) -> str:
    return image["ref"][len(DOMAIN) + 1 :].split("@")[0]


def save_signer() -> str:
    """A copy of the key and certificate that sign tokens now, for forged_token()."""
    REGISTRY_HOST.out(f"rm -rf {REPLACED_SIGNER} && mkdir -m 0700 {REPLACED_SIGNER} && cp {TOKEN_DIR}/signing-*.pem {REPLACED_SIGNER}/")
    return REPLACED_SIGNER


def forged_token(directory: str, image: dict) -> str:
    """A token for pulls of the image's repository, signed on the host with the key in `directory`, valid for an hour."""
    return REGISTRY_HOST.out(f"python3 -c {shlex.quote(FORGE_TOKEN)} {directory} {DOMAIN} {repository_of(image)}").strip()
