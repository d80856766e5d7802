# Copyright (c) selfhosted.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a compose_stack container carries: the engine-facing spec of a service,
its config hash, and the labels compose v2 writes and reads.

Private module: the interface may change without notice. Pure: no engine.
"""

from __future__ import annotations

import copy
import hashlib
import json

from ansible_collections.selfhosted.registry.plugins.module_utils._compose_confinement import CONFINEMENT_KEYS

# Labels compose v2 writes and reads (github.com/docker/compose pkg/api/labels.go).
LABEL_PROJECT = 'com.docker.compose.project'
LABEL_SERVICE = 'com.docker.compose.service'
LABEL_CONFIG_HASH = 'com.docker.compose.config-hash'
LABEL_CONTAINER_NUMBER = 'com.docker.compose.container-number'
LABEL_ONEOFF = 'com.docker.compose.oneoff'
LABEL_WORKING_DIR = 'com.docker.compose.project.working_dir'
LABEL_CONFIG_FILES = 'com.docker.compose.project.config_files'
LABEL_VERSION = 'com.docker.compose.version'
LABEL_IMAGE = 'com.docker.compose.image'
LABEL_DEPENDS_ON = 'com.docker.compose.depends_on'
LABEL_NETWORK = 'com.docker.compose.network'
LABEL_VOLUME = 'com.docker.compose.volume'
# Our own label: the resolved service spec the container was created from, so
# that --diff can show what changed. Not read by compose.
LABEL_DEFINITION = 'io.selfhosted.registry.compose-stack.definition'

# Bumped whenever the normalised spec changes shape, so containers created by
# an older normalisation are recreated once rather than compared wrongly.
SPEC_FORMAT = 1


def container_name(project_name, service_name, number=1):
    return '%s-%s-%d' % (project_name, service_name, number)


def resolve_service(project, service_name):
    """The engine-facing spec of a service: what its container is created from.

    Names are resolved (networks and volumes to their engine names, bind
    sources to absolute paths); ``depends_on`` is left out, as compose leaves
    it out of its config hash.
    """
    service = project.services[service_name]
    mounts = []
    for mount in service['volumes']:
        mount = dict(mount)
        if mount['type'] == 'volume':
            mount['source'] = project.volumes[mount['source']]['name']
        mounts.append(mount)
    networks = {}
    for key, config in service['networks'].items():
        aliases = set(config['aliases'])
        aliases.add(service_name)
        aliases.add(container_name(project.name, service_name))
        networks[project.networks[key]['name']] = {'aliases': sorted(aliases)}
    spec = {
        'format': SPEC_FORMAT,
        'image': service['image'],
        'command': service['command'],
        'entrypoint': service['entrypoint'],
        'environment': dict(service['environment']),
        'labels': dict(service['labels']),
        'mounts': mounts,
        'ports': [dict(p) for p in service['ports']],
        'networks': networks,
        'restart': service['restart'],
        'healthcheck': copy.deepcopy(service['healthcheck']),
        'user': service['user'],
        'read_only': service['read_only'],
        'tmpfs': list(service['tmpfs']),
        'stop_signal': service['stop_signal'],
        'stop_grace_period': service['stop_grace_period'],
    }
    # Only the confinement keys the service sets (_compose_confinement).
    spec.update((key, copy.deepcopy(service[key])) for key in CONFINEMENT_KEYS if key in service)
    return spec


def canonical_json(data):
    return json.dumps(data, sort_keys=True, separators=(',', ':'), ensure_ascii=True)


def config_hash(spec, image_id):
    """sha256 over the resolved spec and the image ID it runs."""
    payload = canonical_json({'spec': spec, 'image_id': image_id})
    return hashlib.sha256(payload.encode('utf-8')).hexdigest()


def depends_on_label(service):
    """com.docker.compose.depends_on as compose v2 writes it: 'svc:condition:restart', comma separated."""
    return ','.join('%s:%s:false' % (name, dep['condition']) for name, dep in sorted(service['depends_on'].items()))


def container_labels(project, service_name, spec, image_id, spec_hash, compose_version=None):
    """The labels of a service's container.

    ``spec_hash``: the config hash the plan compared (compose's own where
    compose is installed, else config_hash()). ``compose_version``: the
    installed compose's, written as compose writes it; no label without compose.
    """
    labels = dict(spec['labels'])
    labels.update({
        LABEL_PROJECT: project.name,
        LABEL_SERVICE: service_name,
        LABEL_CONTAINER_NUMBER: '1',
        LABEL_ONEOFF: 'False',
        LABEL_WORKING_DIR: project.working_dir,
        LABEL_CONFIG_FILES: ','.join(project.config_files),
        LABEL_IMAGE: image_id,
        LABEL_DEPENDS_ON: depends_on_label(project.services[service_name]),
        LABEL_CONFIG_HASH: spec_hash,
        LABEL_DEFINITION: canonical_json(spec),
    })
    if compose_version:
        labels[LABEL_VERSION] = compose_version
    return labels


def resource_labels(project, kind, key, compose_version=None):
    labels = {
        LABEL_PROJECT: project.name,
        LABEL_NETWORK if kind == 'network' else LABEL_VOLUME: key,
    }
    if compose_version:
        labels[LABEL_VERSION] = compose_version
    return labels


def read_definition_label(labels):
    """The spec stored on a container by this module, or None."""
    text = (labels or {}).get(LABEL_DEFINITION)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
