# Copyright: selfhosted.registry contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Token service for the registry's token authentication (Docker token spec).

Clients ask ``/auth/token`` (through nginx, over a Unix socket) for a token
with the scopes they need; the service checks the password once against the
htpasswd file, cuts the scopes down to what the access rules allow, and
signs a short-lived JWT (ES256, ``x5c`` header) that the registry verifies
against the certificate bundle it trusts. Passwords are checked with bcrypt
once, then found in a memory cache keyed by a per-process HMAC, so a strong
cost slows down guessing, not pulls. Failed checks are counted per client
address and per user: beyond the limit the service answers 429 without
checking the password.

Needs only the standard library and Debian's python3-cryptography and
python3-bcrypt. Runs as ``python3 token_server.py CONFIG``; under systemd,
with the listening socket passed by socket activation (LISTEN_FDS), so that
clients wait, not fail, while the service restarts.
"""

from __future__ import annotations

import base64
import collections
import datetime
import functools
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# Installed beside this file (the script's directory is on sys.path).
from repository_patterns import pattern_regex

ACTIONS = ('pull', 'push', 'delete')
# Largest request body read (OAuth2 form posts are a few hundred bytes).
MAX_BODY = 8192
# Verified credentials kept in memory (each a digest, never a password).
CACHE_SIZE = 10000
SYSTEMD_FIRST_FD = 3


class ConfigError(Exception):
    """The configuration file is unusable: the service does not start."""


# --- access rules -------------------------------------------------------------


class Rules:
    """Who may do what: the union of the rules that name the user; nothing else."""

    def __init__(self, rules, catalog_users):
        self._rules = []
        for number, rule in enumerate(rules):
            actions = set(rule.get('actions', ()))
            unknown = actions - set(ACTIONS)
            if unknown:
                raise ConfigError('rule %d: unknown actions %s' % (number, sorted(unknown)))
            self._rules.append((
                set(rule.get('users', ())),
                bool(rule.get('anonymous', False)),
                [pattern_regex(pattern) for pattern in rule.get('repositories', ())],
                actions,
            ))
        self._catalog_users = set(catalog_users)

    @property
    def anonymous_allowed(self):
        return any(anonymous for _users, anonymous, _patterns, _actions in self._rules)

    def repository_actions(self, user, repository):
        """Actions `user` (None: anonymous) may take on `repository`."""
        allowed = set()
        for users, anonymous, patterns, actions in self._rules:
            applies = anonymous if user is None else (user in users or '*' in users)
            if applies and any(regex.match(repository) for regex in patterns):
                allowed |= actions
        return allowed

    def catalog_allowed(self, user):
        return user is not None and (user in self._catalog_users or '*' in self._catalog_users)

    def grant(self, user, scopes):
        """The token's `access` claim: each requested scope cut down to what the rules allow."""
        access = []
        for kind, name, requested in scopes:
            if kind == 'repository':
                allowed = self.repository_actions(user, name)
                if '*' in requested:
                    requested = set(ACTIONS)
                granted = sorted(requested & allowed)
            elif kind == 'registry' and name == 'catalog':
                granted = ['*'] if self.catalog_allowed(user) and '*' in requested else []
            else:
                granted = []
            if granted:
                access.append({'type': kind, 'name': name, 'actions': granted})
        return access


# Repository names as the distribution spec allows them (path components of
# lowercase alphanumerics and separators).
_REPOSITORY_NAME = re.compile(r'\A[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\Z')


def parse_scopes(values):
    """`repository:team/app:pull,push` and `registry:catalog:*` into (type, name, actions); others dropped."""
    scopes = []
    for value in values:
        for scope in value.split(' '):
            kind, _sep, rest = scope.partition(':')
            name, _sep, actions = rest.rpartition(':')
            kind = kind.split('(')[0]  # "repository(plugin)": a resource class
            if kind == 'repository' and not _REPOSITORY_NAME.match(name):
                continue
            if kind in ('repository', 'registry') and name:
                scopes.append((kind, name, set(action for action in actions.split(',') if action)))
    return scopes


# --- users --------------------------------------------------------------------


class Users:
    """The htpasswd file's bcrypt entries, read again when the file changes."""

    def __init__(self, path):
        self._path = path
        self._stamp = None
        self._hashes = {}
        self._lock = threading.Lock()
        self.cost = 12

    def hash_of(self, user):
        with self._lock:
            try:
                status = os.stat(self._path)
            except FileNotFoundError:
                self._stamp, self._hashes = None, {}
                return None
            stamp = (status.st_ino, status.st_size, status.st_mtime_ns)
            if stamp != self._stamp:
                hashes_by_user = {}
                with open(self._path, 'rb') as handle:
                    for line in handle.read().splitlines():
                        name, sep, stored = line.partition(b':')
                        if sep and stored.startswith((b'$2a$', b'$2b$', b'$2y$')):
                            hashes_by_user[name.decode('utf-8', 'replace')] = stored
                self._stamp, self._hashes = stamp, hashes_by_user
                costs = [int(stored[4:6]) for stored in hashes_by_user.values() if stored[4:6].isdigit()]
                self.cost = max(costs) if costs else 12
            return self._hashes.get(user)


class VerifiedCache:
    """Credentials bcrypt has accepted, by a keyed digest, until the stored hash changes."""

    def __init__(self, lifetime, size=CACHE_SIZE):
        self._key = secrets.token_bytes(32)
        self._lifetime = lifetime
        self._size = size
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, user, password):
        return hmac.new(self._key, b'%s\0%s' % (user.encode(), password.encode()), hashlib.sha256).digest()

    def holds(self, user, password, stored):
        digest = self._digest(user, password)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return False
            verified_against, since = entry
            if verified_against != stored or time.monotonic() - since > self._lifetime:
                del self._entries[digest]
                return False
            return True

    def add(self, user, password, stored):
        with self._lock:
            self._entries[self._digest(user, password)] = (stored, time.monotonic())
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class FailureLimiter:
    """Failed password checks per key (an address, a user) within a sliding window."""

    def __init__(self, limit, window, size=CACHE_SIZE):
        self._limit = limit
        self._window = window
        self._size = size
        self._failures = collections.OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key, now):
        times = self._failures.get(key)
        while times and now - times[0] > self._window:
            times.popleft()
        if times is not None and not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, keys):
        """Seconds until a check may be tried again for any of `keys`; 0 when it may now."""
        if self._limit <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            waits = [self._window - (now - times[0]) for times in (self._recent(key, now) for key in keys)
                     if times is not None and len(times) >= self._limit]
        return int(max(waits)) + 1 if waits else 0

    def fail(self, keys):
        now = time.monotonic()
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is None:
                    times = self._failures[key] = collections.deque(maxlen=max(self._limit, 1))
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self._size:
                self._failures.popitem(last=False)


# --- tokens -------------------------------------------------------------------


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


class Signer:
    """ES256 JWTs with the certificate in `x5c`, which both registry 2.8 and 3.x verify."""

    def __init__(self, key_path, certificate_path):
        with open(key_path, 'rb') as handle:
            self._key = serialization.load_pem_private_key(handle.read(), password=None)
        if not isinstance(self._key, ec.EllipticCurvePrivateKey) or self._key.curve.name != 'secp256r1':
            raise ConfigError('%s: the signing key must be an EC P-256 key' % key_path)
        with open(certificate_path, 'rb') as handle:
            certificate = x509.load_pem_x509_certificate(handle.read())
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        if certificate.public_key().public_bytes(serialization.Encoding.DER, public) != \
                self._key.public_key().public_bytes(serialization.Encoding.DER, public):
            raise ConfigError('%s is not the certificate of %s' % (certificate_path, key_path))
        self._x5c = [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode('ascii')]

    def sign(self, claims):
        header = {'typ': 'JWT', 'alg': 'ES256', 'x5c': self._x5c}
        signing_input = '%s.%s' % (b64url(json.dumps(header, separators=(',', ':')).encode()),
                                   b64url(json.dumps(claims, separators=(',', ':')).encode()))
        r, s = decode_dss_signature(self._key.sign(signing_input.encode('ascii'), ec.ECDSA(hashes.SHA256())))
        return '%s.%s' % (signing_input, b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big')))


# --- the service --------------------------------------------------------------


class TokenService:
    """Decides each token request; no HTTP in here (see Handler)."""

    def __init__(self, config):
        try:
            self.issuer = config['issuer']
            self.service = config['service']
            self.token_lifetime = int(config.get('token_lifetime', 300))
            self.users = Users(config['htpasswd'])
            self.rules = Rules(config.get('rules', []), config.get('catalog_users', []))
            self.signer = Signer(config['signing_key'], config['signing_certificate'])
            limits = config.get('failures', {})
            window = int(limits.get('window', 60))
            self.by_address = FailureLimiter(int(limits.get('per_address', 10)), window)
            self.by_user = FailureLimiter(int(limits.get('per_user', 10)), window)
            self.cache = VerifiedCache(int(config.get('cache_lifetime', 3600)))
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError('configuration: %s' % error) from error

    def authenticate(self, user, password, address):
        """('ok'|'denied'|'limited', seconds to wait when limited)."""
        stored = self.users.hash_of(user)
        if stored is not None and self.cache.holds(user, password, stored):
            return 'ok', 0
        keys = ['address:' + address, 'user:' + user]
        wait = self.by_address.retry_after(keys[:1]) or self.by_user.retry_after(keys[1:])
        if wait:
            return 'limited', wait
        # An unknown user costs a bcrypt check at the users' cost as well: the
        # time taken does not tell which users exist.
        if checks_out(password, stored or decoy_hash(self.users.cost)) and stored is not None:
            self.cache.add(user, password, stored)
            return 'ok', 0
        self.by_address.fail(keys[:1])
        self.by_user.fail(keys[1:])
        return 'denied', 0

    def token(self, user, scopes, now=None):
        now = int(time.time() if now is None else now)
        access = self.rules.grant(user, scopes)
        claims = {
            'iss': self.issuer,
            'sub': user or '',
            'aud': self.service,
            'exp': now + self.token_lifetime,
            'nbf': now - 1,
            'iat': now,
            'jti': secrets.token_urlsafe(16),
            'access': access,
        }
        token = self.signer.sign(claims)
        issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        return {'token': token, 'access_token': token, 'expires_in': self.token_lifetime, 'issued_at': issued}, access


def checks_out(password, stored):
    """Whether bcrypt accepts `password` for `stored`; a malformed hash (edited by hand) accepts nothing."""
    try:
        return bcrypt.checkpw(password.encode(), stored)
    except ValueError:
        return False


@functools.lru_cache(maxsize=4)
def decoy_hash(cost):
    return bcrypt.hashpw(b'decoy', bcrypt.gensalt(min(max(cost, 4), 31)))


class Handler(http.server.BaseHTTPRequestHandler):
    """GET with basic auth (docker, skopeo, crane) and POST with an OAuth2 password grant (containerd)."""

    server_version = 'selfhosted-registry-token'
    sys_version = ''
    protocol_version = 'HTTP/1.1'
    # Seconds a connection may stay silent (nginx keeps idle ones open).
    timeout = 60

    def address_string(self):
        # nginx passes the client's address; the socket has no peer address.
        return self.headers.get('X-Real-IP', '-') if hasattr(self, 'headers') else '-'

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        sys.stderr.write('%s %s\n' % (self.address_string(), format % args))

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        credentials = self._basic_credentials()
        self._answer(credentials, query.get('service', [''])[0], query.get('scope', []))

    def do_POST(self):
        length = int(self.headers.get('Content-Length') or 0)
        if length > MAX_BODY:
            self._send(413, {'error': 'invalid_request'})
            return
        form = urllib.parse.parse_qs(self.rfile.read(length).decode('utf-8', 'replace'))
        if form.get('grant_type', [''])[0] != 'password':
            self._send(400, {'error': 'unsupported_grant_type'})
            return
        credentials = (form.get('username', [''])[0], form.get('password', [''])[0])
        self._answer(credentials, form.get('service', [''])[0], form.get('scope', []))

    def _basic_credentials(self):
        header = self.headers.get('Authorization', '')
        scheme, _sep, value = header.partition(' ')
        if scheme.lower() != 'basic':
            return None
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode('utf-8').partition(':')
        except (ValueError, UnicodeDecodeError):
            return ('', '')
        return (user, password) if sep else ('', '')

    def _answer(self, credentials, service, scope_values):
        service_config = self.server.service
        if service and service != service_config.service:
            self._send(400, {'errors': [{'code': 'DENIED', 'message': 'unknown service'}]})
            return
        address = self.address_string()
        user = None
        if credentials is not None:
            user, password = credentials
            outcome, wait = service_config.authenticate(user, password, address) if user else ('denied', 0)
            if outcome == 'limited':
                self.log_message('too many failed logins for %s, refused for %d s', user, wait)
                self._send(429, {'errors': [{'code': 'TOOMANYREQUESTS', 'message': 'too many failed logins, retry later'}]},
                           {'Retry-After': str(wait)})
                return
            if outcome == 'denied':
                self.log_message('failed login for %s', user)
                self._unauthorized('wrong user name or password')
                return
        elif not service_config.rules.anonymous_allowed:
            self._unauthorized('authentication required')
            return
        scopes = parse_scopes(scope_values)
        # Anonymous, and nothing of what was asked is anonymous: a login may
        # get it. The challenge makes a browser ask its user (the web UI's
        # token request), and clients report "authentication required".
        if user is None and scopes and not service_config.rules.grant(None, scopes):
            self._unauthorized('authentication required')
            return
        body, access = service_config.token(user, scopes)
        self.log_message('token for %s: %s', user or '(anonymous)',
                         ' '.join('%s:%s:%s' % (item['type'], item['name'], ','.join(item['actions'])) for item in access) or '(no access)')
        self._send(200, body)

    def _unauthorized(self, message):
        self._send(401, {'errors': [{'code': 'UNAUTHORIZED', 'message': message}]},
                   {'WWW-Authenticate': 'Basic realm="%s"' % self.server.service.service})

    def _send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Cache-Control', 'no-store')
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, listener, service):
        super().__init__(None, Handler, bind_and_activate=False)
        self.socket = listener
        self.service = service

    def get_request(self):
        request, _address = self.socket.accept()
        return request, ('', 0)

    def handle_error(self, request, client_address):
        # A client that went away is no error of the service's.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def listener_socket(path):
    """The socket systemd passes (LISTEN_FDS), else a new one at `path`."""
    if os.environ.get('LISTEN_PID') == str(os.getpid()) and os.environ.get('LISTEN_FDS') == '1':
        return socket.socket(fileno=SYSTEMD_FIRST_FD)
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o666)
    listener.listen(128)
    return listener


def load_config(path):
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write('usage: token_server.py CONFIG\n')
        return 2
    try:
        config = load_config(argv[0])
        service = TokenService(config)
        server = UnixHTTPServer(listener_socket(config.get('socket', '/run/selfhosted-registry-auth/token.sock')), service)
    except (OSError, ValueError, ConfigError) as error:
        sys.stderr.write('token_server: %s\n' % error)
        return 1
    sys.stderr.write('token_server: serving tokens for %s\n' % service.service)
    server.serve_forever()
    return 0


if __name__ == '__main__':
    sys.exit(main())
