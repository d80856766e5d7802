# Copyright (c) selfhosted.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Docker engine access for selfhosted.registry.compose_stack.

Private module: the interface may change without notice. A thin layer over
the low-level ``docker.APIClient`` of the Docker SDK for Python (tested with
5.0.3, Debian 12's python3-docker, and 7.1.0, Debian 13's). Every engine
error comes out as EngineError with a message that says what was attempted.
"""

from __future__ import annotations

import time
import traceback

try:
    import docker
    from docker.errors import APIError, DockerException, NotFound
    from docker.utils import parse_repository_tag
    from requests.exceptions import RequestException
except ImportError:  # pragma: no cover - exercised on hosts without the SDK
    HAS_DOCKER_SDK = False
    DOCKER_SDK_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):  # type: ignore[no-redef]
        pass

    class APIError(DockerException):  # type: ignore[no-redef]
        pass

    class NotFound(APIError):  # type: ignore[no-redef]
        pass

    class RequestException(Exception):  # type: ignore[no-redef]
        pass
else:
    HAS_DOCKER_SDK = True
    DOCKER_SDK_IMPORT_ERROR = None

from ansible_collections.selfhosted.registry.plugins.module_utils._compose_confinement import host_config_options
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_labels import (
    LABEL_CONTAINER_NUMBER,
    LABEL_PROJECT,
    LABEL_SERVICE,
)
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_load import parse_duration

DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'
POLL_INTERVAL = 0.25


def container_options(spec, extra_binds=None):
    """The Docker API options of a resolved service spec. Pure: no engine access.

    Returns dict(create=<keyword arguments of APIClient.create_container
    besides name, labels, host_config and networking_config>,
    host_config=<keyword arguments of APIClient.create_host_config>,
    networks=[(network, aliases), ...]), the first network the one the
    container is created on, the others connected after.
    """
    binds = ['%s:%s:%s' % (m['source'], m['target'], 'ro' if m['read_only'] else 'rw') for m in spec['mounts']]
    binds.extend(extra_binds or [])
    port_bindings = {}
    exposed = []
    for port in spec['ports']:
        key = '%d/%s' % (port['target'], port['protocol'])
        port_bindings.setdefault(key, []).append((port['host_ip'], port['published']))
        if (port['target'], port['protocol']) not in exposed:
            exposed.append((port['target'], port['protocol']))
    restart = spec['restart'].split(':', 1)
    tmpfs = {}
    for entry in spec['tmpfs']:
        path, dummy, mount_options = entry.partition(':')
        tmpfs[path] = mount_options
    networks = sorted(spec['networks'])
    healthcheck = None
    if spec['healthcheck'] is not None:
        healthcheck = {'test': spec['healthcheck']['test']}
        for key in ('interval', 'timeout', 'start_period'):
            if spec['healthcheck'].get(key):
                healthcheck[key] = parse_duration(spec['healthcheck'][key])
        if spec['healthcheck'].get('retries') is not None:
            healthcheck['retries'] = spec['healthcheck']['retries']
    stop_timeout = None
    if spec['stop_grace_period']:
        stop_timeout = int(parse_duration(spec['stop_grace_period']) // 10 ** 9)
    return {
        'create': {
            'image': spec['image'],
            'command': spec['command'],
            'entrypoint': spec['entrypoint'],
            'environment': ['%s=%s' % item for item in sorted(spec['environment'].items())],
            'user': spec['user'],
            'ports': exposed or None,
            'healthcheck': healthcheck,
            'stop_signal': spec['stop_signal'],
            'stop_timeout': stop_timeout,
        },
        'host_config': {
            'binds': binds or None,
            'port_bindings': port_bindings or None,
            'restart_policy': {'Name': restart[0], 'MaximumRetryCount': int(restart[1]) if len(restart) > 1 else 0},
            'read_only': spec['read_only'] or None,
            'tmpfs': tmpfs or None,
            'network_mode': networks[0],
            **host_config_options(spec),
        },
        'networks': [(network, spec['networks'][network]['aliases']) for network in networks],
    }


class EngineError(Exception):
    """The Docker engine refused or failed an operation."""


def _explain(exc):
    if isinstance(exc, APIError):
        explanation = getattr(exc, 'explanation', None)
        if explanation:
            if isinstance(explanation, bytes):
                explanation = explanation.decode('utf-8', 'replace')
            return str(explanation).strip()
    return str(exc).strip() or exc.__class__.__name__


def container_record(info):
    """The parts of ``docker inspect`` the module works with."""
    state = info.get('State') or {}
    config = info.get('Config') or {}
    labels = config.get('Labels') or {}
    health = (state.get('Health') or {}).get('Status')
    networks = ((info.get('NetworkSettings') or {}).get('Networks') or {})
    return {
        'id': info['Id'],
        'name': info.get('Name', '').lstrip('/'),
        'service': labels.get(LABEL_SERVICE),
        'number': labels.get(LABEL_CONTAINER_NUMBER),
        'labels': labels,
        'image': config.get('Image'),
        'image_id': info.get('Image'),
        'running': bool(state.get('Running')),
        'status': state.get('Status') or 'unknown',
        'health': health,
        'networks': sorted(networks),
        # Aliases per network, without the short container ID the engine adds by itself.
        'aliases': dict((net, [a for a in (cfg or {}).get('Aliases') or [] if a != info['Id'][:12]])
                        for net, cfg in networks.items()),
        'mounts': info.get('Mounts') or [],
        # Set from stop_grace_period when the container was created (by compose_stack or compose); else 10 s.
        'stop_timeout': 10 if config.get('StopTimeout') is None else config['StopTimeout'],
    }


def public_container(record):
    """A container as the module returns it."""
    return {
        'id': record['id'],
        'name': record['name'],
        'image': record['image'],
        'status': record['status'],
        'health': record['health'],
    }


class Engine(object):
    """Operations on one Docker engine."""

    def __init__(self, docker_host=None, timeout=60):
        self.docker_host = docker_host or DEFAULT_DOCKER_HOST
        try:
            self.client = docker.APIClient(base_url=self.docker_host, version='auto', timeout=timeout)
        except (DockerException, RequestException) as exc:
            raise EngineError('cannot connect to the Docker engine at %s: %s. Is dockerd running, and is docker_host '
                              'right?' % (self.docker_host, _explain(exc)))

    def _call(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (DockerException, RequestException) as exc:
            raise EngineError('%s failed: %s' % (what, _explain(exc)))

    # -- reading ----------------------------------------------------------

    def project_containers(self, project_name):
        summaries = self._call(
            'listing the containers of project %s' % project_name, self.client.containers,
            all=True, filters={'label': ['%s=%s' % (LABEL_PROJECT, project_name)]})
        records = []
        for summary in summaries:
            record = self.inspect_container(summary['Id'])
            if record is not None:
                records.append(record)
        return records

    def inspect_container(self, container_id):
        try:
            info = self.client.inspect_container(container_id)
        except NotFound:
            return None
        except (DockerException, RequestException) as exc:
            raise EngineError('inspecting container %s failed: %s' % (container_id, _explain(exc)))
        return container_record(info)

    def image_id(self, reference):
        try:
            return self.client.inspect_image(reference)['Id']
        except NotFound:
            return None
        except (DockerException, RequestException) as exc:
            raise EngineError('inspecting image %s failed: %s' % (reference, _explain(exc)))

    def network(self, name):
        try:
            info = self.client.inspect_network(name)
        except NotFound:
            return None
        except (DockerException, RequestException) as exc:
            raise EngineError('inspecting network %s failed: %s' % (name, _explain(exc)))
        # inspect also matches ID prefixes: only an exact name counts.
        if info.get('Name') != name and info.get('Id') != name:
            return None
        return info

    def project_networks(self, project_name):
        return self._call('listing the networks of project %s' % project_name, self.client.networks,
                          filters={'label': ['%s=%s' % (LABEL_PROJECT, project_name)]}) or []

    def volume(self, name):
        try:
            return self.client.inspect_volume(name)
        except NotFound:
            return None
        except (DockerException, RequestException) as exc:
            raise EngineError('inspecting volume %s failed: %s' % (name, _explain(exc)))

    def project_volumes(self, project_name):
        result = self._call('listing the volumes of project %s' % project_name, self.client.volumes,
                            filters={'label': '%s=%s' % (LABEL_PROJECT, project_name)})
        return (result or {}).get('Volumes') or []

    # -- images -----------------------------------------------------------

    def pull(self, reference):
        """Pull an image; return its local ID afterwards."""
        repository, tag = parse_repository_tag(reference)
        what = 'pulling image %s' % reference
        try:
            for event in self.client.pull(repository, tag=tag or 'latest', stream=True, decode=True):
                if isinstance(event, dict) and event.get('error'):
                    raise EngineError('%s failed: %s' % (what, event['error']))
        except (DockerException, RequestException) as exc:
            raise EngineError('%s failed: %s' % (what, _explain(exc)))
        image_id = self.image_id(reference)
        if image_id is None:
            raise EngineError('%s reported success, but the engine has no image %s afterwards' % (what, reference))
        return image_id

    # -- networks and volumes --------------------------------------------

    def create_network(self, name, driver, internal, labels):
        result = self._call('creating network %s' % name, self.client.create_network,
                            name, driver=driver, internal=internal, labels=labels, check_duplicate=True)
        return result.get('Id')

    def remove_network(self, name):
        self._call('removing network %s' % name, self.client.remove_network, name)

    def create_volume(self, name, driver, labels):
        self._call('creating volume %s' % name, self.client.create_volume, name=name, driver=driver, labels=labels)

    def remove_volume(self, name):
        self._call('removing volume %s' % name, self.client.remove_volume, name)

    # -- containers -------------------------------------------------------

    def create_container(self, name, spec, labels, extra_binds=None):
        """Create (not start) a container from a resolved spec; connect all its networks."""
        client = self.client
        options = container_options(spec, extra_binds)
        primary, primary_aliases = options['networks'][0]
        what = 'creating container %s' % name
        try:
            result = client.create_container(
                name=name,
                labels=labels,
                host_config=client.create_host_config(**options['host_config']),
                networking_config=client.create_networking_config({
                    primary: client.create_endpoint_config(aliases=primary_aliases),
                }),
                detach=True,
                use_config_proxy=False,
                **options['create']
            )
        except (DockerException, RequestException) as exc:
            raise EngineError('%s failed: %s' % (what, _explain(exc)))
        container_id = result['Id']
        try:
            for network, aliases in options['networks'][1:]:
                self._call('connecting container %s to network %s' % (name, network),
                           client.connect_container_to_network, container_id, network, aliases=aliases)
        except EngineError:
            self.remove(container_id, force=True)
            raise
        return container_id

    def connect(self, container_id, name, network, aliases):
        self._call('connecting container %s to network %s' % (name, network), self.client.connect_container_to_network,
                   container_id, network, aliases=aliases or None)

    def disconnect(self, container_id, name, network):
        self._call('disconnecting container %s from network %s' % (name, network),
                   self.client.disconnect_container_from_network, container_id, network, force=True)

    def start(self, container_id, name):
        self._call('starting container %s' % name, self.client.start, container_id)

    def stop(self, container_id, name, timeout):
        self._call('stopping container %s' % name, self.client.stop, container_id, timeout=timeout)

    def restart(self, container_id, name, timeout):
        self._call('restarting container %s' % name, self.client.restart, container_id, timeout=timeout)

    def kill(self, container_id, name, signal):
        self._call('sending %s to container %s' % (signal, name), self.client.kill, container_id, signal=signal)

    def remove(self, container_id, name=None, force=False, volumes=False):
        self._call('removing container %s' % (name or container_id), self.client.remove_container,
                   container_id, force=force, v=volumes)

    def rename(self, container_id, new_name):
        self._call('renaming container %s to %s' % (container_id[:12], new_name), self.client.rename,
                   container_id, new_name)

    def wait_ready(self, container_id, service, timeout, need_health=False, why=None):
        """Wait until the container is healthy (with a healthcheck) or running (without).

        ``need_health``: a dependent asked for service_healthy, so a container
        without healthcheck is an error rather than ready.
        """
        deadline = time.monotonic() + timeout
        while True:
            info = self._call('inspecting container of service %s' % service, self.client.inspect_container,
                              container_id)
            state = info.get('State') or {}
            name = info.get('Name', '').lstrip('/')
            health = state.get('Health')
            status = state.get('Status')
            if status in ('exited', 'dead', 'created'):
                raise EngineError('service %s: container %s is %s (exit code %s)%s; see docker logs %s'
                                  % (service, name, status, state.get('ExitCode'), _why(why), name))
            if health:
                if health.get('Status') == 'healthy':
                    return
                if health.get('Status') == 'unhealthy':
                    raise EngineError('service %s: container %s is unhealthy%s; last healthcheck output: %s'
                                      % (service, name, _why(why), _last_health_output(health)))
            elif need_health:
                raise EngineError('service %s has no healthcheck, but %s; add a healthcheck to %s or use '
                                  'condition: service_started' % (service, why, service))
            elif state.get('Running') and status == 'running':
                return
            if time.monotonic() >= deadline:
                detail = ''
                if health:
                    detail = '; health is %s, last healthcheck output: %s' % (
                        health.get('Status'), _last_health_output(health))
                raise EngineError('service %s: container %s was not %s within %d seconds%s%s'
                                  % (service, name, 'healthy' if health else 'running', timeout, _why(why), detail))
            time.sleep(POLL_INTERVAL)


def _why(why):
    return ' (%s)' % why if why else ''


def _last_health_output(health):
    log = health.get('Log') or []
    if not log:
        return '(none yet)'
    return (log[-1].get('Output') or '').strip() or '(empty)'
