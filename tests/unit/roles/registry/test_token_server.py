# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The token service (roles/registry/files/token_server.py): rules, scopes, limits, tokens, and HTTP over its socket.

Real bcrypt and real ES256 signatures; the HTTP tests talk to the service
over a Unix socket as nginx does. Whether the registry accepts its tokens is
tested against registry 2.8.3 and 3.1.1 in tests/integration.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import bcrypt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography import x509

FILES_DIR = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'registry', 'files')
SERVER_FILE = os.path.join(FILES_DIR, 'token_server.py')
# As installed: the host programs and what they share, side by side.
sys.path.insert(0, FILES_DIR)
import token_server  # noqa: E402 pylint: disable=import-error,wrong-import-position

ALICE, CI = 'alice-password', 'ci-password'


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


def decode_and_verify(token):
    """Header and claims of a JWT, after checking its ES256 signature with the key of its x5c certificate."""
    header_part, claims_part, signature_part = token.split('.')
    header = json.loads(b64url_decode(header_part))
    certificate = x509.load_der_x509_certificate(base64.b64decode(header['x5c'][0]))
    raw = b64url_decode(signature_part)
    signature = encode_dss_signature(int.from_bytes(raw[:32], 'big'), int.from_bytes(raw[32:], 'big'))
    certificate.public_key().verify(signature, ('%s.%s' % (header_part, claims_part)).encode(), ec.ECDSA(hashes.SHA256()))
    return header, json.loads(b64url_decode(claims_part))


@pytest.fixture(scope='module')
def signing_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp('signing')
    key, certificate = str(directory / 'key.pem'), str(directory / 'cert.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
                    '-keyout', key, '-out', certificate, '-days', '2', '-subj', '/CN=token signer'],
                   check=True, capture_output=True)
    return key, certificate


@pytest.fixture()
def config(tmp_path, signing_files):
    htpasswd = tmp_path / 'htpasswd'
    htpasswd.write_bytes(b'alice:%s\nci:%s\nold:{SHA}notbcrypt\n' % (
        bcrypt.hashpw(ALICE.encode(), bcrypt.gensalt(5)).replace(b'$2b$', b'$2y$'),
        bcrypt.hashpw(CI.encode(), bcrypt.gensalt(5))))
    return {
        'issuer': 'selfhosted-registry-token', 'service': 'registry.example.test', 'token_lifetime': 300,
        'htpasswd': str(htpasswd), 'signing_key': signing_files[0], 'signing_certificate': signing_files[1],
        'socket': str(tmp_path / 'token.sock'),
        'rules': [
            {'users': ['alice'], 'repositories': ['**'], 'actions': ['pull', 'push', 'delete']},
            {'users': ['ci'], 'repositories': ['team/*'], 'actions': ['pull']},
            {'users': ['ci'], 'repositories': ['team/ci/**'], 'actions': ['pull', 'push']},
        ],
        'catalog_users': ['alice'],
        'failures': {'per_address': 3, 'per_user': 5, 'window': 60},
    }


# --- rules and scopes ---------------------------------------------------------


@pytest.mark.parametrize('pattern, name, matches', [
    ('team/*', 'team/app', True),
    ('team/*', 'team/app/sub', False),
    ('team/**', 'team/app/sub', True),
    ('team/**', 'teams/app', False),
    ('*', 'app', True),
    ('*', 'team/app', False),
    ('app.v1', 'appxv1', False),
])
def test_patterns(pattern, name, matches):
    assert bool(token_server.pattern_regex(pattern).match(name)) is matches


def test_rules_grant_the_union_of_matching_rules_and_nothing_else(config):
    rules = token_server.Rules(config['rules'], config['catalog_users'])
    scopes = token_server.parse_scopes(['repository:team/app:pull,push', 'repository:team/ci/build:push,pull,delete',
                                        'repository:other/app:pull', 'registry:catalog:*'])
    assert rules.grant('ci', scopes) == [
        {'type': 'repository', 'name': 'team/app', 'actions': ['pull']},
        {'type': 'repository', 'name': 'team/ci/build', 'actions': ['pull', 'push']},
    ]
    assert rules.grant('alice', scopes)[-1] == {'type': 'registry', 'name': 'catalog', 'actions': ['*']}
    assert rules.grant(None, scopes) == []
    assert rules.grant('mallory', scopes) == []
    assert not rules.anonymous_allowed


def test_anonymous_and_every_user_rules():
    rules = token_server.Rules([{'anonymous': True, 'repositories': ['public/**'], 'actions': ['pull']},
                                {'users': ['*'], 'repositories': ['shared/*'], 'actions': ['pull', 'push']}], ['*'])
    scopes = token_server.parse_scopes(['repository:public/base:pull,push repository:shared/x:*'])
    assert rules.anonymous_allowed
    assert rules.grant(None, scopes) == [{'type': 'repository', 'name': 'public/base', 'actions': ['pull']}]
    assert rules.grant('bob', scopes) == [{'type': 'repository', 'name': 'shared/x', 'actions': ['pull', 'push']}]
    assert rules.catalog_allowed('bob') and not rules.catalog_allowed(None)


def test_unknown_action_is_a_config_error():
    with pytest.raises(token_server.ConfigError, match='rule 0: unknown actions'):
        token_server.Rules([{'users': ['a'], 'repositories': ['*'], 'actions': ['pull', 'own']}], [])


def test_scopes_keep_colons_out_of_names_and_drop_what_is_not_a_repository():
    assert token_server.parse_scopes(['repository(plugin):team/app:pull', 'repository:Bad/Name:pull',
                                      'repository:../etc:pull', 'garbage', 'registry:catalog:*']) == [
        ('repository', 'team/app', {'pull'}), ('registry', 'catalog', {'*'})]


# --- passwords, cache, limits -------------------------------------------------


def test_passwords_are_checked_once_then_cached_until_the_hash_changes(config, monkeypatch):
    service = token_server.TokenService(config)
    checks = []
    real_checkpw = token_server.bcrypt.checkpw
    monkeypatch.setattr(token_server.bcrypt, 'checkpw', lambda *args: checks.append(1) or real_checkpw(*args))
    assert service.authenticate('alice', ALICE, '192.0.2.1') == ('ok', 0)
    assert service.authenticate('alice', ALICE, '192.0.2.1') == ('ok', 0)
    assert len(checks) == 1
    # a new password for alice: the cached one no longer counts
    with open(config['htpasswd'], 'wb') as handle:
        handle.write(b'alice:%s\n' % bcrypt.hashpw(b'new-password', bcrypt.gensalt(5)))
    assert service.authenticate('alice', ALICE, '192.0.2.1') == ('denied', 0)
    assert service.authenticate('alice', 'new-password', '192.0.2.1') == ('ok', 0)
    assert len(checks) == 3


def test_unknown_users_and_non_bcrypt_entries_are_denied(config):
    with open(config['htpasswd'], 'ab') as handle:
        handle.write(b'broken:$2y$05$not-a-hash\n')
    service = token_server.TokenService(config)
    assert service.authenticate('nobody', ALICE, '192.0.2.1') == ('denied', 0)
    assert service.authenticate('old', 'anything', '192.0.2.2') == ('denied', 0)
    assert service.authenticate('broken', 'anything', '192.0.2.2') == ('denied', 0)


def test_unknown_users_cost_a_check_at_the_users_cost(config, monkeypatch):
    """No timing difference tells which users exist: the decoy hash has the cost of the file's hashes."""
    service = token_server.TokenService(config)
    checked = []
    monkeypatch.setattr(token_server.bcrypt, 'checkpw', lambda password, stored: checked.append(stored) or False)
    service.authenticate('nobody', 'guess', '192.0.2.3')
    assert checked[0].startswith(b'$2b$05$') and checked[0] == token_server.decoy_hash(5)


def test_failures_per_address_lock_out_guessing_but_not_cached_logins(config):
    service = token_server.TokenService(config)
    assert service.authenticate('ci', CI, '192.0.2.9') == ('ok', 0)
    for _guess in range(3):
        assert service.authenticate('alice', 'guess', '192.0.2.9') == ('denied', 0)
    outcome, wait = service.authenticate('alice', ALICE, '192.0.2.9')
    assert outcome == 'limited' and 1 <= wait <= 61
    # a login already verified from this address goes on working; other addresses are not affected
    assert service.authenticate('ci', CI, '192.0.2.9') == ('ok', 0)
    assert service.authenticate('alice', ALICE, '192.0.2.10') == ('ok', 0)


def test_failures_per_user_lock_out_guessing_from_many_addresses(config):
    service = token_server.TokenService(config)
    for number in range(5):
        assert service.authenticate('alice', 'guess', '198.51.100.%d' % number) == ('denied', 0)
    assert service.authenticate('alice', ALICE, '198.51.100.200')[0] == 'limited'


def test_failures_expire_after_the_window():
    limiter = token_server.FailureLimiter(limit=2, window=0.2)
    limiter.fail(['a'])
    limiter.fail(['a'])
    assert limiter.retry_after(['a']) >= 1
    time.sleep(0.3)
    assert limiter.retry_after(['a']) == 0


# --- tokens -------------------------------------------------------------------


def test_token_is_signed_with_the_certificates_key_and_short_lived(config):
    service = token_server.TokenService(config)
    body, access = service.token('ci', token_server.parse_scopes(['repository:team/app:pull,push']), now=1700000000)
    assert body['token'] == body['access_token'] and body['expires_in'] == 300
    assert body['issued_at'] == '2023-11-14T22:13:20Z'
    header, claims = decode_and_verify(body['token'])
    assert header['alg'] == 'ES256' and len(header['x5c']) == 1
    assert claims['iss'] == 'selfhosted-registry-token' and claims['aud'] == 'registry.example.test'
    assert claims['sub'] == 'ci' and claims['exp'] - claims['iat'] == 300
    assert claims['access'] == access == [{'type': 'repository', 'name': 'team/app', 'actions': ['pull']}]


def test_key_and_certificate_that_do_not_match_are_refused(config, tmp_path):
    other = str(tmp_path / 'other.pem')
    subprocess.run(['openssl', 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', other], check=True)
    config['signing_key'] = other
    with pytest.raises(token_server.ConfigError, match='is not the certificate of'):
        token_server.TokenService(config)


# --- HTTP over the Unix socket ------------------------------------------------


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__('localhost', timeout=10)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def serve(config):
    """The token service on config's socket, in a thread, until the test ends: its socket path."""
    httpd = token_server.UnixHTTPServer(token_server.listener_socket(config['socket']), token_server.TokenService(config))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield config['socket']
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def server(config):
    yield from serve(config)


def request(path, method='GET', user=None, password=None, body=None, address='203.0.113.5'):
    connection = UnixConnection(path)
    headers = {'X-Real-IP': address}
    if user is not None:
        headers['Authorization'] = 'Basic ' + base64.b64encode(('%s:%s' % (user, password)).encode()).decode()
    if body is not None:
        headers['Content-Type'] = 'application/x-www-form-urlencoded'
    connection.request(method, '/auth/token?' + ('' if body else 'service=registry.example.test&scope=repository:team/app:pull,push'),
                       body=body, headers=headers)
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), json.loads(response.read())


def test_http_basic_login_gets_a_token_for_the_allowed_scope(server):
    status, headers, body = request(server, user='ci', password=CI)
    assert status == 200 and headers['Cache-Control'] == 'no-store'
    assert decode_and_verify(body['token'])[1]['access'] == [{'type': 'repository', 'name': 'team/app', 'actions': ['pull']}]


def test_http_wrong_password_then_too_many(server):
    for _guess in range(3):
        status, headers, body = request(server, user='alice', password='guess')
        assert status == 401 and headers['WWW-Authenticate'] == 'Basic realm="registry.example.test"'
        assert body['errors'][0]['code'] == 'UNAUTHORIZED'
    status, headers, _body = request(server, user='alice', password=ALICE)
    assert status == 429 and int(headers['Retry-After']) >= 1


def test_http_anonymous_is_refused_without_anonymous_rules(server):
    status, _headers, _body = request(server)
    assert status == 401


@pytest.fixture()
def server_with_anonymous_rule(config):
    config['rules'].append({'anonymous': True, 'repositories': ['public/*'], 'actions': ['pull']})
    yield from serve(config)


def anonymous_request(path, query):
    connection = UnixConnection(path)
    connection.request('GET', '/auth/token?service=registry.example.test' + query)
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), json.loads(response.read())


def test_http_anonymous_gets_what_the_rules_make_public_and_a_challenge_for_the_rest(server_with_anonymous_rule):
    # Part of the scope anonymous: a token for that part.
    status, _headers, body = anonymous_request(server_with_anonymous_rule, '&scope=repository:public/app:pull,push')
    assert status == 200
    assert decode_and_verify(body['token'])[1]['access'] == [{'type': 'repository', 'name': 'public/app', 'actions': ['pull']}]
    # No scope (the /v2/ check): a token without access, as before.
    assert anonymous_request(server_with_anonymous_rule, '')[0] == 200
    # Nothing anonymous (a private repository, the catalog the web UI asks for): log in.
    for scope in ('repository:team/app:pull', 'registry:catalog:*'):
        status, headers, body = anonymous_request(server_with_anonymous_rule, '&scope=' + scope)
        assert status == 401 and headers['WWW-Authenticate'] == 'Basic realm="registry.example.test"', scope
        assert body['errors'][0]['code'] == 'UNAUTHORIZED'


def test_http_oauth2_password_grant(server):
    form = 'grant_type=password&username=alice&password=%s&service=registry.example.test&scope=registry:catalog:*&client_id=t' % ALICE
    status, _headers, body = request(server, method='POST', body=form)
    assert status == 200
    assert decode_and_verify(body['access_token'])[1]['access'] == [{'type': 'registry', 'name': 'catalog', 'actions': ['*']}]
    status, _headers, body = request(server, method='POST', body='grant_type=refresh_token&refresh_token=x')
    assert status == 400 and body == {'error': 'unsupported_grant_type'}


def test_http_other_service_is_refused(server):
    connection = UnixConnection(server)
    connection.request('GET', '/auth/token?service=other.example.test', headers={
        'Authorization': 'Basic ' + base64.b64encode(('alice:%s' % ALICE).encode()).decode()})
    assert connection.getresponse().status == 400
