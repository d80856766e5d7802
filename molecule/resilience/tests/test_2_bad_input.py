"""Bad input: the site playbook refuses wrong settings before it changes anything, naming the variable.

One run of the real site playbook (converge.yml, no tags) per case against the
converged host, with the case's variables as extra vars on top of the
scenario's (or with a variable removed from the inventory). For each case:
- the run fails;
- no task reported a change, and the host is exactly as before: metadata of
  every file under /opt/registry, /etc/docker/daemon.json, the dockerd
  drop-ins and /etc/letsencrypt, and SHA-256 of each outside the registry's
  storage, the containers (ID, image, start time, restarts), images and
  networks;
- the message of one failed check names the variable (each of them, for a
  case with several wrong values at once).
And, for all cases at once: each was refused by the site's check play, before
any role ran (a role that runs later may already have changed the host when a
check of a later role fails): the check play validates every role's argument
spec (its `preflight` entry point) and runs its checks.
A wrong setting that needs nothing of the host to be seen (all cases but those
marked `host`) is refused in the settings part of the check play, before any
role's checks ask the host anything.

Cases of one `group` share a run: settings of one role that different checks of
it refuse, each case named in the messages of that one run (a role reports
every wrong setting at once). A group's cases set different variables, and
no case's variable or text appears in the message of another case's check.
The runs go RESILIENCE_BAD_INPUT_WORKERS (default 3) at a time: they change
nothing when they pass, and each fails within the check play. The host's
snapshot after all of them is compared with the one before: a change fails
every case, since any of them may have made it. Rerun with
RESILIENCE_BAD_INPUT_WORKERS=1 to tell which: the cases then run one after
another, each with a snapshot of its own.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os

import pytest
from conftest import PROJECT_DIR, PULLER, SiteRun, host_snapshot, report, run_site, snapshot_diff

CHECK_PLAY = "Check the site settings before changing anything"
# The check play's task that runs the roles' checks of the host, after the settings of all.
HOST_CHECKS = "Check what every role needs of the host"
WORKERS = int(os.environ.get("RESILIENCE_BAD_INPUT_WORKERS", "3"))

OTHER = {"name": "bob", "password": "bob-test-password"}


@dataclasses.dataclass
class Case:
    id: str
    variables: str | tuple  # the name(s) the error message must contain
    set: dict = dataclasses.field(default_factory=dict)
    unset: tuple = ()
    # Text(s) the message must contain besides the variable, e.g. the bad value.
    says: str | tuple = ""
    # Another ansible-playbook (a virtualenv at the project's root, scripts/bootstrap).
    controller: str = ""
    # Only the host tells what is wrong (a command, a file or a user of the host):
    # refused in the host part of the check play, after every role's settings.
    host: bool = False
    # Cases of the same group run together (see the module's docstring).
    group: str = ""
    # More inventory groups for the run (run_site's `groups`): the roles of
    # several nodes on the host `lb`, idle until test_7.
    groups: dict = dataclasses.field(default_factory=dict)


ON_LB = "lb"


def users(*extra: dict) -> dict:
    return {"registry_users": [PULLER, *extra]}


# Each check once, with the mistakes users make most: the variants of a rule
# (every malformed name, every bad password) are unit tests of the rule itself
# (tests/unit/plugins/test/test_names.py, tests/unit/plugins/filter/), and a
# case here costs a site run.
CASES = [
    # The controller and the host: ansible-core too old (Debian 12's), and a
    # play that does not run as root there.
    Case("ansible-core-too-old", "ansible-core", controller=".venv-core-unsupported", says=("2.19", "pipx")),
    Case(
        "not-root-on-the-host",
        "become: true",
        {"ansible_become": True, "ansible_become_method": "sudo", "ansible_become_user": "nobody"},
        says="not as nobody",
    ),
    # The registry's name.
    Case("domain-with-scheme", "registry_domain", {"registry_domain": "https://registry.resilience.test"}),
    Case("domain-missing", "registry_domain", unset=("registry_domain",)),
    # Certificates.
    Case("acme-email-missing", "certificates_acme_email", unset=("certificates_acme_email",)),
    Case("acme-email-invalid", "certificates_acme_email", {"certificates_acme_email": "hostmaster"}, group="acme"),
    Case("acme-terms-not-agreed", "certificates_acme_agree_tos", {"certificates_acme_agree_tos": False}, group="acme"),
    Case(
        "acme-directory-plain-http",
        "certificates_acme_directory_url",
        {"certificates_acme_directory_url": "http://pebble:14000/dir"},
        group="acme",
    ),
    Case(
        "provided-certificate-missing",
        "certificates_provided_certificate_file",
        {
            "certificates_mode": "provided",
            "certificates_provided_certificate_file": "/nonexistent/fullchain.pem",
            "certificates_provided_private_key_file": "/nonexistent/privkey.pem",
        },
        says="/nonexistent/fullchain.pem",
    ),
    # Users: the registry role reports every problem of the list at once.
    Case(
        "users",
        "registry_users",
        users(
            {**OTHER, "name": "bob:builder"},
            # 37 characters, 73 bytes in UTF-8: the limit is bcrypt's, in bytes.
            {"name": "carol", "password": "é" * 36 + "x"},
            {**PULLER, "password": "another-password"},
            # The example inventory's placeholder: anyone can read it.
            {"name": "dave", "password": "CHANGE-ME"},
        ),
        says=("'bob:builder' contains ':'", "73 bytes long", "'alice' is given twice", "example inventory"),
        group="registry-1",
    ),
    # Access rules of token mode: every wrong rule at once.
    Case(
        "access-rules",
        "registry_access_rules",
        {
            "registry_auth_mode": "token",
            "registry_access_rules": [
                {"users": ["nobody"], "repositories": ["team/*"], "actions": ["pull"]},
                {"anonymous": True, "repositories": ["Public/*"], "actions": ["pull", "own"]},
            ],
        },
        says=("registry_access_rules[0] names users that registry_users does not have: nobody", "'Public/*' is not", "actions must be"),
        group="registry-2",
    ),
    # Retention and garbage collection: every wrong policy at once, then a
    # schedule that systemd cannot read.
    Case(
        "retention-policies",
        "registry_retention_policies",
        {
            "registry_retention_policies": [
                {"repositories": ["ci/**"], "delete_older_than": "30 days"},
                {"repositories": ["nightly/*"], "keep_tags": ["v[0-9"]},
            ]
        },
        says=("registry_retention_policies[0]: delete_older_than must be an age", "registry_retention_policies[1] must say which tags go"),
        group="registry-1",
    ),
    Case("gc-schedule", "registry_gc_schedule", {"registry_gc_schedule": "every sunday"}, says="systemd calendar event", host=True),
    # A key rotation where no key signs tokens.
    Case(
        "key-rotation-without-tokens",
        "registry_token_key_rotate",
        {"registry_auth_mode": "htpasswd", "registry_token_key_rotate": True},
        says=("set registry_auth_mode to token",),
        group="registry-3",
    ),
    # Ports and nginx.
    Case("https-port-negative", "proxy_https_port", {"proxy_https_port": -443}),
    # Storage.
    Case("storage-root-relative", "registry_storage_root", {"registry_storage_root": "data/registry"}, group="registry-2"),
    # Several nodes: a node on its own filesystem storage; a cache without a port.
    Case(
        "load-balanced-alone",
        "registry_load_balanced",
        {"registry_load_balanced": True},
        says="registry_storage_driver: s3 (is filesystem)",
        group="registry-2",
    ),
    Case("cache-without-port", "registry_redis_address", {"registry_redis_address": "cache.internal"}, says="'cache.internal'", group="registry-3"),
    # The roles of several nodes besides the registry's: a balancer whose name
    # no node serves (debian13 is a single host here) and a bad retry count,
    # reported at once; the cache's password; a client's engines.
    Case(
        "balancer-without-nodes",
        ("registry_load_balanced", "registry_domain"),
        says="no host of group registry serves that name",
        group="balancer",
        groups={"registry_balancer": [ON_LB]},
    ),
    Case("balancer-retries", "balancer_retries", {"balancer_retries": 50}, says="is 50", group="balancer", groups={"registry_balancer": [ON_LB]}),
    Case(
        "cache-password-short",
        "cache_password",
        {"cache_password": "too-short", "cache_bind_address": "10.0.0.5"},
        says="is 9",
        groups={"registry_cache": [ON_LB]},
    ),
    Case("client-engines", "client_engines", {"client_engines": ["rkt"]}, says='["rkt"]', groups={"registry_clients": [ON_LB]}),
    Case("storage-root-unwritable", "registry_storage_root", {"registry_storage_root": "/proc/registry-data"}),
    # The role would set the owner and mode of /opt.
    Case("base-dir-top-level", "registry_base_dir", {"registry_base_dir": "/opt"}, says="is '/opt'", group="registry-3"),
    # Everything in it would be given to the registry's user.
    Case("storage-root-shared", "registry_storage_root", {"registry_storage_root": "/var/lib"}, says=("/var/lib/", "more than the registry's data"), host=True),
    # The registry's user and limits.
    Case("registry-uid-of-another-user", "registry_uid", {"registry_uid": 1}, says="belongs to daemon", host=True),
    Case("memory-limit-not-a-byte-value", "registry_memory_limit", {"registry_memory_limit": "lots"}, group="registry-1"),
    # What registry_config_extra and registry_environment may not take from the role.
    Case(
        "authentication-switched-off",
        ("registry_config_extra", "registry_environment"),
        {"registry_config_extra": {"auth": None}, "registry_environment": {"REGISTRY_AUTH_HTPASSWD_PATH": "/dev/null"}},
        says="registry_auth_override",
        group="registry-3",
    ),
    Case(
        "data-moved-off-the-volume",
        ("registry_config_extra", "registry_environment", "registry_storage_root"),
        {
            "registry_config_extra": {"storage": {"filesystem": {"rootdirectory": "/tmp/registry"}}},
            "registry_environment": {"REGISTRY_HTTP_SECRET": "known"},
        },
        says="registry_http_secret",
    ),
    # What the host already runs: the other source's Docker engine, sshd on a proxy port.
    Case("docker-source-switch", ("docker_install_source", "docker_replace_other_source"), {"docker_install_source": "upstream"}, says="docker.io", host=True),
    Case("proxy-port-taken", "proxy_https_port", {"proxy_https_port": 22}, says="port 22: sshd", host=True),
    # Images and mirrors.
    Case("registry-image-latest", "registry_image", {"registry_image": "registry:latest"}, group="registry-1"),
    Case("mirror-url-without-scheme", "docker_registry_mirrors", {"docker_registry_mirrors": ["mirror:5000"]}),
    # The web UI: an image without a tag, a title that would break its page, deletes the registry refuses.
    Case(
        "ui-settings",
        ("registry_ui_image", "registry_ui_title", "registry_ui_delete"),
        {"registry_ui_enabled": True, "registry_ui_image": "joxit/docker-registry-ui", "registry_ui_title": "<b>",
         "registry_ui_delete": True, "registry_storage_delete": False},
        group="registry-2",
    ),
    Case(
        "metrics-networks",
        "proxy_metrics_networks",
        {"registry_metrics_enabled": True, "proxy_metrics_networks": ["10.0.5.7/8"]},
        says="10.0.5.7/8",
    ),
    # Types and choices that only the roles' argument specs check: refused by
    # the check play too (each role's `preflight` entry point). One case per
    # role with several wrong values: the spec names each of them in one
    # message.
    Case(
        "docker-spec",
        ("docker_install_source", "docker_service_enabled", "docker_daemon_settings"),
        {"docker_install_source": "snap", "docker_service_enabled": "maybe", "docker_daemon_settings": ["live-restore"]},
    ),
    Case(
        "registry-spec",
        ("registry_users", "registry_users_bcrypt_cost", "registry_users_update_password", "registry_storage_driver",
         "registry_major_version", "registry_environment", "registry_auth_mode"),
        {
            **users({**OTHER, "state": "gone"}),
            "registry_auth_mode": "kerberos",
            "registry_users_bcrypt_cost": "high",
            "registry_users_update_password": "sometimes",
            "registry_storage_driver": "azure",
            "registry_major_version": "4",
            "registry_environment": ["HTTPS_PROXY=http://proxy:3128"],
        },
        says="gone",
    ),
    Case(
        "certificates-spec",
        ("certificates_mode", "certificates_key_type", "certificates_acme_staging"),
        {"certificates_mode": "acme", "certificates_key_type": "dsa", "certificates_acme_staging": "perhaps"},
    ),
    Case(
        "proxy-spec",
        ("proxy_http_port", "proxy_error_log_level"),
        {"proxy_http_port": "eighty", "proxy_error_log_level": "loud"},
    ),
]


@dataclasses.dataclass
class Outcome:
    run: SiteRun
    changed: list  # snapshot lines that differ from before all cases

    @property
    def where(self) -> tuple:
        failures = self.run.failures()
        return (failures[0]["play"], failures[0]["task"]) if failures else (None, None)

    @property
    def asked_the_host(self) -> bool:
        """Whether the check play had come to the roles' checks of the host when it refused."""
        failures = self.run.failures()
        return bool(failures) and HOST_CHECKS in failures[0]["after"]


def runs_of(cases: list) -> list[list[Case]]:
    """The cases of each run: those of a group together, every other case alone."""
    runs: dict[str, list[Case]] = {}
    for case in cases:
        runs.setdefault(f"group {case.group}" if case.group else case.id, []).append(case)
    for together in runs.values():
        names = [name for case in together for name in (*case.set, *case.unset)]
        assert len(names) == len(set(names)), f"cases of one run set the same variable: {[case.id for case in together]}"
        assert len(together) == 1 or not any(case.controller or case.host for case in together), "only settings cases share runs"
        assert all(case.groups == together[0].groups for case in together), f"cases of one run name other groups: {[case.id for case in together]}"
    return list(runs.values())


@pytest.fixture(scope="module")
def outcomes() -> dict:
    """Every run once (WORKERS at a time), each case's outcome that of its run; the host's snapshot compared with
    the one before all runs: after each run when they run one at a time, after all of them otherwise."""
    baseline = host_snapshot()

    def attempt(together: list[Case]) -> Outcome:
        playbook = None
        if together[0].controller:
            playbook = str(PROJECT_DIR / together[0].controller / "bin" / "ansible-playbook")
            assert os.path.exists(playbook), f"{playbook} is missing: run scripts/bootstrap"
        variables = {name: value for case in together for name, value in case.set.items()}
        unset = tuple(name for case in together for name in case.unset)
        run = run_site(
            variables,
            unset=unset,
            label=f"bad-input {' + '.join(case.id for case in together)}",
            playbook=playbook,
            groups=together[0].groups or None,
        )
        return Outcome(run, snapshot_diff(baseline, host_snapshot()) if WORKERS == 1 else [])

    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [(together, pool.submit(attempt, together)) for together in runs_of(CASES)]
        results = {case.id: future.result() for together, future in futures for case in together}
    if WORKERS > 1:
        changed = snapshot_diff(baseline, host_snapshot())
        for outcome in results.values():
            outcome.changed = changed
    if any(outcome.run.rc == 0 or outcome.changed for outcome in results.values()):
        # Converge again with the scenario's settings for the tests after these.
        restore = run_site(label="bad-input: restore")
        assert restore.rc == 0, restore.tail()
    return results


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_without_change(case: Case, outcomes: dict):
    outcome = outcomes[case.id]
    run = outcome.run
    play, task = outcome.where
    variables = (case.variables,) if isinstance(case.variables, str) else case.variables
    says = (case.says,) if isinstance(case.says, str) else case.says
    # One message (one check's) names all of them: in a run shared with other
    # cases, the other checks' messages do not count for this one.
    named = any(all(text in message for text in variables + says) for message in run.failure_messages())
    messages = " | ".join(run.failure_messages())
    report(
        f"bad input {case.id:30} rc={run.rc} {run.seconds:5.1f}s names {', '.join(variables)}: {'yes' if named else 'NO'};"
        f" refused by {'the check play' if play == CHECK_PLAY else f'[{play}]'}: {task}"
    )
    assert run.rc != 0, f"the site playbook accepted {case.set or case.unset}"
    assert not outcome.changed, f"the host changed: {outcome.changed[:20]}"
    assert not any(counts.get("changed", 0) for counts in run.recap.values()), f"tasks reported changes before the failure: {run.recap}"
    assert named, f"the error does not name all of {variables} {says}: {messages[:1500]}"


def test_every_bad_input_is_refused_before_any_role_runs(outcomes: dict):
    """The site playbook promises that nothing changes until every check passed: refused in its check play."""
    late = {case_id: outcome.where for case_id, outcome in outcomes.items() if outcome.run.rc != 0 and outcome.where[0] != CHECK_PLAY}
    for case_id, (play, task) in late.items():
        report(f"refused only after roles ran: {case_id}: [{play}] {task}")
    assert not late, f"refused only after roles ran (a valid change in the same run would be half applied): {late}"


def test_wrong_settings_are_refused_before_the_host_is_asked(outcomes: dict):
    """A setting wrong on its face is refused by the settings part of the check play, before any command ran on the
    host for it (at once, and the same answer whatever the host holds); what only the host tells, after."""
    wrong_part = {
        case.id: outcomes[case.id].where[1]
        for case in CASES
        if outcomes[case.id].run.rc != 0 and outcomes[case.id].asked_the_host != case.host
    }
    for case_id, task in wrong_part.items():
        report(f"refused in the other part of the check play: {case_id}: {task}")
    assert not wrong_part, f"refused in the other part of the check play than expected (settings / host): {wrong_part}"
