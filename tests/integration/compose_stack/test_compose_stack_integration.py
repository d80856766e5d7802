# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""selfhosted.registry.compose_stack against the real Docker engine.

Run: .venv/bin/pytest -q tests/integration/compose_stack
Every test runs once per target interpreter (Debian 12: Docker SDK 5.0.3,
Debian 13: Docker SDK 7.1.0); see conftest.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import docker
import pytest

from compose_stack_helpers import DOCKER_CLI, IMAGE, build_busybox_image, free_port  # pylint: disable=import-error

COMPOSE_LABELS = (
    'com.docker.compose.project', 'com.docker.compose.service', 'com.docker.compose.config-hash',
    'com.docker.compose.container-number', 'com.docker.compose.oneoff', 'com.docker.compose.project.working_dir',
    'com.docker.compose.project.config_files', 'com.docker.compose.image',
    'com.docker.compose.depends_on',
)


def two_services(port, greeting='hello', extra_web=''):
    """db (healthcheck, named volume) and web (depends on db being healthy, bind mount, port, HUP trap)."""
    return '''
services:
  db:
    image: %(image)s
    command: ["sh", "-c", "touch /tmp/ready; exec sleep 100000"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      retries: 30
    volumes:
      - dbdata:/var/lib/db
    stop_grace_period: 1s
  web:
    image: %(image)s
    command: ["sh", "-c", "trap 'echo hup >> /data/hups' HUP; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    environment:
      GREETING: %(greeting)s
    volumes:
      - ./data:/data
    ports:
      - "127.0.0.1:%(port)d:80"
    networks:
      default:
        aliases: [www]
    depends_on:
      db:
        condition: service_healthy
    labels:
      test.label: "1"
    restart: unless-stopped
%(extra_web)s
volumes:
  dbdata:
''' % {'image': IMAGE, 'port': port, 'greeting': greeting, 'extra_web': extra_web}


def actions(result):
    assert not result.get('failed'), result.get('msg')
    return result['actions']


def wait_for(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def read(path):
    if not os.path.exists(path):
        return ''
    with open(path) as handle:
        return handle.read()


def timestamp(text):
    """Docker's RFC 3339 timestamps (nanoseconds, trailing zeros trimmed) as comparable (seconds, nanoseconds)."""
    stamp, dummy, fraction = text.rstrip('Z').partition('.')
    fraction = fraction.split('+')[0].split('-')[0]
    return stamp, int((fraction + '000000000')[:9])


# --------------------------------------------------------------------------


def test_lifecycle(stack):
    port = free_port()
    stack.write(two_services(port))

    # check mode on nothing: predicts creation, touches nothing
    predicted = stack.run(check=True)
    assert predicted['changed'] is True
    assert actions(predicted) == {'db': 'created', 'web': 'created'}
    assert predicted['networks'] == {stack.name + '_default': 'created'}
    assert predicted['volumes'] == {stack.name + '_dbdata': 'created'}
    assert predicted['pulled'] == []
    assert stack.containers() == {} and stack.networks() == [] and stack.volumes() == []

    # create: the same as predicted
    created = stack.run()
    assert created['changed'] is True
    assert actions(created) == actions(predicted)
    assert created['networks'] == predicted['networks'] and created['volumes'] == predicted['volumes']
    containers = stack.containers()
    assert sorted(containers) == ['db', 'web']
    for service, info in containers.items():
        assert info['Name'] == '/%s-%s-1' % (stack.name, service)
        assert info['State']['Running'] is True
        labels = info['Config']['Labels']
        for label in COMPOSE_LABELS:
            assert label in labels, label
        assert labels['com.docker.compose.project'] == stack.name
        assert labels['com.docker.compose.service'] == service
        assert labels['com.docker.compose.container-number'] == '1'
        assert labels['com.docker.compose.oneoff'] == 'False'
        assert labels['com.docker.compose.project.working_dir'] == stack.dir
        assert labels['com.docker.compose.project.config_files'] == stack.path('compose.yaml')
        assert labels['com.docker.compose.image'] == info['Image']
        assert created['containers'][service]['id'] == info['Id']
    # No compose CLI here (Debian 12): no version to name, and the module's own hash.
    assert 'com.docker.compose.version' not in containers['web']['Config']['Labels']
    # .env for a bare `docker compose` in the directory
    assert created['env_file'] == 'created'
    with open(stack.path('.env')) as handle:
        assert handle.read() == 'COMPOSE_FILE=compose.yaml\nCOMPOSE_PROJECT_NAME=%s\n' % stack.name
    assert containers['web']['Config']['Labels']['com.docker.compose.depends_on'] == 'db:service_healthy:false'
    assert containers['web']['Config']['Labels']['test.label'] == '1'
    assert containers['db']['State']['Health']['Status'] == 'healthy'
    assert containers['web']['HostConfig']['PortBindings'] == {'80/tcp': [{'HostIp': '127.0.0.1', 'HostPort': str(port)}]}
    assert containers['web']['HostConfig']['RestartPolicy']['Name'] == 'unless-stopped'
    assert 'GREETING=hello' in containers['web']['Config']['Env']
    assert stack.networks() == [stack.name + '_default']
    assert stack.volumes() == [stack.name + '_dbdata']
    network = stack.client.inspect_network(stack.name + '_default')
    assert network['Labels']['com.docker.compose.network'] == 'default'
    volume = stack.client.inspect_volume(stack.name + '_dbdata')
    assert volume['Labels']['com.docker.compose.volume'] == 'dbdata'
    aliases = containers['web']['NetworkSettings']['Networks'][stack.name + '_default']['Aliases']
    assert {'web', 'www', stack.name + '-web-1'} <= set(aliases)
    # service names and aliases resolve inside the network, as nginx's proxy_pass needs
    assert stack.exec_('web', 'ping', '-c1', '-W2', 'db').returncode == 0
    assert stack.exec_('db', 'ping', '-c1', '-W2', 'www').returncode == 0

    # web started only after db was healthy (depends_on: service_healthy)
    healthy_at = min(timestamp(e['End']) for e in containers['db']['State']['Health']['Log'] if e['ExitCode'] == 0)
    assert timestamp(containers['web']['State']['StartedAt']) >= healthy_at

    # rerun: nothing changes, same containers
    ids = stack.ids()
    again = stack.run()
    assert again['changed'] is False
    assert actions(again) == {'db': 'unchanged', 'web': 'unchanged'}
    assert stack.ids() == ids
    assert again['diff'] == {'before': {}, 'after': {}}
    assert again['env_file'] == 'unchanged'

    # change one service's environment: check mode predicts, only that one is recreated
    stack.write(two_services(port, greeting='bonjour'))
    predicted = stack.run(check=True)
    assert actions(predicted) == {'db': 'unchanged', 'web': 'recreated'}
    assert predicted['diff']['before']['services'] == {'web': {'environment': {'GREETING': 'hello'}}}
    assert predicted['diff']['after']['services'] == {'web': {'environment': {'GREETING': 'bonjour'}}}
    assert stack.ids() == ids
    changed = stack.run()
    assert actions(changed) == actions(predicted)
    assert changed['diff'] == predicted['diff']
    new_ids = stack.ids()
    assert new_ids['db'] == ids['db']
    assert new_ids['web'] != ids['web']
    assert 'GREETING=bonjour' in stack.containers()['web']['Config']['Env']
    assert stack.client.containers(all=True, filters={'id': ids['web']}) == []
    ids = new_ids

    # signal: delivered to the running container, which is not recreated
    predicted = stack.run(check=True, services=['web'], signal='SIGHUP')
    assert actions(predicted) == {'db': 'unchanged', 'web': 'signaled'}
    assert read(stack.path('data', 'hups')) == ''
    signaled = stack.run(services=['web'], signal='HUP')
    assert signaled['changed'] is True
    assert actions(signaled) == actions(predicted)
    assert stack.ids() == ids
    assert wait_for(lambda: read(stack.path('data', 'hups')) == 'hup\n')

    # a service this run recreates is not signalled as well
    stack.write(two_services(port, greeting='hallo'))
    both = stack.run(services=['web'], signal='SIGHUP')
    assert actions(both) == {'db': 'unchanged', 'web': 'recreated'}
    ids = stack.ids()
    time.sleep(0.5)
    assert read(stack.path('data', 'hups')) == 'hup\n'

    # stopped
    predicted = stack.run(check=True, state='stopped')
    assert actions(predicted) == {'db': 'stopped', 'web': 'stopped'}
    stopped = stack.run(state='stopped')
    assert actions(stopped) == actions(predicted)
    assert [info['State']['Running'] for info in stack.containers().values()] == [False, False]
    assert actions(stack.run(state='stopped')) == {'db': 'unchanged', 'web': 'unchanged'}

    # present again: started, not recreated
    predicted = stack.run(check=True)
    assert actions(predicted) == {'db': 'started', 'web': 'started'}
    started = stack.run()
    assert actions(started) == actions(predicted)
    assert stack.ids() == ids

    # restarted: same containers, new start time
    before = stack.containers()['web']['State']['StartedAt']
    predicted = stack.run(check=True, state='restarted')
    assert actions(predicted) == {'db': 'restarted', 'web': 'restarted'}
    restarted = stack.run(state='restarted')
    assert actions(restarted) == actions(predicted)
    assert stack.ids() == ids
    assert timestamp(stack.containers()['web']['State']['StartedAt']) > timestamp(before)

    # absent: containers and network go, the named volume and the bind-mounted data stay
    predicted = stack.run(check=True, state='absent')
    assert actions(predicted) == {'db': 'removed', 'web': 'removed'}
    assert predicted['networks'] == {stack.name + '_default': 'removed'}
    assert len(stack.containers()) == 2
    removed = stack.run(state='absent')
    assert actions(removed) == actions(predicted)
    assert removed['networks'] == predicted['networks']
    assert stack.containers() == {} and stack.networks() == []
    assert stack.volumes() == [stack.name + '_dbdata']
    assert read(stack.path('data', 'hups')) == 'hup\n'
    again = stack.run(state='absent')
    assert again['changed'] is False
    assert actions(again) == {'db': 'unchanged', 'web': 'unchanged'}

    # remove_volumes removes the named volume, never the bind-mounted host data
    gone = stack.run(state='absent', remove_volumes=True)
    assert gone['volumes'] == {stack.name + '_dbdata': 'removed'}
    assert stack.volumes() == []
    assert read(stack.path('data', 'hups')) == 'hup\n'


def test_failed_pull_leaves_the_running_stack_untouched(stack):
    port = free_port()
    stack.write(two_services(port))
    actions(stack.run())
    ids = stack.ids()
    # db's definition changes too: it must not be recreated, since the pull fails first
    broken = two_services(port, greeting='changed').replace(
        '  web:\n    image: %s' % IMAGE, '  web:\n    image: 127.0.0.1:1/selfhosted-test/missing:1')
    broken = broken.replace('interval: 1s', 'interval: 2s')
    stack.write(broken)
    predicted = stack.run(check=True)
    assert predicted['pulled'] == ['127.0.0.1:1/selfhosted-test/missing:1']
    assert actions(predicted) == {'db': 'recreated', 'web': 'recreated'}
    failed = stack.run()
    assert failed['failed'] is True
    assert 'pulling image 127.0.0.1:1/selfhosted-test/missing:1 failed' in failed['msg']
    assert 'Nothing in the running stack was changed' in failed['msg']
    assert stack.ids() == ids
    assert all(info['State']['Running'] for info in stack.containers().values())


def test_unsupported_key_errors_before_any_change(stack):
    stack.write('services:\n  web:\n    image: %s\n    privileged: true\n' % IMAGE)
    failed = stack.run()
    assert failed['failed'] is True
    assert "unsupported key 'privileged' in service 'web'" in failed['msg']
    assert stack.path('compose.yaml') in failed['msg']
    assert stack.containers() == {} and stack.networks() == []

    port = free_port()
    stack.write(two_services(port))
    actions(stack.run())
    ids = stack.ids()
    stack.write(two_services(port, greeting='x', extra_web='    devices: [/dev/fuse]\n'))
    failed = stack.run()
    assert "unsupported key 'devices' in service 'web'" in failed['msg']
    assert stack.ids() == ids


def test_interpolation_is_rejected_and_double_dollar_is_literal(stack):
    stack.write('services:\n  app:\n    image: %s\n    command: sleep 1000\n    environment:\n      A: "${HOME}"\n' % IMAGE)
    failed = stack.run()
    assert 'interpolation is not supported' in failed['msg'] and 'services.app.environment.A' in failed['msg']
    stack.write('services:\n  app:\n    image: %s\n    command: sleep 1000\n    environment:\n      A: "$${HOME}"\n' % IMAGE)
    actions(stack.run())
    assert 'A=${HOME}' in stack.containers()['app']['Config']['Env']


def test_failed_start_puts_the_old_container_back(stack):
    port = free_port()
    stack.write(two_services(port))
    actions(stack.run())
    ids = stack.ids()
    with socket.socket() as blocker:
        blocker.bind(('127.0.0.1', 0))
        blocker.listen(1)
        taken = blocker.getsockname()[1]
        stack.write(two_services(taken))
        failed = stack.run()
    assert failed['failed'] is True
    assert 'put back' in failed['msg'], failed['msg']
    assert stack.ids() == ids
    containers = stack.containers()
    assert containers['web']['Name'] == '/%s-web-1' % stack.name
    assert containers['web']['State']['Running'] is True
    assert len(stack.client.containers(all=True, filters={'name': stack.name})) == 2
    # and the next run with a free port converges
    stack.write(two_services(port, greeting='after'))
    assert actions(stack.run()) == {'db': 'unchanged', 'web': 'recreated'}


def test_changed_network_is_recreated_with_its_containers(stack):
    sleeper = '    image: %s\n    command: sleep 100000\n    stop_grace_period: 1s\n' % IMAGE
    text = 'services:\n  a:\n%s  b:\n%s    networks: [other]\nnetworks:\n  other:\n' % (sleeper, sleeper)
    stack.write(text)
    # c is part of the project but defined in another file, as the proxy is in the registry stack
    stack.write('services:\n  c:\n%s    networks:\n      other:\n        aliases: [sea]\n' % sleeper, 'extra.yaml')
    actions(stack.run(files=['compose.yaml', 'extra.yaml']))
    ids = stack.ids()
    stack.write(text.replace('networks:\n  other:\n', 'networks:\n  other:\n    internal: true\n'))
    predicted = stack.run(check=True)
    assert actions(predicted) == {'a': 'unchanged', 'b': 'recreated'}
    assert predicted['networks'] == {stack.name + '_default': 'unchanged', stack.name + '_other': 'recreated'}
    assert predicted['diff']['after']['networks'] == {stack.name + '_other': {'internal': True}}
    done = stack.run()
    assert actions(done) == actions(predicted) and done['networks'] == predicted['networks']
    assert stack.client.inspect_network(stack.name + '_other')['Internal'] is True
    new_ids = stack.ids()
    assert new_ids['a'] == ids['a'] and new_ids['c'] == ids['c'] and new_ids['b'] != ids['b']
    # c was reconnected to the new network, with its aliases
    assert stack.exec_('b', 'ping', '-c1', '-W2', 'sea').returncode == 0
    assert stack.exec_('c', 'ping', '-c1', '-W2', 'b').returncode == 0
    assert actions(stack.run()) == {'a': 'unchanged', 'b': 'unchanged'}


def test_wait_reports_an_unhealthy_service(stack):
    stack.write('services:\n  sick:\n    image: %s\n    command: sleep 100000\n    stop_grace_period: 1s\n'
                '    healthcheck:\n      test: ["CMD", "false"]\n      interval: 1s\n      retries: 1\n' % IMAGE)
    failed = stack.run(wait=True, wait_timeout=30)
    assert failed['failed'] is True
    assert 'sick' in failed['msg'] and 'unhealthy' in failed['msg']


def start_first_service(greeting, healthy=True):
    """One start-first service whose healthcheck passes a second after start (or never)."""
    ready = 'sleep 1; touch /tmp/ready; ' if healthy else ''
    return (
        'services:\n  app:\n    image: %s\n'
        '    command: ["sh", "-c", "%strap \'exit 0\' TERM; while true; do sleep 0.2; done"]\n'
        '    environment:\n      GREETING: %s\n'
        '    stop_grace_period: 5s\n'
        '    healthcheck:\n      test: ["CMD", "test", "-f", "/tmp/ready"]\n      interval: 1s\n      retries: 3\n'
        '    deploy:\n      update_config:\n        order: start-first\n        monitor: 2s\n'
        % (IMAGE, ready, greeting))


def container_events(stack, since, until):
    """(action, container id) of the project's container events between two times, in order."""
    events = stack.client.events(since=since, until=until, decode=True,
                                 filters={'type': 'container', 'label': 'com.docker.compose.project=%s' % stack.name})
    return [(event.get('Action') or event.get('status'), event['id']) for event in events]


def test_start_first_stops_the_old_container_only_after_the_new_one_is_ready(stack):
    stack.write(start_first_service('one'))
    actions(stack.run(wait=True))
    old = stack.ids()['app']
    # Changing only the rollout settings recreates nothing.
    stack.write(start_first_service('one').replace('monitor: 2s', 'monitor: 3s'))
    assert actions(stack.run()) == {'app': 'unchanged'}
    since = int(time.time()) - 1
    stack.write(start_first_service('two'))
    started = time.monotonic()
    assert actions(stack.run()) == {'app': 'recreated'}
    took = time.monotonic() - started
    new = stack.ids()['app']
    events = container_events(stack, since, int(time.time()) + 1)
    healthy = events.index(('health_status: healthy', new))
    stopped = [i for i, (action, cid) in enumerate(events) if cid == old and action in ('kill', 'die')]
    assert stopped and min(stopped) > healthy, events
    assert ('die', new) not in events
    # the old container was stopped with SIGTERM, not killed after the grace period
    assert took >= 3 and took < 5 + 15, took
    containers = stack.containers()
    assert list(containers) == ['app'] and containers['app']['Name'] == '/%s-app-1' % stack.name
    assert 'GREETING=two' in containers['app']['Config']['Env']


def test_start_first_keeps_the_old_container_when_the_new_one_fails(stack):
    stack.write(start_first_service('one'))
    actions(stack.run(wait=True))
    old = stack.ids()['app']
    stack.write(start_first_service('never', healthy=False))
    failed = stack.run(wait_timeout=20)
    assert failed['failed'] is True
    assert 'start-first' in failed['msg'] and 'put back' in failed['msg'], failed['msg']
    containers = stack.containers()
    assert stack.ids() == {'app': old}
    assert containers['app']['State']['Running'] is True and containers['app']['Name'] == '/%s-app-1' % stack.name
    assert len(stack.client.containers(all=True, filters={'name': stack.name})) == 1


def test_start_first_is_refused_for_a_service_with_ports(stack):
    stack.write(start_first_service('one').replace('    stop_grace_period', '    ports: ["127.0.0.1::80"]\n'
                                                   '    stop_grace_period'))
    failed = stack.run()
    assert failed['failed'] is True and 'start-first' in failed['msg'] and 'stop-first' in failed['msg']
    assert not stack.containers()


CONFINED = '''
services:
  plain:
    image: %(image)s
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    stop_grace_period: 1s
  confined:
    image: %(image)s
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    stop_grace_period: 1s
%(confinement)s
'''
CONFINEMENT = '''    user: "65534:65534"
    read_only: true
    cap_drop: [ALL]
    cap_add: [NET_BIND_SERVICE]
    security_opt: ["no-new-privileges:true"]
    pids_limit: 64
    mem_limit: 32m
    ulimits:
      nofile: {soft: 512, hard: 1024}
'''


def test_confinement_keys_reach_the_engine_and_a_change_recreates_only_their_service(stack):
    stack.write(CONFINED % {'image': IMAGE, 'confinement': ''})
    assert actions(stack.run()) == {'plain': 'created', 'confined': 'created'}
    before = stack.ids()
    stack.write(CONFINED % {'image': IMAGE, 'confinement': CONFINEMENT})
    predicted = stack.run(check=True)
    assert actions(predicted) == {'plain': 'unchanged', 'confined': 'recreated'}
    assert predicted['diff']['after']['services']['confined']['cap_drop'] == ['ALL']
    assert predicted['diff']['after']['services']['confined']['mem_limit'] == 32 << 20
    assert 'plain' not in predicted['diff']['after']['services']
    assert stack.ids() == before
    changed = stack.run()
    assert actions(changed) == {'plain': 'unchanged', 'confined': 'recreated'}
    assert changed['diff'] == predicted['diff']
    after = stack.ids()
    assert after['plain'] == before['plain'] and after['confined'] != before['confined']
    host_config = stack.containers()['confined']['HostConfig']
    assert host_config['ReadonlyRootfs'] is True
    assert host_config['CapDrop'] == ['ALL']
    assert host_config['CapAdd'] in (['NET_BIND_SERVICE'], ['CAP_NET_BIND_SERVICE'])
    assert host_config['SecurityOpt'] == ['no-new-privileges:true']
    assert (host_config['PidsLimit'], host_config['Memory']) == (64, 32 << 20)
    assert host_config['Ulimits'] == [{'Name': 'nofile', 'Soft': 512, 'Hard': 1024}]
    # What the container's process really gets: at most NET_BIND_SERVICE (bit 10), its limits of open files.
    # Read from /proc/1: a shell started by `docker exec` does not always get the container's limits (seen
    # with Docker 20.10: `ulimit -n` said 1024 in one CI run out of many).
    status = stack.exec_('confined', 'sh', '-c', 'grep -E "^(Uid|CapBnd)" /proc/1/status; grep "^Max open files" /proc/1/limits').stdout.split()
    assert status == ['Uid:', '65534', '65534', '65534', '65534', 'CapBnd:', '0000000000000400', 'Max', 'open', 'files', '512', '1024', 'files']
    assert actions(stack.run()) == {'plain': 'unchanged', 'confined': 'unchanged'}


def test_subset_of_services_and_scope_of_absent(stack):
    port = free_port()
    stack.write(two_services(port))
    # web depends on db: selecting web brings db along
    assert actions(stack.run(services=['web'])) == {'db': 'created', 'web': 'created'}
    assert actions(stack.run(state='stopped', services=['web'])) == {'web': 'stopped'}
    assert stack.containers()['db']['State']['Running'] is True
    assert actions(stack.run(state='absent', services=['web'])) == {'web': 'removed'}
    assert sorted(stack.containers()) == ['db']
    assert stack.networks() == [stack.name + '_default']


def test_pull_missing_and_always(stack, local_registry, workdir):
    reference = '%s/cstest/app:1' % local_registry
    newer = '%s/cstest/app:new' % local_registry
    try:
        check_pulls(stack, reference, newer, workdir)
    finally:
        stack.cleanup()
        subprocess.run([DOCKER_CLI, 'rmi', '-f', reference, newer], check=False, capture_output=True)
        # pulls by this test left digest references to the local registry on the shared test image
        digests = stack.client.inspect_image(IMAGE).get('RepoDigests') or []
        for digest in digests:
            if digest.startswith(local_registry + '/'):
                subprocess.run([DOCKER_CLI, 'rmi', digest], check=False, capture_output=True)


def check_pulls(stack, reference, newer, workdir):
    subprocess.run([DOCKER_CLI, 'tag', IMAGE, reference], check=True)
    subprocess.run([DOCKER_CLI, 'push', reference], check=True, capture_output=True)
    subprocess.run([DOCKER_CLI, 'rmi', reference], check=True, capture_output=True)
    stack.write('services:\n  app:\n    image: %s\n    command: sleep 100000\n    stop_grace_period: 1s\n' % reference)

    predicted = stack.run(check=True)
    assert predicted['pulled'] == [reference]
    assert actions(predicted) == {'app': 'created'}
    with pytest.raises(docker.errors.NotFound):
        stack.client.inspect_image(reference)
    done = stack.run()
    assert done['pulled'] == predicted['pulled'] and actions(done) == actions(predicted)
    first_image = stack.containers()['app']['Image']

    again = stack.run()
    assert again['pulled'] == [] and again['changed'] is False

    same = stack.run(pull='always')
    assert same['pulled'] == [reference]
    assert same['changed'] is False
    assert actions(same) == {'app': 'unchanged'}

    # a new image behind the same tag: pull=always recreates
    build_busybox_image(newer, workdir, {'etc/release': 'two\n'})
    subprocess.run([DOCKER_CLI, 'tag', newer, reference], check=True)
    subprocess.run([DOCKER_CLI, 'push', reference], check=True, capture_output=True)
    subprocess.run([DOCKER_CLI, 'tag', first_image, reference], check=True)
    updated = stack.run(pull='always')
    assert updated['pulled'] == [reference]
    assert actions(updated) == {'app': 'recreated'}
    new_image = stack.containers()['app']['Image']
    assert new_image != first_image
    assert updated['diff']['after']['services']['app'] == {'image_id': new_image}
