# Copyright (c) selfhosted.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Planning for selfhosted.registry.compose_stack: what to do with each service,
network and volume, as pure functions over a snapshot of the engine's state,
and the diff shown for it.

Private module: the interface may change without notice. Pure: no engine.
"""

from __future__ import annotations

from ansible_collections.selfhosted.registry.plugins.module_utils._compose_labels import (
    LABEL_CONFIG_HASH,
    LABEL_IMAGE,
    LABEL_PROJECT,
    config_hash,
    read_definition_label,
    resolve_service,
)
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_load import ComposeError
from ansible_collections.selfhosted.registry.plugins.module_utils._compose_spec import start_order


_MISSING = object()


def diff_values(before, after):
    """Only what differs between two JSON-like values.

    Returns ``(before_part, after_part)``; for dicts, recursively only the
    differing keys (a key missing on one side is left out there). None, None
    when equal.
    """
    parts = _diff(before, after)
    return (None, None) if parts is None else parts


def _diff(before, after):
    if before == after:
        return None
    if isinstance(before, dict) and isinstance(after, dict):
        old, new = {}, {}
        for key in sorted(set(before) | set(after)):
            value_b = before.get(key, _MISSING)
            value_a = after.get(key, _MISSING)
            if value_b is _MISSING:
                new[key] = value_a
            elif value_a is _MISSING:
                old[key] = value_b
            else:
                parts = _diff(value_b, value_a)
                if parts is not None:
                    old[key], new[key] = parts
        return old, new
    return before, after


def service_diff(old_spec, old_image_id, new_spec, new_image_id):
    before = dict(old_spec or {})
    after = dict(new_spec or {})
    before['image_id'] = old_image_id
    after['image_id'] = new_image_id
    old, new = diff_values(before, after)
    return old or {}, new or {}


def plan_services(project, selected, state, observed, image_ids, signal=None, signal_targets=None,
                  forced_recreate=None, compose_hashes=None):
    """Decide the action of each selected service. Pure: no engine access.

    ``observed``: service -> container record (``id``, ``name``, ``running``,
    ``status``, ``labels``, ``image_id``) or None.
    ``image_ids``: image reference -> local image ID, None when the image is
    not there (check mode, before a pull).
    ``forced_recreate``: service -> reason, for services whose container must
    be replaced for reasons outside its spec (a network that is recreated).
    ``compose_hashes``: service -> the config hash of the installed compose
    CLI (_compose_cli), compared instead of config_hash() so that compose and
    this module agree on when a container is current; None without compose.

    Returns service -> dict(action, reason, before, after, spec, hash, image_id)
    in the order the actions are carried out.
    """
    forced_recreate = forced_recreate or {}
    signal_targets = set(signal_targets or ())
    if state in ('present', 'restarted'):
        order = start_order(project.services, selected)
    else:
        order = list(reversed(start_order(project.services, selected)))
    plan = {}
    for name in order:
        current = observed.get(name)
        entry = {'action': 'unchanged', 'reason': None, 'before': {}, 'after': {},
                 'spec': None, 'hash': None, 'image_id': None}
        if state in ('present', 'restarted'):
            spec = resolve_service(project, name)
            image_id = image_ids.get(spec['image'])
            if compose_hashes is not None:
                spec_hash = compose_hashes[name]
            else:
                spec_hash = config_hash(spec, image_id) if image_id else None
            entry.update(spec=spec, image_id=image_id, hash=spec_hash)
            _plan_converge(entry, current, state, name in signal_targets and signal, forced_recreate.get(name))
        elif state == 'stopped':
            if current is not None and current['running']:
                entry.update(action='stopped', reason='container is running',
                             before={'state': current['status']}, after={'state': 'exited'})
        elif state == 'absent':
            if current is not None:
                entry.update(action='removed', reason='container exists',
                             before={'state': current['status']}, after={'state': 'absent'})
        else:
            raise ComposeError('unknown state %r' % state)
        plan[name] = entry
    return plan


def _plan_converge(entry, current, state, signal, forced_reason):
    spec, image_id = entry['spec'], entry['image_id']
    if current is None:
        after = dict(spec)
        after['image_id'] = image_id or '(pulled when the module runs)'
        after['state'] = 'running'
        entry.update(action='created', reason='no container for the service', before={'state': 'absent'},
                     after=after)
        return
    labels = current.get('labels') or {}
    old_spec = read_definition_label(labels)
    if old_spec is None and labels.get(LABEL_CONFIG_HASH) == entry['hash']:
        # Made by compose from the same files: what this module would have created.
        old_spec = spec
    old_image_id = labels.get(LABEL_IMAGE) or current.get('image_id')
    reason = None
    if forced_reason:
        reason = forced_reason
    elif image_id is None:
        reason = 'image %s is not present yet' % spec['image']
    # compose's hash leaves the image ID out (compose compares the image label on its own); ours has it.
    elif labels.get(LABEL_CONFIG_HASH) != entry['hash'] or old_image_id != image_id:
        if old_spec is None:
            reason = 'container was not created by compose_stack'
        elif old_spec == spec and old_image_id == image_id:
            reason = 'config hash of another source (compose installed or removed since)'
        elif old_spec == spec:
            reason = 'image changed'
        else:
            reason = 'definition changed'
    if reason:
        if old_spec is None:
            before = {'definition': '(unknown: %s)' % reason}
            after = dict(spec)
            after['image_id'] = image_id
        else:
            before, after = service_diff(old_spec, old_image_id, spec, image_id or '(pulled when the module runs)')
        if not before and not after:
            before, after = {'recreate': None}, {'recreate': reason}
        entry.update(action='recreated', reason=reason, before=before, after=after)
        return
    if not current['running']:
        entry.update(action='started', reason='container is %s' % current['status'],
                     before={'state': current['status']}, after={'state': 'running'})
        return
    if state == 'restarted':
        entry.update(action='restarted', reason='state=restarted',
                     before={'state': 'running'}, after={'state': 'restarted'})
        return
    if signal:
        entry.update(action='signaled', reason='signal %s requested' % signal,
                     before={}, after={'signal': signal})


def _describe_change(before, after):
    return ', '.join('%s %s -> %s' % (key, before[key], after[key]) for key in sorted(after) if before.get(key) != after[key])


def _require_external(kind, name, key, current):
    if current is None:
        raise ComposeError('%s %s (%r in the compose files) is external but does not exist: create it first, or '
                           'drop external: true' % (kind, name, key))


def plan_networks(project, selected, existing, observed, others):
    """Decide what happens to each network the selected services use. Pure: no engine access.

    ``existing``: engine network name -> ``docker network inspect`` of it, or
    None when it does not exist. ``observed``: service -> current container
    record; ``others``: the project's other container records (each with
    ``id``, ``name``, ``service``, ``networks``).

    Returns dict(actions={name: created|recreated|unchanged},
    diffs=[(name, before, after)], forced={service: reason} (containers to
    recreate because their network is), reattach={name: [records]}
    (containers to reconnect to the new network), keys={name: key},
    warnings=[...]). External networks get no action. Raises ComposeError.
    """
    plan = dict(actions={}, diffs=[], forced={}, reattach={}, keys={}, warnings=[])
    keys = sorted(set(key for service in selected for key in project.services[service]['networks']))
    for key in keys:
        net = project.networks[key]
        name = net['name']
        current = existing.get(name)
        plan['keys'][name] = key
        plan['reattach'][name] = []
        if net['external']:
            _require_external('network', name, key, current)
            continue
        if current is None:
            plan['actions'][name] = 'created'
            plan['diffs'].append((name, {'state': 'absent'},
                                  {'state': 'present', 'driver': net['driver'], 'internal': net['internal']}))
            continue
        if (current.get('Labels') or {}).get(LABEL_PROJECT) != project.name:
            plan['warnings'].append('network %s exists but was not created for project %s; it is used as it is. '
                                    'Set external: true to make that explicit.' % (name, project.name))
            plan['actions'][name] = 'unchanged'
            continue
        before = {'driver': current.get('Driver'), 'internal': bool(current.get('Internal'))}
        after = {'driver': net['driver'], 'internal': net['internal']}
        if before == after:
            plan['actions'][name] = 'unchanged'
            continue
        # The network is replaced. Containers of the selected services on it are recreated; other containers of
        # the project (services not selected, or defined in other files) are reconnected to the new one.
        records = list(observed.values()) + list(others)
        project_ids = set(record['id'] for record in records)
        foreign = sorted(container.get('Name', container_id)
                         for container_id, container in (current.get('Containers') or {}).items()
                         if container_id not in project_ids)
        if foreign:
            raise ComposeError('network %s changed (%s) and must be recreated, but containers outside project %s '
                               'use it: %s. Disconnect them first.'
                               % (name, _describe_change(before, after), project.name, ', '.join(foreign)))
        plan['actions'][name] = 'recreated'
        plan['diffs'].append((name,) + diff_values(before, after))
        for record in records:
            if name not in record['networks']:
                continue
            if record['service'] in selected and observed.get(record['service']) is record:
                plan['forced'][record['service']] = 'network %s is recreated' % name
            else:
                plan['reattach'][name].append(record)
    return plan


def plan_volumes(project, selected, existing):
    """Decide what happens to each named volume the selected services mount. Pure: no engine access.

    ``existing``: engine volume name -> ``docker volume inspect`` of it, or
    None. Returns dict(actions={name: created|unchanged}, diffs=[(name,
    before, after)], keys={name: key}). External volumes get no action.
    Volumes are never replaced: a driver change raises ComposeError.
    """
    plan = dict(actions={}, diffs=[], keys={})
    keys = sorted(set(mount['source'] for service in selected for mount in project.services[service]['volumes']
                      if mount['type'] == 'volume'))
    for key in keys:
        vol = project.volumes[key]
        name = vol['name']
        current = existing.get(name)
        plan['keys'][name] = key
        if vol['external']:
            _require_external('volume', name, key, current)
            continue
        if current is None:
            plan['actions'][name] = 'created'
            plan['diffs'].append((name, {'state': 'absent'}, {'state': 'present', 'driver': vol['driver']}))
        elif current.get('Driver') != vol['driver']:
            raise ComposeError('volume %s exists with driver %s, but the compose files ask for %s. Volumes are '
                               'never replaced implicitly: move the data and remove the volume yourself'
                               % (name, current.get('Driver'), vol['driver']))
        else:
            plan['actions'][name] = 'unchanged'
    return plan
