# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for the pure logic of selfhosted.registry.htpasswd_user."""

from __future__ import annotations

import bcrypt
import pytest

from ansible_collections.selfhosted.registry.plugins.module_utils import _htpasswd as h


# Real hashes at the lowest cost keep the tests fast.
COST = 4
SECRET = 'correct horse'


def bcrypt_hash(password, cost=COST, prefix='2y'):
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
    return '$%s$%s' % (prefix, hashed[4:])


def fake_verify(pairs):
    """Pure stand-in for verify_many: a 'hash' matches the password it embeds."""
    return [hashed.endswith('/' + password) for password, hashed in pairs]


def fake_bcrypt(password, cost=COST):
    # Shaped like a bcrypt hash (53 characters after the cost) so hash_scheme() says bcrypt.
    return '$2y$%02d$%s' % (cost, ('x' * 53 + '/' + password)[-53:])


def users(*specs):
    return h.requested_users(users=[dict(zip(('name', 'password', 'state'), spec)) for spec in specs])


# --------------------------------------------------------------------------
# parse


def test_parse_keeps_comments_blank_lines_and_order():
    text = '# registry users\n\nalice:$2y$05$aaa\n  bob:{SHA}xyz  \r\n#carol:old\n'
    lines = h.parse(text)
    assert [(line.number, line.name) for line in lines] == [(1, None), (2, None), (3, 'alice'), (4, 'bob'), (5, None)]
    assert lines[3].hash == '{SHA}xyz'
    assert lines[3].text == '  bob:{SHA}xyz  \r'
    assert lines[0].text == '# registry users'


@pytest.mark.parametrize('text, count', [
    ('', 0),
    ('\n', 1),
    ('alice:x', 1),
    ('alice:x\n', 1),
    ('alice:x\nbob:y', 2),
])
def test_parse_with_and_without_final_newline(text, count):
    assert len(h.parse(text)) == count


@pytest.mark.parametrize('text, expected', [
    ('alice:x\nnocolonhere\n', "line 2: no ':'"),
    ('alice:x\n\n\n:hash\n', 'line 4: the user name before'),
    ('alice:x\nbob:y\nalice:z\n', "user 'alice' appears on lines 1 and 3"),
    ('  alice:x\nalice:y\n', "user 'alice' appears on lines 1 and 2"),
])
def test_parse_rejects_malformed_and_duplicate_lines(text, expected):
    with pytest.raises(h.HtpasswdError) as error:
        h.parse(text, '/etc/htpasswd')
    assert expected in str(error.value)
    assert str(error.value).startswith('/etc/htpasswd')


def test_parse_error_does_not_echo_the_line():
    with pytest.raises(h.HtpasswdError) as error:
        h.parse('pastedpassword123\n')
    assert 'pastedpassword123' not in str(error.value)


# --------------------------------------------------------------------------
# hash schemes


@pytest.mark.parametrize('hashed, scheme', [
    ('$2y$05$' + 'a' * 53, 'bcrypt'),
    ('$2b$12$' + 'a' * 53, 'bcrypt'),
    ('$2a$10$' + 'a' * 53, 'bcrypt'),
    ('$2y$05$' + 'a' * 52, 'unknown scheme or plain text'),
    ('$2y$03$' + 'a' * 53, 'unknown scheme or plain text'),  # bcrypt refuses costs below 4
    ('$2y$32$' + 'a' * 53, 'unknown scheme or plain text'),  # and above 31
    ('$2y$31$' + 'a' * 53, 'bcrypt'),
    ('$2x$05$' + 'a' * 53, 'bcrypt $2x$ (unsupported variant)'),
    ('$apr1$salt$hash', 'MD5 (apr1)'),
    ('{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', 'SHA-1'),
    ('$1$salt$hash', 'MD5-crypt'),
    ('$5$salt$hash', 'SHA-256-crypt'),
    ('$6$salt$hash', 'SHA-512-crypt'),
    ('abJnggxhB/yWI', 'DES-crypt'),
    ('', 'empty hash'),
    ('plaintext', 'unknown scheme or plain text'),
])
def test_hash_scheme(hashed, scheme):
    assert h.hash_scheme(hashed) == scheme


@pytest.mark.parametrize('hashed, cost', [
    ('$2y$05$' + 'a' * 53, 5),
    ('$2b$12$' + 'a' * 53, 12),
    ('$apr1$salt$hash', None),
])
def test_bcrypt_cost(hashed, cost):
    assert h.bcrypt_cost(hashed) == cost


@pytest.mark.parametrize('cost', [4, 5, 6])
def test_hash_password_writes_2y_with_the_requested_cost(cost):
    hashed = h.hash_password(SECRET, cost)
    assert hashed.startswith('$2y$%02d$' % cost)
    assert h.hash_scheme(hashed) == 'bcrypt'
    assert h.bcrypt_cost(hashed) == cost
    assert h.check_password(SECRET, hashed)


def test_hash_password_salts_every_hash():
    assert h.hash_password(SECRET, COST) != h.hash_password(SECRET, COST)


@pytest.mark.parametrize('prefix', ['2y', '2b', '2a'])
def test_check_password_accepts_every_bcrypt_prefix(prefix):
    hashed = bcrypt_hash(SECRET, prefix=prefix)
    assert h.check_password(SECRET, hashed)
    assert not h.check_password(SECRET + '!', hashed)


def test_check_password_non_ascii():
    hashed = h.hash_password('pässwörd', COST)
    assert h.check_password('pässwörd', hashed)
    assert not h.check_password('passwort', hashed)


@pytest.mark.parametrize('hashed', ['$2y$05$short', '$apr1$x$y', '', 'näh'])
def test_check_password_treats_unparsable_hashes_as_mismatch(hashed):
    assert h.check_password(SECRET, hashed) is False


@pytest.mark.parametrize('cost', [3, 32, -1, '5', None, True, 5.0])
def test_validate_cost_rejects(cost):
    with pytest.raises(h.HtpasswdError, match='cost must be an integer from 4 to 31'):
        h.validate_cost(cost)


@pytest.mark.parametrize('cost', [4, 5, 12, 31])
def test_validate_cost_accepts(cost):
    h.validate_cost(cost)


def test_default_cost_is_cheap_for_the_registry():
    # The registry pays this on every request; see the module documentation.
    assert h.DEFAULT_COST == 5


# --------------------------------------------------------------------------
# thread pool


@pytest.mark.parametrize('workers', [None, 1, 2, 8])
def test_verify_many_keeps_order(workers):
    good = bcrypt_hash('a')
    pairs = [('a', good), ('b', good), ('a', good), ('a', '$apr1$x$y'), ('a', good)]
    assert h.verify_many(pairs, workers=workers) == [True, False, True, False, True]


def test_verify_many_empty():
    assert h.verify_many([]) == []


def test_pool_is_sized_to_the_cpus(monkeypatch):
    sizes = []

    class RecordingPool(h.ThreadPoolExecutor):
        def __init__(self, max_workers):
            sizes.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(h, 'ThreadPoolExecutor', RecordingPool)
    monkeypatch.setattr(h, 'cpu_count', lambda: 3)
    h.verify_many([('a', 'x')] * 10)
    h.verify_many([('a', 'x')] * 2)
    assert sizes == [3, 2]


def test_cpu_count_is_positive():
    assert h.cpu_count() >= 1


def test_hash_many():
    hashes = h.hash_many({'alice': 'one', 'bob': 'two'}, COST)
    assert list(hashes) == ['alice', 'bob']
    assert h.check_password('one', hashes['alice'])
    assert h.check_password('two', hashes['bob'])


# --------------------------------------------------------------------------
# validation of requested users


@pytest.mark.parametrize('name, expected', [
    ('', 'the user name is empty'),
    (None, 'the user name is empty'),
    ('a:b', "contains ':'"),
    ('a b', 'white space'),
    ('a\tb', 'white space'),
    ('alice\n', 'white space or a line break'),
    ('a\rb', 'white space or a line break'),
    ('a\x00b', 'control character'),
    ('a\x1bb', 'control character'),
    ('#admin', "starts with '#'"),
])
def test_validate_name_rejects(name, expected):
    with pytest.raises(h.HtpasswdError) as error:
        h.validate_name(name, 'users[3]')
    assert expected in str(error.value)
    assert str(error.value).startswith('users[3]: ')


@pytest.mark.parametrize('name', ['alice', 'ci-bot', 'a.b@example.com', 'ユーザー', 'a#b'])
def test_validate_name_accepts(name):
    h.validate_name(name, 'name')


@pytest.mark.parametrize('password, expected', [
    (None, 'a password is required with state=present'),
    ('', 'the password is empty'),
    ('abc\n', 'line break'),
    ('a\rb', 'line break'),
    ('a\x00b', 'NUL byte'),
    ('x' * 73, 'is 73 bytes long in UTF-8, but bcrypt uses only the first 72 bytes'),
    ('é' * 37, 'is 74 bytes long'),
    ('CHANGE-ME', "a placeholder of the collection's example inventory"),
    ('ci-example-password-change-me-0123456789', 'give a password of your own'),
])
def test_validate_password_rejects(password, expected):
    with pytest.raises(h.HtpasswdError) as error:
        h.validate_password('alice', password, 'users[0]')
    message = str(error.value)
    assert expected in message
    assert message.startswith("users[0] (user 'alice'): ")
    if password:
        assert password not in message


@pytest.mark.parametrize('password', ['x', 'x' * 72, 'é' * 36, 'pass word with spaces', 'ü:#$'])
def test_validate_password_accepts(password):
    h.validate_password('alice', password, 'name')


def test_requested_users_single():
    result = h.requested_users('alice', SECRET, 'present')
    assert [(u.name, u.password, u.state, u.where) for u in result] == [('alice', SECRET, 'present', 'name')]


def test_requested_users_absent_needs_no_password():
    assert h.requested_users('alice', None, 'absent')[0].state == 'absent'
    assert users(('bob', None, 'absent'))[0].state == 'absent'


def test_requested_users_list_defaults_state():
    assert [u.state for u in h.requested_users(users=[{'name': 'a', 'password': 'p'}])] == ['present']


def test_requested_users_nothing():
    assert h.requested_users() == []
    assert h.requested_users(users=[]) == []


@pytest.mark.parametrize('entries, expected', [
    ([{'name': 'a', 'password': 'p'}, {'name': 'b', 'password': 'p'}, {'name': 'a', 'state': 'absent'}],
     "user 'a' is given twice, as users[0] and users[2]"),
    ([{'name': 'a', 'password': 'p'}, {'name': 'a b', 'password': 'p'}], "users[1]: user name 'a b'"),
    ([{'name': 'a', 'password': 'p'}, {'name': 'b'}], "users[1] (user 'b'): a password is required"),
    ([{'name': 'a', 'password': 'p', 'state': 'gone'}], 'state must be one of present, absent'),
])
def test_requested_users_rejects(entries, expected):
    with pytest.raises(h.HtpasswdError) as error:
        h.requested_users(users=entries)
    assert expected in str(error.value)


# --------------------------------------------------------------------------
# planning


def existing(*entries):
    return h.parse(''.join('%s:%s\n' % entry for entry in entries))


def plan(lines, requested, **kwargs):
    kwargs.setdefault('cost', COST)
    kwargs.setdefault('verify', fake_verify)
    return h.plan_changes(lines, requested, **kwargs)


@pytest.mark.parametrize('kwargs, expected', [
    # password matches at the requested cost: nothing to do
    (dict(), ([], [], [])),
    # another password: rehash
    (dict(password='new'), ([], [], ['alice'])),
    # on_create never touches existing users
    (dict(password='new', update_password='on_create'), ([], [], [])),
    # same password, other cost: rehash at the requested cost
    (dict(cost=6), ([], [], ['alice'])),
    (dict(cost=6, update_password='on_create'), ([], [], [])),
    (dict(state='absent', password=None), ([], ['alice'], [])),
])
def test_plan_single_existing_user(kwargs, expected):
    password = kwargs.pop('password', 'old')
    state = kwargs.pop('state', 'present')
    result = plan(existing(('alice', fake_bcrypt('old'))), h.requested_users('alice', password, state), **kwargs)
    assert (result.added, result.removed, result.updated) == expected
    assert result.changed == any(expected)


def test_plan_reasons_and_passwords_to_hash():
    lines = existing(('alice', fake_bcrypt('a')), ('bob', fake_bcrypt('b', cost=9)), ('carol', '$apr1$x$y'), ('dave', fake_bcrypt('d')))
    result = plan(lines, users(('dave', 'D'), ('carol', 'c'), ('bob', 'b'), ('alice', 'a'), ('erin', 'e')))
    assert result.added == ['erin']
    assert result.updated == ['bob', 'carol', 'dave']  # file order
    assert result.reasons == {'bob': 'cost', 'carol': 'scheme', 'dave': 'password'}
    assert result.to_hash == {'erin': 'e', 'bob': 'b', 'carol': 'c', 'dave': 'D'}
    assert result.unusable == []


def test_plan_absent_user_not_in_file_is_no_change():
    result = plan(existing(('alice', fake_bcrypt('a'))), users(('bob', None, 'absent')))
    assert not result.changed


def test_plan_exclusive_removes_unlisted_users_in_file_order():
    lines = existing(('zed', fake_bcrypt('z')), ('alice', fake_bcrypt('a')), ('bob', fake_bcrypt('b')), ('carol', fake_bcrypt('c')))
    result = plan(lines, users(('bob', 'b'), ('carol', None, 'absent')), exclusive=True)
    assert result.removed == ['zed', 'alice', 'carol']
    assert result.updated == [] and result.added == []


def test_plan_not_exclusive_keeps_unlisted_users():
    result = plan(existing(('zed', fake_bcrypt('z'))), users(('bob', 'b')))
    assert result.removed == [] and result.added == ['bob']


@pytest.mark.parametrize('file_exists, requested, create_empty', [
    (False, [], True),
    (False, [('bob', None, 'absent')], True),
    (False, [('bob', 'b')], False),  # created anyway, bob is added
    (True, [], False),
])
def test_plan_exclusive_creates_missing_file(file_exists, requested, create_empty):
    result = plan([], users(*requested), exclusive=True, file_exists=file_exists)
    assert result.create_empty is create_empty
    assert result.changed is (create_empty or bool(requested and requested[0][1]))


def test_plan_non_exclusive_missing_file_with_nothing_to_add_is_no_change():
    result = plan([], users(('bob', None, 'absent')), file_exists=False)
    assert not result.changed


def test_plan_verifies_all_users_in_one_batch():
    calls = []

    def verify(pairs):
        calls.append(list(pairs))
        return fake_verify(pairs)

    lines = existing(*[('u%d' % i, fake_bcrypt('p%d' % i)) for i in range(5)])
    plan(lines, users(*[('u%d' % i, 'p%d' % i) for i in range(5)]), verify=verify)
    assert len(calls) == 1 and len(calls[0]) == 5


def test_plan_does_not_verify_hashes_of_another_cost():
    def verify(pairs):
        assert pairs == [], 'a hash at another cost is rehashed anyway: never verify it'
        return []

    lines = existing(('alice', fake_bcrypt('a', cost=31)), ('bob', fake_bcrypt('b', cost=12)))
    result = plan(lines, users(('alice', 'a'), ('bob', 'wrong')), verify=verify)
    assert result.updated == ['alice', 'bob']
    assert result.reasons == {'alice': 'cost', 'bob': 'cost'}


def test_plan_skips_verification_with_on_create():
    def verify(pairs):
        raise AssertionError('on_create must not verify')

    plan(existing(('alice', fake_bcrypt('a'))), users(('alice', 'x')), update_password='on_create', verify=verify)


def test_plan_non_bcrypt_users_are_reported():
    lines = existing(('alice', '$apr1$x$y'), ('bob', '{SHA}abc'), ('carol', fake_bcrypt('c')))
    result = plan(lines, users(('alice', 'a')))
    assert result.updated == ['alice']
    assert result.unusable == [('bob', 'SHA-1')]
    with_on_create = plan(lines, users(('alice', 'a')), update_password='on_create')
    assert with_on_create.unusable == [('alice', 'MD5 (apr1)'), ('bob', 'SHA-1')]


def test_plan_with_real_bcrypt():
    lines = existing(('alice', bcrypt_hash('a')), ('bob', bcrypt_hash('b', cost=5)))
    result = h.plan_changes(lines, users(('alice', 'a'), ('bob', 'b')), cost=COST)
    assert result.updated == ['bob'] and result.reasons == {'bob': 'cost'}
    result = h.plan_changes(lines, users(('alice', 'wrong')), cost=COST)
    assert result.updated == ['alice'] and result.reasons == {'alice': 'password'}


@pytest.mark.parametrize('kwargs, expected', [
    (dict(update_password='sometimes'), 'update_password must be one of'),
    (dict(cost=2), 'cost must be an integer'),
])
def test_plan_rejects_bad_options(kwargs, expected):
    with pytest.raises(h.HtpasswdError, match=expected):
        plan([], [], **kwargs)


# --------------------------------------------------------------------------
# warnings


def test_warnings_name_users_and_schemes_never_hashes():
    lines = existing(('alice', '$apr1$SALT$HASHVALUE'), ('bob', '{SHA}SHAVALUE'), ('carol', fake_bcrypt('c')))
    result = plan(lines, users(('alice', 'a')))
    [warning] = h.warnings_for(lines, result, '/auth/htpasswd')
    assert 'alice (MD5 (apr1)), bob (SHA-1)' in warning
    assert 'Rehashed with bcrypt: alice.' in warning
    assert 'cannot log in to the registry until rehashed: bob' in warning
    assert 'carol' not in warning
    for secret in ('SALT', 'HASHVALUE', 'SHAVALUE'):
        assert secret not in warning


def test_no_warning_for_bcrypt_only_files():
    lines = existing(('carol', fake_bcrypt('c')))
    assert h.warnings_for(lines, plan(lines, []), 'p') == []


# --------------------------------------------------------------------------
# rendering


def test_render_keeps_unrelated_lines_verbatim_and_in_order():
    text = ('# managed by hand too\n'
            'zed:%s\n'
            '\n'
            '  alice:%s\r\n'
            '# bob is the CI account\n'
            'bob:%s\n'
            'carol:$apr1$x$y\n') % (fake_bcrypt('z'), fake_bcrypt('a'), fake_bcrypt('b'))
    lines = h.parse(text)
    result = plan(lines, users(('bob', 'new'), ('carol', None, 'absent'), ('dave', 'd'), ('erin', 'e'), ('alice', 'a')))
    rendered = h.render(lines, result, {'bob': 'HASH-B', 'dave': 'HASH-D', 'erin': 'HASH-E'})
    assert rendered == ('# managed by hand too\n'
                        'zed:%s\n'
                        '\n'
                        '  alice:%s\r\n'
                        '# bob is the CI account\n'
                        'bob:HASH-B\n'
                        'dave:HASH-D\n'
                        'erin:HASH-E\n') % (fake_bcrypt('z'), fake_bcrypt('a'))


@pytest.mark.parametrize('text, expected', [
    ('', ''),
    ('alice:x', ''),  # removed, nothing left
    ('# only a comment', '# only a comment\n'),
])
def test_render_empty_results(text, expected):
    lines = h.parse(text)
    result = plan(lines, [], exclusive=True)
    assert h.render(lines, result, {}) == expected


def test_render_adds_final_newline():
    lines = h.parse('alice:%s' % fake_bcrypt('a'))
    result = plan(lines, users(('bob', 'b')))
    assert h.render(lines, result, {'bob': 'X'}).endswith('\nbob:X\n')


# --------------------------------------------------------------------------
# diff


def test_diff_lists_names_and_reasons_never_secrets():
    lines = existing(('alice', fake_bcrypt('a')), ('bob', fake_bcrypt('b')), ('carol', '$apr1$SALT$HASH'),
                     ('dave', fake_bcrypt('d', cost=9)), ('zed', fake_bcrypt('z')))
    result = plan(lines, users(('bob', 'newsecret'), ('carol', 'c'), ('dave', 'd'), ('zed', None, 'absent'), ('erin', 'e')))
    d = h.diff(lines, result, '/auth/htpasswd', COST)
    assert d['before'] == 'alice\nbob\ncarol (MD5 (apr1))\ndave\nzed\n'
    assert d['after'] == ('alice\nbob (new password)\ncarol (rehashed with bcrypt, cost 4)\n'
                          'dave (rehashed at cost 4)\nerin\n')
    assert d['before_header'] == d['after_header'] == '/auth/htpasswd (users)'
    everything = repr(d)
    for secret in ('newsecret', 'SALT', '$2y$', '$apr1$'):
        assert secret not in everything


def test_diff_for_a_missing_file():
    result = plan([], users(('alice', 'a')), file_exists=False)
    d = h.diff([], result, '/auth/htpasswd', COST, file_exists=False)
    assert (d['before'], d['after'], d['before_header']) == ('', 'alice\n', '/auth/htpasswd (absent)')


def test_diff_without_changes_is_equal():
    lines = existing(('alice', fake_bcrypt('a')))
    d = h.diff(lines, plan(lines, users(('alice', 'a'))), 'p', COST)
    assert d['before'] == d['after'] == 'alice\n'
