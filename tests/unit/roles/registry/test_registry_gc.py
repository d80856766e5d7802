# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Retention of roles/registry/files/registry_gc.py: which tags a policy lets go, read from a filesystem storage
tree (roles/registry/files/registry_storage.py; its S3 side runs against Ceph RGW in tests/integration/registry_cluster).

The write window and garbage-collect run against the real registry 3.1.1 in
tests/integration/registry_gc and, behind nginx under a pull loop, in the
resilience scenario.
"""

from __future__ import annotations

import os
import sys

import pytest

FILES_DIR = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'registry', 'files')
# As installed: the host programs and what they share, side by side.
sys.path.insert(0, FILES_DIR)
import registry_gc  # noqa: E402 pylint: disable=import-error,wrong-import-position
import registry_storage  # noqa: E402 pylint: disable=import-error,wrong-import-position

NOW = 1_800_000_000
DAY = 86400


def storage(root, tags):
    """A filesystem storage tree with {repository: {tag: days since pushed}}; digests follow the tag names."""
    for repository, ages in tags.items():
        tags_dir = os.path.join(root, registry_storage.REPOSITORIES, repository, '_manifests', 'tags')
        os.makedirs(os.path.join(root, registry_storage.REPOSITORIES, repository, '_layers'), exist_ok=True)
        for tag, days in ages.items():
            current = os.path.join(tags_dir, tag, 'current')
            os.makedirs(current)
            with open(os.path.join(current, 'link'), 'w', encoding='ascii') as handle:
                handle.write('sha256:' + tag.encode().hex().ljust(64, '0'))
            os.utime(os.path.join(current, 'link'), (NOW - days * DAY, NOW - days * DAY))
    return str(root)


def tags(root):
    return registry_storage.FilesystemStorage(root).tags()


def deleted(root, policies, protected=('latest',)):
    return [(d['repository'], d['tag']) for d in registry_gc.plan(tags(root), policies, set(protected), NOW)]


def test_tags_are_read_with_push_time_and_digest_nested_repositories_too(tmp_path):
    root = storage(tmp_path, {'app': {'1': 3}, 'team/app': {'a': 1}, 'team/app/cache': {'b': 2}})
    found = tags(root)
    assert sorted(found) == ['app', 'team/app', 'team/app/cache']
    assert found['team/app'] == [('a', NOW - DAY)]
    assert registry_storage.FilesystemStorage(root).digest('team/app', 'a').startswith('sha256:61')


def test_a_tag_cut_short_is_no_tag(tmp_path):
    root = storage(tmp_path, {'app': {'1': 1}})
    os.makedirs(os.path.join(root, registry_storage.REPOSITORIES, 'app', '_manifests', 'tags', 'half', 'current'))
    assert [tag for tag, _pushed in tags(root)['app']] == ['1']


def test_keep_newest_counts_the_tags_not_kept_otherwise(tmp_path):
    root = storage(tmp_path, {'ci/app': {'b1': 5, 'b2': 4, 'b3': 3, 'b4': 2, 'latest': 1, 'v1.0.0': 9}})
    policy = {'repositories': ['ci/**'], 'keep_newest': 2, 'keep_tags': [r'v[0-9]+\.[0-9]+\.[0-9]+']}
    assert deleted(root, [policy]) == [('ci/app', 'b1'), ('ci/app', 'b2')]


def test_delete_older_than_and_keep_newest_either_lets_a_tag_go(tmp_path):
    root = storage(tmp_path, {'app': {'new': 1, 'mid': 10, 'old': 40}})
    assert deleted(root, [{'repositories': ['app'], 'delete_older_than': '30d'}]) == [('app', 'old')]
    assert deleted(root, [{'repositories': ['app'], 'keep_newest': 2, 'delete_older_than': '5d'}]) == [('app', 'mid'), ('app', 'old')]
    assert deleted(root, [{'repositories': ['app'], 'keep_newest': 0}]) == [('app', 'mid'), ('app', 'new'), ('app', 'old')]


def test_the_first_matching_policy_decides_and_unmatched_repositories_keep_everything(tmp_path):
    root = storage(tmp_path, {'team/app': {'a': 1, 'b': 2}, 'team/app/cache': {'c': 1, 'd': 2}, 'other': {'x': 99}})
    policies = [{'repositories': ['team/*'], 'keep_newest': 1}, {'repositories': ['**'], 'keep_newest': 0}]
    assert deleted(root, policies) == [('other', 'x'), ('team/app', 'b'), ('team/app/cache', 'c'), ('team/app/cache', 'd')]
    assert deleted(root, policies[:1]) == [('team/app', 'b')]


def test_protected_tags_are_kept_by_every_policy(tmp_path):
    root = storage(tmp_path, {'app': {'latest': 90, 'stable': 90, 'x': 90}})
    assert deleted(root, [{'repositories': ['**'], 'keep_newest': 0}], protected=('latest', 'stable')) == [('app', 'x')]


def test_keep_tags_match_the_whole_tag(tmp_path):
    root = storage(tmp_path, {'app': {'v1': 9, 'v1-rc': 9}})
    assert deleted(root, [{'repositories': ['app'], 'keep_newest': 0, 'keep_tags': ['v[0-9]+']}], protected=()) == [('app', 'v1-rc')]


def test_each_deletion_says_why(tmp_path):
    root = storage(tmp_path, {'app': {'a': 1, 'b': 45}})
    (first,) = registry_gc.plan(tags(root), [{'repositories': ['app'], 'delete_older_than': '6w'}], set(), NOW)
    assert first['reason'] == 'pushed 45d 0h ago, more than 6w'
    assert first['pushed'] == '2026-12-01T08:00:00Z'


@pytest.mark.parametrize('text, seconds', [('45s', 45), ('30m', 1800), ('12h', 43200), ('30d', 2592000), ('2w', 1209600)])
def test_durations(text, seconds):
    assert registry_gc.duration_seconds(text) == seconds


@pytest.mark.parametrize('text', ['30', 'd', '1.5d', '30 d', '-1d', ''])
def test_wrong_durations_are_refused(text):
    with pytest.raises(registry_gc.GCError, match='is not a duration'):
        registry_gc.duration_seconds(text)


def test_deleting_a_tag_leaves_the_others_and_the_manifests(tmp_path):
    root = storage(tmp_path, {'app': {'a': 1, 'b': 2}})
    registry_storage.FilesystemStorage(root).delete_tag('app', 'b')
    assert [tag for tag, _pushed in tags(root)['app']] == ['a']


def test_the_summary_of_garbage_collect_is_read():
    output = 'app\napp: marking manifest sha256:aa\n\n12 blobs marked, 3 blobs and 2 manifests eligible for deletion\nblob eligible for deletion: sha256:bb\n'
    assert registry_gc.parse_gc_output(output) == {'blobs_marked': 12, 'blobs_deleted': 3, 'manifests_deleted': 2}
    with pytest.raises(registry_gc.GCError, match='no summary'):
        registry_gc.parse_gc_output('failed to garbage collect: boom')


def test_cache_commands_are_arrays_of_bulk_strings():
    assert registry_gc.resp_command('SELECT', '0') == b'*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n'
    assert registry_gc.resp_command('AUTH', 'p\u00e4ss') == b'*2\r\n$4\r\nAUTH\r\n$5\r\np\xc3\xa4ss\r\n'


@pytest.mark.parametrize('address, expected', [
    ('cache.internal:6379', ('cache.internal', 6379)),
    ('10.0.0.5:6380', ('10.0.0.5', 6380)),
    ('[2001:db8::5]:6379', ('2001:db8::5', 6379)),
])
def test_cache_addresses(address, expected):
    assert registry_gc.split_address(address) == expected


@pytest.mark.parametrize('address', ['cache.internal', 'cache:port', ':6379'])
def test_wrong_cache_addresses_are_refused(address):
    with pytest.raises(registry_gc.GCError, match='not host:port'):
        registry_gc.split_address(address)


def test_a_phase_other_than_the_four_is_refused():
    with pytest.raises(SystemExit):
        registry_gc.main(['-', '--phase', 'sweep'])


def test_retention_on_s3_without_keys_is_refused_before_the_window_opens():
    # Refused before anything of the window is done (no engine is asked here).
    settings = {'storage': {'s3': {'bucket': 'images'}}, 'policies': [{'repositories': ['**'], 'keep_newest': 1}]}
    with pytest.raises(registry_gc.GCError, match='registry_storage_s3_accesskey'):
        registry_gc.run(settings, dry_run=False)


def test_settings_of_an_older_release_still_name_the_filesystem_root(tmp_path):
    root = storage(tmp_path, {'app': {'a': 1}})
    assert isinstance(registry_gc.storage_of({'storage_root': root}), registry_storage.FilesystemStorage)
    assert registry_gc.storage_of({'storage_root': ''}) is None
