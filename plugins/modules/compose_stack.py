#!/usr/bin/python
# Copyright (c) selfhosted.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: compose_stack
short_description: Run a compose project on a Docker engine, with or without the compose CLI
version_added: 0.1.0
description:
  - Reads one or more compose files and makes the Docker engine run the services they define, talking to the engine
    through the Docker SDK for Python. The compose CLI is not needed, and is used where it is installed (see below).
  - Containers, networks and volumes are named and labelled the way compose v2 does it (containers
    C(<project>-<service>-1), networks and volumes C(<project>_<name>), the C(com.docker.compose.*) labels), so
    C(docker compose -p <project> ps), C(logs) and C(down) work on the same project.
  - A service's container is recreated only when its effective definition or the image it runs changed; the
    comparison uses the hash stored in the C(com.docker.compose.config-hash) label and the image ID in
    C(com.docker.compose.image).
  - Works beside the compose CLI. Where C(docker compose) (v2) is installed on the target, the hash is the one compose
    itself computes for the same files (C(docker compose config --hash)), so C(docker compose up -d) run in the project
    directory recreates nothing this module created, and this module takes the containers compose created from the
    same files as its own. Without compose, the module's own hash is used; installing or removing compose later
    recreates each container once.
  - Keeps C(COMPOSE_PROJECT_NAME) and C(COMPOSE_FILE) in the project directory's C(.env) (other lines are left as they
    are), so that C(docker compose) there works on this project with all its files. C(COMPOSE_FILE) lists the files of
    every run of the module on the project directory, in the order first seen; files that no longer exist are dropped.
  - All images are pulled before anything is stopped; a failed pull or a definition error leaves the running stack as
    it was.
  - Supports the subset of the compose specification listed under O(files). Any other key is an error that names the
    key, the service and the file. Variable interpolation (C(${VAR}), C($VAR)) is not supported and is an error;
    write C($$) for a literal C($). Render final values with a template instead.
  - Files are read as YAML 1.2 like the compose CLI does (V(no) and V(8080:50) are strings, not a boolean and a
    number). Duplicate keys are an error. Top-level C(version) and C(x-*) extension keys are ignored.
author:
  - selfhosted.registry maintainers (@selfhosted)
requirements:
  - Docker SDK for Python 5.0.3 or newer (Debian package C(python3-docker))
  - PyYAML (Debian package C(python3-yaml))
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Nothing is pulled, created, stopped or signalled in check mode. Images that would be pulled are listed in
        RV(pulled).
      - The actions reported are those a real run would take with the images present on the engine now. With
        O(pull=always), check mode cannot know whether the registry has newer images; a service whose image is not
        present yet is reported as V(created) or V(recreated).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - Per service, only the fields that changed are shown, before and after. Environment values are shown, like
        C(docker inspect) shows them; keep secrets out of compose environment variables.
  idempotent:
    description: When run twice in a row with the same arguments, the second run reports no change.
    support: partial
    details:
      - With O(state=present) and no O(signal), and with O(state=stopped) or O(state=absent), a second run changes
        nothing.
      - O(signal) and O(state=restarted) act on every run, by design.
options:
  project_src:
    description:
      - Directory of the project. Relative O(files) and relative bind-mount sources are resolved against it, and it is
        recorded as the project's working directory.
    type: path
    required: true
  files:
    description:
      - Compose files, relative to O(project_src) (or absolute).
      - With several files, their top-level C(services), C(networks) and C(volumes) are united; a service, network or
        volume defined in two files is an error that names both files. Files are not merged key by key like
        C(docker compose -f a -f b) does.
      - "Supported service keys: C(image), C(command), C(entrypoint), C(environment) (list and map forms),
        C(volumes) (short and long syntax, bind mounts and named volumes, read-only), C(ports) (short and long syntax,
        with host IP), C(networks) (list, or map with C(aliases)), C(restart), C(healthcheck) (C(test), C(interval),
        C(timeout), C(retries), C(start_period), C(disable)), C(depends_on) (list, or map with C(condition)
        V(service_started) or V(service_healthy)), C(labels), C(user), C(read_only), C(tmpfs), C(stop_signal),
        C(stop_grace_period), C(deploy.update_config) (C(order), C(monitor); see the notes), and the keys that
        confine a container: C(cap_add) and C(cap_drop) (capability names, with or without C(CAP_), or C(ALL)),
        C(security_opt), C(pids_limit), C(mem_limit) (bytes or a byte value such as C(512m)) and C(ulimits)
        (a number, or C(soft) and C(hard)). A change of any of them recreates only that service's container."
      - "Supported top-level keys: C(services), C(networks) (C(name), C(driver), C(internal), C(external)),
        C(volumes) (C(name), C(driver), C(external)), C(name)."
      - Anonymous volumes and C(~) in paths are not supported. Missing bind-mount sources are created as directories
        by the engine.
    type: list
    elements: str
    default: [compose.yaml]
  project_name:
    description:
      - Name of the compose project. Must follow compose's rules, that is lowercase letters, digits, dashes and
        underscores, starting with a letter or digit.
      - Defaults to the top-level C(name) of the compose files, then to the base name of O(project_src) made valid
        the way compose does it (lowercased, other characters dropped).
    type: str
  state:
    description:
      - V(present) creates, recreates or starts the selected services (and the services they depend on) so that they
        run what the files define.
      - V(stopped) stops the running containers of the selected services. It creates nothing.
      - V(restarted) does what V(present) does, then restarts the containers that this run did not create, recreate
        or start.
      - V(absent) removes the containers of the selected services. Without O(services), it removes every container of
        the project (also of services no longer in the files) and the project's networks; volumes only with
        O(remove_volumes=true).
    type: str
    choices: [present, stopped, restarted, absent]
    default: present
  services:
    description:
      - Act on these services only. With O(state=present) and O(state=restarted), the services they depend on are
        included.
      - Default is all services of the project.
    type: list
    elements: str
  pull:
    description:
      - V(missing) pulls an image only when the engine does not have it.
      - V(always) pulls every image of the selected services; a service whose image changed is recreated.
    type: str
    choices: [missing, always]
    default: missing
  wait:
    description:
      - Wait until the containers of the selected services are healthy (when they have a healthcheck) or running.
      - Regardless of this option, a service that another depends on with condition V(service_healthy) is waited for
        before the dependent is started.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for one container to become healthy or running, for O(wait) and for C(service_healthy)
        dependencies.
    type: int
    default: 120
  signal:
    description:
      - With O(state=present), send this signal (for example V(SIGHUP)) to the running containers of O(services) (all
        services when O(services) is not set) that this run did not create, recreate or start. This reloads nginx
        without a restart.
      - A signal name with or without C(SIG), or a number.
      - Only allowed with O(state=present).
    type: str
  remove_volumes:
    description:
      - With O(state=absent) and no O(services), also remove the project's named volumes and the containers'
        anonymous volumes. Bind-mounted host directories are never touched.
      - Only allowed with O(state=absent).
    type: bool
    default: false
  docker_host:
    description:
      - The Docker engine's API address, for example V(unix:///var/run/docker.sock) or V(tcp://127.0.0.1:2375).
      - If not set, the environment variable E(DOCKER_HOST) is used, and then V(unix:///var/run/docker.sock).
    type: str
  timeout:
    description:
      - Timeout in seconds for one call to the Docker engine API.
    type: int
    default: 60
notes:
  - Services always run one container (C(<project>-<service>-1)). Other containers of the project, such as those of
    services no longer in the files, are left alone except by O(state=absent) without O(services); a warning names
    them.
  - Network and volume definitions are compared too. A network whose C(driver) or C(internal) setting changed is
    recreated; the containers of the selected services on it are recreated, other containers of the project on it
    (services not selected, or defined in other files) are reconnected to the new network with their aliases.
    Containers of other projects on it make this an error. A volume whose driver changed is an error, never removed
    implicitly.
  - When a container is recreated, the new one is created before the old one is stopped; if creating or starting the
    new container fails, the old one is put back.
  - A service with C(deploy.update_config.order=start-first) is recreated without a gap, as in swarm mode. The new
    container starts beside the running old one (both answer to the service's network aliases), must become ready
    (healthy, or running without a healthcheck) within O(wait_timeout) and stay ready for
    C(deploy.update_config.monitor), and only then is the old one stopped (within its C(stop_grace_period)). If the
    new one fails, it is removed and the old one keeps running. Not for services that publish ports. The default,
    C(stop-first), stops the old container before starting the new one. C(deploy) is not part of the container's
    definition, so changing it recreates nothing.
seealso:
  - name: Compose file reference
    description: The compose specification, of which this module supports the subset listed under O(files).
    link: https://docs.docker.com/reference/compose-file/
'''

EXAMPLES = r'''
- name: Run the registry stack
  selfhosted.registry.compose_stack:
    project_src: /srv/registry
    wait: true

- name: Reload nginx after its configuration changed, without restarting it
  selfhosted.registry.compose_stack:
    project_src: /srv/registry
    services:
      - proxy
    signal: SIGHUP

- name: Update images from the registry and recreate what changed
  selfhosted.registry.compose_stack:
    project_src: /srv/registry
    pull: always
    wait: true
    wait_timeout: 300

- name: Stack made of two files, one owned by each role
  selfhosted.registry.compose_stack:
    project_src: /srv/registry
    project_name: registry
    files:
      - compose.registry.yaml
      - compose.proxy.yaml

- name: Stop the stack, keeping containers
  selfhosted.registry.compose_stack:
    project_src: /srv/registry
    state: stopped

- name: Remove containers and networks, keeping volumes and host data
  selfhosted.registry.compose_stack:
    project_src: /srv/registry
    state: absent
'''

RETURN = r'''
project_name:
  description: The compose project name used.
  returned: always
  type: str
  sample: registry
actions:
  description:
    - What was done (in check mode, what would be done) to each service the run looked at.
    - One of V(created), V(recreated), V(started), V(stopped), V(restarted), V(removed), V(signaled), V(unchanged).
  returned: success
  type: dict
  sample:
    registry: unchanged
    proxy: signaled
containers:
  description:
    - The containers of the services, after the run (in check mode, as they are now). A service without a container
      is left out.
  returned: success
  type: dict
  sample:
    registry:
      id: 3f6c1d8e0a7b4c2d9e1f0a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d
      name: registry-registry-1
      image: registry:2.8.3
      status: running
      health: healthy
  contains:
    id:
      description: Container ID.
      type: str
    name:
      description: Container name.
      type: str
    image:
      description: Image reference the container was created from.
      type: str
    status:
      description: Container state as the engine reports it (V(running), V(exited), V(created), ...).
      type: str
    health:
      description: Health status, or V(null) when the container has no healthcheck.
      type: str
pulled:
  description:
    - Images that were pulled (in check mode, that would be pulled).
  returned: success
  type: list
  elements: str
  sample: [registry:2.8.3]
networks:
  description: What was done to each network of the project (V(created), V(recreated), V(removed), V(unchanged)).
  returned: success
  type: dict
  sample:
    registry_default: unchanged
volumes:
  description: What was done to each named volume of the project (V(created), V(removed), V(unchanged)).
  returned: success
  type: dict
  sample:
    registry_data: created
env_file:
  description:
    - What was done to C(.env) in the project directory (V(created), V(updated), V(unchanged)). Only
      O(state=present) and O(state=restarted) write it.
  returned: success
  type: str
  sample: unchanged
'''

import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.selfhosted.registry.plugins.module_utils._compose_cli import ENV_FILE, compose_hashes, compose_version, env_text
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_labels import (
    container_labels,
    container_name,
    resource_labels,
)
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_load import (
    HAS_YAML,
    YAML_IMPORT_ERROR,
    ComposeError,
    parse_duration,
)
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_plan import plan_networks, plan_services, plan_volumes
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_spec import (
    load_project,
    select_services,
    start_order,
    validate_signal,
)
from ansible_collections.selfhosted.registry.plugins.module_utils._docker_engine import (
    DEFAULT_DOCKER_HOST,
    DOCKER_SDK_IMPORT_ERROR,
    HAS_DOCKER_SDK,
    Engine,
    EngineError,
    public_container,
)


class StackRunner(object):
    """Read the current state, compute the difference, then act (unless check mode)."""

    def __init__(self, module, engine, project):
        self.module = module
        self.engine = engine
        self.project = project
        self.params = module.params
        self.check_mode = module.check_mode
        self.actions = {}
        self.pulled = []
        self.images_changed = []
        self.networks = {}
        self.volumes = {}
        self.diff = {'before': {}, 'after': {}}
        self.containers = {}
        self.current = {}
        self._network_plan = None
        self._volume_plan = None
        self.compose_version = None
        self.env_file = 'unchanged'

    # -- helpers ----------------------------------------------------------

    def _observe(self):
        """Project containers by service (number 1), and the rest."""
        by_service = {}
        others = []
        records = self.engine.project_containers(self.project.name)
        # A container with the canonical name wins over, say, a renamed one left by an interrupted recreation.
        records.sort(key=lambda r: (r['name'] != container_name(self.project.name, r['service'] or ''), r['name']))
        for record in records:
            service = record['service']
            if service in self.project.services and record['number'] == '1' and service not in by_service:
                by_service[service] = record
            else:
                others.append(record)
        return by_service, others

    def _diff_add(self, section, name, before, after):
        if before or after:
            self.diff['before'].setdefault(section, {})[name] = before
            self.diff['after'].setdefault(section, {})[name] = after

    def result(self):
        changed = (any(a != 'unchanged' for a in self.actions.values())
                   or any(a != 'unchanged' for a in self.networks.values())
                   or any(a != 'unchanged' for a in self.volumes.values())
                   or bool(self.images_changed)
                   or self.env_file != 'unchanged')
        result = {
            'changed': changed,
            'project_name': self.project.name,
            'actions': self.actions,
            'containers': self.containers,
            'pulled': self.pulled,
            'networks': self.networks,
            'volumes': self.volumes,
            'env_file': self.env_file,
        }
        if self.module._diff:
            result['diff'] = self.diff
        return result

    def _refresh_containers(self, services):
        self.containers = {}
        for service in sorted(services):
            container_id = self.current.get(service)
            if container_id is None:
                continue
            record = self.engine.inspect_container(container_id)
            if record is not None:
                self.containers[service] = public_container(record)

    # -- present / restarted ---------------------------------------------

    def converge(self):
        project = self.project
        state = self.params['state']
        selected = select_services(project, self.params['services'], include_dependencies=True)
        observed, others = self._observe()
        self._warn_others(others)
        self.current = dict((s, r['id']) for s, r in observed.items())

        hashes = self._compose_cli()
        image_ids = self._resolve_images(selected)
        forced = self._plan_networks_and_volumes(selected, observed, others)

        signal = self.params['signal']
        signal_targets = self.params['services'] or list(project.services)
        plan = plan_services(project, selected, state, observed, image_ids, signal=signal,
                             signal_targets=signal_targets, forced_recreate=forced, compose_hashes=hashes)
        self._check_name_conflicts(plan, observed)
        for service, entry in plan.items():
            self.actions[service] = entry['action']
            self._diff_add('services', service, entry['before'], entry['after'])

        if not self.check_mode:
            self._apply_networks_and_volumes(observed, forced)
            for service, entry in plan.items():
                self._apply_service(service, entry, observed.get(service))
            if self.params['wait']:
                for service in start_order(project.services, selected):
                    self.engine.wait_ready(self.current[service], service, self.params['wait_timeout'],
                                           why='wait=true')
        self._write_env_file()
        self._refresh_containers(selected)

    def _compose_cli(self):
        """compose's own config hashes (and version) where compose v2 is installed, else None (_compose_cli)."""
        docker = self.module.get_bin_path('docker')
        self.compose_version = compose_version(self.module.run_command, docker)
        if self.compose_version is None:
            return None
        return compose_hashes(self.module.run_command, docker, self.project)

    def _write_env_file(self):
        """The project's .env names the project and all its files, for a bare `docker compose` in the directory."""
        path = os.path.join(self.project.working_dir, ENV_FILE)
        before = None
        if os.path.exists(path):
            with open(path) as handle:
                before = handle.read()
        after = env_text(self.project, before)
        if before == after:
            return
        self.env_file = 'created' if before is None else 'updated'
        self._diff_add('files', ENV_FILE, before or '', after)
        if self.check_mode:
            return
        fd, temporary = tempfile.mkstemp(dir=self.project.working_dir, prefix='.env.')
        with os.fdopen(fd, 'w') as handle:
            handle.write(after)
        os.chmod(temporary, 0o644)
        self.module.atomic_move(temporary, path)

    def _warn_others(self, others):
        # Containers of services defined in other files of the same project are normal (one file per role);
        # extra replicas of our services (compose --scale) are not.
        names = sorted(r['name'] for r in others if r['service'] in self.project.services)
        if names:
            self.module.warn('project %s has extra containers of its services that compose_stack does not manage: '
                             '%s. They were left alone; state=absent without services removes them.'
                             % (self.project.name, ', '.join(names)))

    def _resolve_images(self, selected):
        """Resolve every image to an ID, pulling what is needed, before anything else changes."""
        image_ids = {}
        for reference in sorted(set(self.project.services[s]['image'] for s in selected)):
            current_id = self.engine.image_id(reference)
            if self.params['pull'] == 'always' or current_id is None:
                self.pulled.append(reference)
                if self.check_mode:
                    image_ids[reference] = current_id if self.params['pull'] == 'always' else None
                    if current_id is None:
                        self.images_changed.append(reference)
                    continue
                try:
                    new_id = self.engine.pull(reference)
                except EngineError as exc:
                    raise EngineError('%s. Nothing in the running stack was changed.' % exc)
                if new_id != current_id:
                    self.images_changed.append(reference)
                image_ids[reference] = new_id
            else:
                image_ids[reference] = current_id
        return image_ids

    def _plan_networks_and_volumes(self, selected, observed, others):
        """Read the networks and volumes the selected services use, then plan them (pure functions)."""
        project = self.project
        networks = set(project.networks[key]['name'] for s in selected for key in project.services[s]['networks'])
        volumes = set(project.volumes[m['source']]['name'] for s in selected for m in project.services[s]['volumes']
                      if m['type'] == 'volume')
        self._network_plan = plan_networks(project, selected, dict((name, self.engine.network(name)) for name in networks),
                                           observed, others)
        self._volume_plan = plan_volumes(project, selected, dict((name, self.engine.volume(name)) for name in volumes))
        for warning in self._network_plan['warnings']:
            self.module.warn(warning)
        self.networks.update(self._network_plan['actions'])
        self.volumes.update(self._volume_plan['actions'])
        for name, before, after in self._network_plan['diffs']:
            self._diff_add('networks', name, before, after)
        for name, before, after in self._volume_plan['diffs']:
            self._diff_add('volumes', name, before, after)
        return self._network_plan['forced']

    def _check_name_conflicts(self, plan, observed):
        for service, entry in plan.items():
            if entry['action'] != 'created':
                continue
            name = container_name(self.project.name, service)
            other = self.engine.inspect_container(name)
            if other is not None and other['id'] not in [r['id'] for r in observed.values()]:
                raise ComposeError('container name %s is taken by container %s, which is not part of project %s: '
                                   'remove or rename it' % (name, other['id'][:12], self.project.name))

    def _apply_networks_and_volumes(self, observed, forced):
        project = self.project
        # Containers attached to a network that is replaced go first, dependents before dependencies.
        for service in reversed(start_order(project.services, list(forced))):
            record = observed[service]
            self.engine.stop(record['id'], record['name'], self._stop_timeout(record))
            self.engine.remove(record['id'], record['name'])
            self.current.pop(service, None)
        networks = self._network_plan
        for name, action in sorted(networks['actions'].items()):
            key = networks['keys'][name]
            reattach = networks['reattach'][name]
            if action == 'recreated':
                for record in reattach:
                    self.engine.disconnect(record['id'], record['name'], name)
                self.engine.remove_network(name)
            if action in ('created', 'recreated'):
                self.engine.create_network(name, project.networks[key]['driver'], project.networks[key]['internal'],
                                           resource_labels(project, 'network', key, self.compose_version))
            for record in reattach:
                self.engine.connect(record['id'], record['name'], name, record['aliases'].get(name) or [])
        for name, action in sorted(self._volume_plan['actions'].items()):
            if action == 'created':
                key = self._volume_plan['keys'][name]
                self.engine.create_volume(name, project.volumes[key]['driver'], resource_labels(project, 'volume', key, self.compose_version))

    def _stop_timeout(self, record):
        return record['stop_timeout']

    def _wait_dependencies(self, service):
        for dep, config in sorted(self.project.services[service]['depends_on'].items()):
            if config['condition'] != 'service_healthy':
                continue
            dep_id = self.current.get(dep)
            if dep_id is None:
                raise EngineError('service %s depends on %s being healthy, but %s has no container'
                                  % (service, dep, dep))
            self.engine.wait_ready(dep_id, dep, self.params['wait_timeout'], need_health=True,
                                   why='%s depends on it with condition service_healthy' % service)

    def _apply_service(self, service, entry, record):
        action = entry['action']
        name = container_name(self.project.name, service)
        if action in ('unchanged',):
            return
        if action == 'signaled':
            self.engine.kill(record['id'], name, self.params['signal'])
            return
        self._wait_dependencies(service)
        if action == 'started':
            self.engine.start(record['id'], name)
            return
        if action == 'restarted':
            self.engine.restart(record['id'], name, self._stop_timeout(record))
            return
        labels = container_labels(self.project, service, entry['spec'], entry['image_id'], entry['hash'],
                                  self.compose_version)
        if action == 'created' or self.current.get(service) is None:
            container_id = self.engine.create_container(name, entry['spec'], labels)
            self.current[service] = container_id
            try:
                self.engine.start(container_id, name)
            except EngineError:
                self.engine.remove(container_id, name, force=True)
                self.current.pop(service, None)
                raise
            return
        self._replace(service, name, entry, record, labels)

    def _replace(self, service, name, entry, record, labels):
        """Recreate a container: the new one is created before the old one stops; on failure the old one returns.

        With deploy.update_config.order start-first, the new container starts and must be ready (healthy, or
        running without a healthcheck) and stay so for update_config.monitor while the old one still runs: clients
        that find the service by its network alias always have a container to reach.
        """
        engine = self.engine
        temporary = '%s_%s' % (record['id'][:12], name)
        extra_binds = self._inherited_anonymous_volumes(record, entry['spec'])
        update = self.project.services[service]['update']
        engine.rename(record['id'], temporary)
        try:
            new_id = engine.create_container(name, entry['spec'], labels, extra_binds=extra_binds)
        except EngineError:
            engine.rename(record['id'], name)
            raise
        try:
            if update['order'] == 'start-first' and record['running']:
                self._start_beside(service, name, new_id, update['monitor'])
                engine.stop(record['id'], temporary, self._stop_timeout(record))
            else:
                engine.stop(record['id'], temporary, self._stop_timeout(record))
                engine.start(new_id, name)
        except EngineError as exc:
            engine.remove(new_id, name, force=True)
            engine.rename(record['id'], name)
            if record['running']:
                engine.start(record['id'], name)
            raise EngineError('%s. The previous container of service %s was put back.' % (exc, service))
        engine.remove(record['id'], temporary)
        self.current[service] = new_id

    def _start_beside(self, service, name, new_id, monitor):
        """Start the new container of a start-first service and watch it while the old one still serves."""
        self.engine.start(new_id, name)
        self.engine.wait_ready(new_id, service, self.params['wait_timeout'],
                               why='start-first: the previous container serves until this one is ready')
        if monitor:
            time.sleep(parse_duration(monitor) / 1e9)
            self.engine.wait_ready(new_id, service, 0, why='start-first: it must stay ready for update_config.monitor')

    def _inherited_anonymous_volumes(self, record, spec):
        """Anonymous volumes (from the image's VOLUME) move to the new container, as compose does."""
        targets = set(m['target'] for m in spec['mounts'])
        binds = []
        for mount in record['mounts']:
            if mount.get('Type') != 'volume' or mount.get('Destination') in targets:
                continue
            name = mount.get('Name') or ''
            if len(name) == 64 and all(c in '0123456789abcdef' for c in name):
                binds.append('%s:%s:rw' % (name, mount['Destination']))
        return binds

    # -- stopped ----------------------------------------------------------

    def stop(self):
        selected = select_services(self.project, self.params['services'], include_dependencies=False)
        observed, dummy = self._observe()
        self.current = dict((s, r['id']) for s, r in observed.items())
        plan = plan_services(self.project, selected, 'stopped', observed, {})
        for service, entry in plan.items():
            self.actions[service] = entry['action']
            self._diff_add('services', service, entry['before'], entry['after'])
            if entry['action'] == 'stopped' and not self.check_mode:
                record = observed[service]
                self.engine.stop(record['id'], record['name'], self._stop_timeout(record))
        self._refresh_containers(selected)

    # -- absent -----------------------------------------------------------

    def remove(self):
        project = self.project
        everything = not self.params['services']
        selected = select_services(project, self.params['services'], include_dependencies=False)
        observed, others = self._observe()
        plan = plan_services(project, selected, 'absent', observed, {})
        remove_volumes = self.params['remove_volumes']
        for service, entry in plan.items():
            self.actions[service] = entry['action']
            self._diff_add('services', service, entry['before'], entry['after'])
        victims = [observed[s] for s, e in plan.items() if e['action'] == 'removed']
        if everything:
            for record in sorted(others, key=lambda r: r['name']):
                label = record['service'] or record['name']
                if label not in self.actions or self.actions[label] == 'unchanged':
                    self.actions[label] = 'removed'
                self._diff_add('containers', record['name'], {'state': record['status']}, {'state': 'absent'})
                victims.append(record)
            for net in sorted(self.engine.project_networks(project.name), key=lambda n: n['Name']):
                self.networks[net['Name']] = 'removed'
                self._diff_add('networks', net['Name'], {'state': 'present'}, {'state': 'absent'})
            if remove_volumes:
                for vol in sorted(self.engine.project_volumes(project.name), key=lambda v: v['Name']):
                    self.volumes[vol['Name']] = 'removed'
                    self._diff_add('volumes', vol['Name'], {'state': 'present'}, {'state': 'absent'})
        if self.check_mode:
            return
        for record in victims:
            if record['running']:
                self.engine.stop(record['id'], record['name'], self._stop_timeout(record))
            self.engine.remove(record['id'], record['name'], volumes=remove_volumes)
        for name in sorted(self.networks):
            self.engine.remove_network(name)
        for name in sorted(self.volumes):
            self.engine.remove_volume(name)


def main():
    argument_spec = dict(
        project_src=dict(type='path', required=True),
        files=dict(type='list', elements='str', default=['compose.yaml']),
        project_name=dict(type='str'),
        state=dict(type='str', default='present', choices=['present', 'stopped', 'restarted', 'absent']),
        services=dict(type='list', elements='str'),
        pull=dict(type='str', default='missing', choices=['missing', 'always']),
        wait=dict(type='bool', default=False),
        wait_timeout=dict(type='int', default=120),
        signal=dict(type='str'),
        remove_volumes=dict(type='bool', default=False),
        docker_host=dict(type='str'),
        timeout=dict(type='int', default=60),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    if not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib('docker (Docker SDK for Python; Debian package python3-docker)'),
                         exception=DOCKER_SDK_IMPORT_ERROR)
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib('PyYAML (Debian package python3-yaml)'), exception=YAML_IMPORT_ERROR)

    if params['signal'] is not None and params['state'] != 'present':
        module.fail_json(msg='signal is only used with state=present (state is %s)' % params['state'])
    if params['remove_volumes'] and params['state'] != 'absent':
        module.fail_json(msg='remove_volumes is only used with state=absent (state is %s)' % params['state'])
    if params['wait_timeout'] < 0 or params['timeout'] <= 0:
        module.fail_json(msg='wait_timeout must be 0 or more and timeout more than 0')
    if not params['files']:
        module.fail_json(msg='files must list at least one compose file')

    runner = None
    try:
        if params['signal'] is not None:
            params['signal'] = validate_signal(params['signal'])
        project = load_project(params['project_src'], params['files'], params['project_name'])
        docker_host = params['docker_host'] or os.environ.get('DOCKER_HOST') or DEFAULT_DOCKER_HOST
        engine = Engine(docker_host, timeout=params['timeout'])
        runner = StackRunner(module, engine, project)
        if params['state'] in ('present', 'restarted'):
            runner.converge()
        elif params['state'] == 'stopped':
            runner.stop()
        else:
            runner.remove()
    except ComposeError as exc:
        module.fail_json(msg=str(exc))
    except EngineError as exc:
        module.fail_json(msg=str(exc), pulled=runner.pulled if runner is not None else [])
    module.exit_json(**runner.result())


if __name__ == '__main__':
    main()
