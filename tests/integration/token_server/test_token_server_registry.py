# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The token service (roles/registry/files/token_server.py) against the real registry, 2.8.3 and 3.1.1.

The service runs with each Debian target's Python, bcrypt and cryptography
(../targets.py) on a Unix socket, as under systemd; a registry container of
the platform's fixture images trusts its certificates (auth.token). The
tests ask the service for tokens as a client would after the registry's
Bearer challenge, and show that the registry lets each token do exactly
what the rules allow, and that a key outside the trusted bundle opens
nothing.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import importlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse

import pytest

from registry_container import Registry, registry_config, registry_image  # pylint: disable=import-error
from targets import REPO, run  # pylint: disable=import-error

SERVER_FILE = os.path.join(REPO, 'roles', 'registry', 'files', 'token_server.py')
SERVICE = 'registry.example.test'
ISSUER = 'selfhosted-registry-token'
REALM = 'https://%s/auth/token' % SERVICE
ALICE, CI = 'alice-Pa55word-1', 'ci-Pa55word-2'

REGISTRY_CONFIG = registry_config(
    '  token:\n'
    '    realm: %s\n'
    '    service: %s\n'
    '    issuer: %s\n'
    '    rootcertbundle: /auth/token-bundle.pem\n' % (REALM, SERVICE, ISSUER),
    delete=True,
)

RULES = [
    {'users': ['alice'], 'repositories': ['**'], 'actions': ['pull', 'push', 'delete']},
    {'users': ['ci'], 'repositories': ['team/*'], 'actions': ['pull']},
]


def make_signer(directory, name):
    key, certificate = os.path.join(directory, name + '.key'), os.path.join(directory, name + '.crt')
    run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
         '-keyout', key, '-out', certificate, '-days', '2', '-subj', '/CN=%s' % name])
    return key, certificate


class TokenServer:
    """token_server.py with a target's interpreter, on a Unix socket."""

    def __init__(self, directory, python, htpasswd, signer):
        self.socket = os.path.join(directory, 'token-%s.sock' % os.path.basename(signer[0]).split('.')[0])
        config = os.path.join(directory, 'token-%s.json' % os.path.basename(signer[0]).split('.')[0])
        with open(config, 'w') as handle:
            json.dump({'issuer': ISSUER, 'service': SERVICE, 'htpasswd': htpasswd, 'socket': self.socket,
                       'signing_key': signer[0], 'signing_certificate': signer[1], 'rules': RULES,
                       'catalog_users': ['alice']}, handle)
        self.process = subprocess.Popen([python, SERVER_FILE, config], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail('token_server.py did not start: %s' % self.process.communicate()[1])
            time.sleep(0.1)

    def token(self, user, password, scopes=()):
        """The token for `scopes`, asked as a client does: GET with basic auth."""
        connection = http.client.HTTPConnection('localhost', timeout=10)
        connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.sock.connect(self.socket)
        query = urllib.parse.urlencode([('service', SERVICE)] + [('scope', scope) for scope in scopes])
        credentials = base64.b64encode(('%s:%s' % (user, password)).encode()).decode()
        connection.request('GET', '/auth/token?' + query, headers={'Authorization': 'Basic ' + credentials, 'X-Real-IP': '192.0.2.1'})
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
        assert response.status == 200, body
        return body['token']

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(params=['2.8.3', '3.1.1'])
def setup(request, tmp_path, target_python):
    """A registry trusting signers `old` and `new` (a key rotation's overlap), and a token server for each and for `foreign`."""
    directory = str(tmp_path)
    htpasswd = os.path.join(directory, 'htpasswd')
    bcrypt_hash = run([target_python, '-c', 'import bcrypt, sys; [print(bcrypt.hashpw(p.encode(), bcrypt.gensalt(5)).decode()) for p in sys.argv[1:]]',
                       ALICE, CI]).stdout.split()
    with open(htpasswd, 'w') as handle:
        handle.write('alice:%s\nci:%s\n' % tuple(bcrypt_hash))
    signers = {name: make_signer(directory, name) for name in ('old', 'new', 'foreign')}
    auth_dir = os.path.join(directory, 'auth')
    os.makedirs(auth_dir)
    with open(os.path.join(auth_dir, 'token-bundle.pem'), 'w') as bundle:
        for name in ('old', 'new'):
            with open(signers[name][1]) as handle:
                bundle.write(handle.read())
    registry = Registry(directory, registry_image(request.param), REGISTRY_CONFIG, {auth_dir: '/auth'})
    servers = {}
    try:
        registry.start()
        servers = {name: TokenServer(directory, target_python, htpasswd, signer) for name, signer in signers.items()}
        yield registry, servers
    finally:
        for server in servers.values():
            server.stop()
        registry.remove()


def bearer(token):
    return {'Authorization': 'Bearer ' + token}


def test_tokens_open_what_the_rules_allow(setup):
    registry, servers = setup
    tokens = servers['new']

    status, headers, _body = registry.request('GET', '/v2/')
    assert status == 401
    assert headers['www-authenticate'] == 'Bearer realm="%s",service="%s"' % (REALM, SERVICE)
    # docker login: a token without scopes
    assert registry.request('GET', '/v2/', bearer(tokens.token('alice', ALICE)))[0] == 200

    blob = os.urandom(1024)
    digest = 'sha256:' + hashlib.sha256(blob).hexdigest()
    # ci may pull team/*, not push: its token holds pull only, the registry refuses the upload
    ci_token = tokens.token('ci', CI, ['repository:team/app:pull,push'])
    status, headers, _body = registry.request('POST', '/v2/team/app/blobs/uploads/', bearer(ci_token))
    assert status == 401 and 'insufficient_scope' in headers['www-authenticate']
    alice_token = tokens.token('alice', ALICE, ['repository:team/app:pull,push'])
    status, headers, _body = registry.request('POST', '/v2/team/app/blobs/uploads/', bearer(alice_token))
    assert status == 202
    location = headers['location'] + ('&' if '?' in headers['location'] else '?') + 'digest=' + digest
    push_headers = {'Content-Type': 'application/octet-stream', 'Content-Length': str(len(blob))}
    assert registry.request('PUT', location, dict(push_headers, **bearer(alice_token)), blob)[0] == 201
    manifest = json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'layers': [],
                           'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': digest, 'size': len(blob)}})
    manifest_headers = {'Content-Type': 'application/vnd.oci.image.manifest.v1+json'}
    assert registry.request('PUT', '/v2/team/app/manifests/v1', dict(manifest_headers, **bearer(ci_token)), manifest)[0] == 401
    assert registry.request('PUT', '/v2/team/app/manifests/v1', dict(manifest_headers, **bearer(alice_token)), manifest)[0] == 201

    assert registry.request('GET', '/v2/team/app/manifests/v1', dict(Accept=manifest_headers['Content-Type'], **bearer(ci_token)))[0] == 200
    assert registry.request('HEAD', '/v2/team/app/blobs/' + digest, bearer(ci_token))[0] == 200
    other = tokens.token('ci', CI, ['repository:other/app:pull'])
    assert registry.request('HEAD', '/v2/other/app/blobs/' + digest, bearer(other))[0] == 401

    status, _headers, body = registry.request('GET', '/v2/_catalog', bearer(tokens.token('alice', ALICE, ['registry:catalog:*'])))
    assert status == 200 and json.loads(body)['repositories'] == ['team/app']
    assert registry.request('GET', '/v2/_catalog', bearer(tokens.token('ci', CI, ['registry:catalog:*'])))[0] == 401

    # Deletes (on in this registry): ci's token holds no delete, alice's does.
    manifest_path = '/v2/team/app/manifests/sha256:' + hashlib.sha256(manifest.encode()).hexdigest()
    ci_delete = tokens.token('ci', CI, ['repository:team/app:delete'])
    assert registry.request('DELETE', manifest_path, bearer(ci_delete))[0] == 401
    assert registry.request('DELETE', manifest_path, bearer(tokens.token('alice', ALICE, ['repository:team/app:delete'])))[0] == 202
    assert registry.request('GET', manifest_path, bearer(ci_token))[0] == 404


def test_tampered_and_expired_tokens_are_refused(setup, tmp_path):
    """A token whose claims were changed after signing, or whose time is over (beyond the registry's 60 s leeway): 401."""
    registry, servers = setup
    good = servers['new'].token('ci', CI, ['repository:team/app:pull'])
    assert registry.request('GET', '/v2/team/app/tags/list', bearer(good))[0] in (200, 404)
    header, claims, signature = good.split('.')
    widened = json.loads(base64.urlsafe_b64decode(claims + '=' * (-len(claims) % 4)))
    widened['access'][0]['actions'] = ['pull', 'push']
    forged = '.'.join([header, base64.urlsafe_b64encode(json.dumps(widened).encode()).rstrip(b'=').decode(), signature])
    assert registry.request('POST', '/v2/team/app/blobs/uploads/', bearer(forged))[0] == 401

    # Signed with the trusted key, but two minutes past its end.
    signer = token_server_module().Signer(*[str(tmp_path / ('new.' + suffix)) for suffix in ('key', 'crt')])
    now = int(time.time())
    expired = signer.sign({'iss': ISSUER, 'sub': 'ci', 'aud': SERVICE, 'iat': now - 600, 'nbf': now - 600, 'exp': now - 120,
                           'jti': 'expired', 'access': [{'type': 'repository', 'name': 'team/app', 'actions': ['pull']}]})
    assert registry.request('GET', '/v2/team/app/tags/list', bearer(expired))[0] == 401


def token_server_module():
    """token_server.py imported here (with what it imports beside it), for signing tokens the service would never make."""
    sys.path.insert(0, os.path.dirname(SERVER_FILE))
    return importlib.import_module('token_server')


def test_every_trusted_key_works_during_a_rotation_and_no_other(setup):
    registry, servers = setup
    for name, expected in (('old', 200), ('new', 200), ('foreign', 401)):
        assert registry.request('GET', '/v2/', bearer(servers[name].token('alice', ALICE)))[0] == expected, name


def test_oci_push_and_pull_flows_work_through_tokens(setup):
    """The distribution spec's upload and read flows, each with the token a client gets for it.

    Uploads monolithic (POST, PUT) and chunked (POST, PATCH, PATCH, PUT),
    a manifest by tag, read by tag and by digest, HEAD, the tags list page by
    page, and a blob mounted from another repository: with pull on the source
    in the token, refused without.
    """
    registry, servers = setup
    tokens = servers['new']
    push = bearer(tokens.token('alice', ALICE, ['repository:flows/app:pull,push']))
    octets = {'Content-Type': 'application/octet-stream'}

    def upload_location(repository, authorization):
        status, headers, _body = registry.request('POST', '/v2/%s/blobs/uploads/' % repository, authorization)
        assert status == 202, status
        return headers['location']

    def with_digest(location, digest):
        return location + ('&' if '?' in location else '?') + 'digest=' + digest

    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = os.urandom(3 * 65536 + 123)
    config_digest, layer_digest = ('sha256:' + hashlib.sha256(data).hexdigest() for data in (config, layer))
    # Monolithic: the whole blob in the PUT that closes the upload.
    location = upload_location('flows/app', push)
    assert registry.request('PUT', with_digest(location, config_digest), dict(octets, **push), config)[0] == 201
    # Chunked: two PATCHes in order, then a PUT without a body.
    location = upload_location('flows/app', push)
    middle = 2 * 65536
    for start, end in ((0, middle), (middle, len(layer))):
        headers = dict(octets, **push)
        headers['Content-Range'] = '%d-%d' % (start, end - 1)
        status, answer, _body = registry.request('PATCH', location, headers, layer[start:end])
        assert status == 202 and answer['range'] == '0-%d' % (end - 1), (status, answer)
        location = answer['location']
    assert registry.request('PUT', with_digest(location, layer_digest), push)[0] == 201
    status, headers, body = registry.request('GET', '/v2/flows/app/blobs/' + layer_digest, push)
    assert status == 200 and body == layer and headers['docker-content-digest'] == layer_digest

    manifest = json.dumps({
        'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
        'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': config_digest, 'size': len(config)},
        'layers': [{'mediaType': 'application/vnd.oci.image.layer.v1.tar', 'digest': layer_digest, 'size': len(layer)}]})
    manifest_digest = 'sha256:' + hashlib.sha256(manifest.encode()).hexdigest()
    manifest_type = {'Content-Type': 'application/vnd.oci.image.manifest.v1+json'}
    for tag in ('v1', 'v2', 'v3'):
        status, headers, _body = registry.request('PUT', '/v2/flows/app/manifests/' + tag, dict(manifest_type, **push), manifest)
        assert status == 201 and headers['docker-content-digest'] == manifest_digest
    accept = dict(push, Accept=manifest_type['Content-Type'])
    for reference in ('v2', manifest_digest):
        status, headers, body = registry.request('GET', '/v2/flows/app/manifests/' + reference, accept)
        assert status == 200 and body.decode() == manifest and headers['docker-content-digest'] == manifest_digest
    assert registry.request('HEAD', '/v2/flows/app/manifests/v3', accept)[0] == 200
    assert registry.request('HEAD', '/v2/flows/app/manifests/v4', accept)[0] == 404
    # The tags list, one page at a time (the Link header names the next);
    # registry 2.8 pages only the catalog, and answers with every tag.
    pages, path = [], '/v2/flows/app/tags/list?n=2'
    while path:
        status, headers, body = registry.request('GET', path, push)
        assert status == 200
        pages.append(json.loads(body)['tags'])
        path = headers.get('link', '').split(';')[0].strip('<>')
    assert pages == ([['v1', 'v2', 'v3']] if registry.image.endswith(':2.8.3') else [['v1', 'v2'], ['v3']])

    # A mount: the blob appears in another repository without an upload.
    both = bearer(tokens.token('alice', ALICE, ['repository:flows/app:pull', 'repository:flows/copy:pull,push']))
    status, headers, _body = registry.request('POST', '/v2/flows/copy/blobs/uploads/?mount=%s&from=flows/app' % layer_digest, both)
    assert status == 201 and headers['location'].endswith('/v2/flows/copy/blobs/' + layer_digest), (status, headers)
    # Without pull on the source the mount is refused: no way to a blob of a repository the token may not read.
    only_target = bearer(tokens.token('alice', ALICE, ['repository:flows/other:pull,push']))
    status, headers, _body = registry.request('POST', '/v2/flows/other/blobs/uploads/?mount=%s&from=flows/app' % layer_digest, only_target)
    assert status == 401 and 'insufficient_scope' in headers['www-authenticate'], status
