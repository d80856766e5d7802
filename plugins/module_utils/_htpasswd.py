# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic behind selfhosted.registry.htpasswd_user.

Private to this collection: parse an htpasswd file the way the CNCF registry
reads it, validate requested users, plan the difference (verifying passwords
against stored bcrypt hashes on all cores), render the new file and describe
the change without ever exposing a password or a hash.
"""

from __future__ import annotations

import os
import re
import traceback
from concurrent.futures import ThreadPoolExecutor

try:
    import bcrypt
except ImportError:
    bcrypt = None
    BCRYPT_IMPORT_ERROR = traceback.format_exc()
else:
    BCRYPT_IMPORT_ERROR = None

# The registry verifies the bcrypt hash of the presented password on every
# HTTP request (no cache), so the cost is paid by every pull and push; see the
# module documentation and docs/performance.md for the measurements.
DEFAULT_COST = 5
MIN_COST = 4
MAX_COST = 31
# bcrypt reads at most 72 bytes of a password: older releases silently ignore
# the rest, bcrypt >= 5 refuses longer passwords.
MAX_PASSWORD_BYTES = 72
# Apache's htpasswd refuses longer names; a name is sent on every request.
MAX_NAME_LENGTH = 255
# Passwords anyone can read in this collection: the example inventory's
# placeholder and the passwords its earlier releases shipped with a public
# vault password. A registry deployed with one of them takes pushes from anyone.
PUBLIC_PASSWORDS = frozenset((
    'CHANGE-ME',
    'ci-example-password-change-me-0123456789',
    'alice-example-password-change-me',
))

# Costs 04 to 31 only: bcrypt refuses others.
BCRYPT_RE = re.compile(r'^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$')
DES_CRYPT_RE = re.compile(r'^[./0-9A-Za-z]{13}$')
# Schemes by prefix, for warnings only: the registry verifies bcrypt alone.
_SCHEME_PREFIXES = (
    ('$apr1$', 'MD5 (apr1)'),
    ('{SHA}', 'SHA-1'),
    ('$1$', 'MD5-crypt'),
    ('$5$', 'SHA-256-crypt'),
    ('$6$', 'SHA-512-crypt'),
    ('$2x$', 'bcrypt $2x$ (unsupported variant)'),
)

STATES = ('present', 'absent')
UPDATE_PASSWORD = ('always', 'on_create')


class HtpasswdError(Exception):
    """Bad input or an existing file the module refuses to rewrite.

    The message names the user or line concerned and says what to change; it
    never contains a password or a hash.
    """


class Line:
    """One line of an existing htpasswd file.

    ``name`` is None for blank lines and comments, which are kept verbatim.
    ``text`` is the line as read (without its newline).
    """

    __slots__ = ('number', 'text', 'name', 'hash')

    def __init__(self, number, text, name=None, hash_=None):
        self.number = number
        self.text = text
        self.name = name
        self.hash = hash_

    def __repr__(self):
        # Never show the hash.
        return 'Line(%d, name=%r)' % (self.number, self.name)


class User:
    """One requested user: ``where`` says where it came from, for messages."""

    __slots__ = ('name', 'password', 'state', 'where')

    def __init__(self, name, password=None, state='present', where='name'):
        self.name = name
        self.password = password
        self.state = state
        self.where = where

    def __repr__(self):
        return 'User(%r, state=%r)' % (self.name, self.state)


class Plan:
    """What a run changes. Lists hold user names only."""

    def __init__(self):
        self.added = []
        self.removed = []
        self.updated = []
        # name -> 'password' | 'cost' | 'scheme': why an existing user is rehashed
        self.reasons = {}
        # name -> password to hash (added and updated users)
        self.to_hash = {}
        # [(name, scheme)] existing entries the registry cannot verify
        self.unusable = []
        # True when the file is missing and must be created although no user
        # changes (exclusive with an empty list of present users)
        self.create_empty = False

    @property
    def changed(self):
        return bool(self.added or self.removed or self.updated or self.create_empty)

    def result(self):
        return {'added': list(self.added), 'removed': list(self.removed), 'updated': list(self.updated)}


# --------------------------------------------------------------------------
# Hash schemes and bcrypt

def hash_scheme(hashed):
    """Name the scheme of a stored hash: 'bcrypt' or a description for warnings."""
    if BCRYPT_RE.match(hashed):
        return 'bcrypt'
    for prefix, scheme in _SCHEME_PREFIXES:
        if hashed.startswith(prefix):
            return scheme
    if hashed == '':
        return 'empty hash'
    if DES_CRYPT_RE.match(hashed):
        return 'DES-crypt'
    return 'unknown scheme or plain text'


def bcrypt_cost(hashed):
    """Cost factor of a bcrypt hash, or None for anything else."""
    match = BCRYPT_RE.match(hashed)
    return int(match.group(1)) if match else None


def _to_bytes(text):
    return text.encode('utf-8', 'surrogateescape')


def check_password(password, hashed):
    """True when ``password`` matches the bcrypt hash ``hashed``.

    ``$2y$`` (what Apache's htpasswd and this module write) and ``$2b$`` are
    the same algorithm; the hash is handed to bcrypt as ``$2b$`` because not
    every python bcrypt release accepts ``$2y$``. A hash bcrypt cannot parse
    counts as a mismatch, so the user gets rehashed.
    """
    if not BCRYPT_RE.match(hashed):
        # Checked first: some bcrypt releases (4.x) panic instead of raising
        # ValueError on truncated hashes.
        return False
    if hashed.startswith('$2y$'):
        hashed = '$2b$' + hashed[4:]
    try:
        return bcrypt.checkpw(_to_bytes(password), hashed.encode('ascii'))
    except (ValueError, UnicodeEncodeError):
        return False


def hash_password(password, cost):
    """A new ``$2y$`` bcrypt hash of ``password`` with a fresh salt."""
    hashed = bcrypt.hashpw(_to_bytes(password), bcrypt.gensalt(rounds=cost)).decode('ascii')
    # gensalt() writes $2b$; $2y$ is the same algorithm under the name
    # Apache's htpasswd uses, which the registry (Go) and Apache both accept.
    return '$2y$' + hashed[4:]


def cpu_count():
    """CPUs this process may run on (affinity and Python's own override respected)."""
    counter = getattr(os, 'process_cpu_count', None)  # Python >= 3.13
    if counter is not None:
        return counter() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _map(function, items, workers):
    """Apply ``function`` to ``items`` on a pool of threads, keeping order.

    bcrypt releases the GIL while it hashes (bcrypt 3.x through cffi, 4.x and
    later in Rust), so threads use every core without the start-up cost of
    processes.
    """
    if workers is None:
        workers = cpu_count()
    workers = max(1, min(workers, len(items)))
    if workers == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


def verify_many(pairs, workers=None):
    """Check ``[(password, hash), ...]``; returns a list of booleans in order."""
    return _map(lambda pair: check_password(pair[0], pair[1]), list(pairs), workers)


def hash_many(passwords, cost, workers=None):
    """Hash ``{name: password}``; returns ``{name: hash}``."""
    names = list(passwords)
    hashes = _map(lambda name: hash_password(passwords[name], cost), names, workers)
    return dict(zip(names, hashes))


# --------------------------------------------------------------------------
# Parsing an existing file

def parse(text, path='the htpasswd file'):
    """Split the file into lines, the way the registry reads it.

    Like the registry, leading and trailing white space is ignored, blank
    lines and lines starting with ``#`` are comments, and everything before
    the first ``:`` is the user name. Unlike the registry, which keeps the
    last of duplicate users and refuses to start on a line without ``:``,
    both are errors here, reported with their line numbers.
    """
    lines = []
    seen = {}
    physical = text.split('\n')
    if physical and physical[-1] == '':
        physical.pop()
    for number, raw in enumerate(physical, start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith('#'):
            lines.append(Line(number, raw))
            continue
        name, sep, hashed = stripped.partition(':')
        if not sep:
            raise HtpasswdError(
                "%s, line %d: no ':' separates a user name from a hash (the registry refuses to start "
                "with such a file); correct or delete that line" % (path, number))
        if not name:
            raise HtpasswdError(
                "%s, line %d: the user name before ':' is empty; correct or delete that line" % (path, number))
        if name in seen:
            raise HtpasswdError(
                "%s: user %r appears on lines %d and %d (the registry would use only the last one); "
                "delete one of them" % (path, name, seen[name], number))
        seen[name] = number
        lines.append(Line(number, raw, name, hashed.strip()))
    return lines


# --------------------------------------------------------------------------
# Validating requested users

def validate_name(name, where):
    """Raise HtpasswdError unless ``name`` can be written as an htpasswd user."""
    if name is None or name == '':
        raise HtpasswdError('%s: the user name is empty; give a non-empty name' % where)
    if ':' in name:
        raise HtpasswdError(
            "%s: user name %r contains ':', which separates the name from the hash in htpasswd files; "
            "choose a name without ':'" % (where, name))
    if any(char.isspace() for char in name):
        raise HtpasswdError(
            '%s: user name %r contains white space or a line break; HTTP basic auth and the '
            'htpasswd format cannot carry it, choose a name without it' % (where, name))
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise HtpasswdError(
            '%s: user name %r contains a control character; choose a name without it' % (where, name))
    if name.startswith('#'):
        raise HtpasswdError(
            "%s: user name %r starts with '#', so the registry would read the line as a comment; "
            "choose a name that does not start with '#'" % (where, name))
    if len(name) > MAX_NAME_LENGTH:
        raise HtpasswdError(
            '%s: user name %r... is %d characters long; use at most %d'
            % (where, name[:20], len(name), MAX_NAME_LENGTH))


def validate_password(name, password, where):
    """Raise HtpasswdError unless ``password`` can be hashed faithfully by bcrypt.

    Messages name the user, never the password.
    """
    label = '%s (user %r)' % (where, name)
    if password is None:
        raise HtpasswdError('%s: a password is required with state=present' % label)
    if password == '':
        raise HtpasswdError(
            '%s: the password is empty (often an undefined variable rendered as an empty string); '
            'give a non-empty password' % label)
    if '\n' in password or '\r' in password:
        raise HtpasswdError(
            '%s: the password contains a line break, which clients such as docker login cannot send; '
            'remove it (a trailing newline often comes from a file lookup)' % label)
    if '\0' in password:
        raise HtpasswdError('%s: the password contains a NUL byte, which bcrypt cannot hash; remove it' % label)
    if password in PUBLIC_PASSWORDS:
        raise HtpasswdError(
            '%s: the password is a placeholder of the collection\'s example inventory, which anyone can read; '
            'give a password of your own, vault-encrypted (examples/inventory/README.md)' % label)
    length = len(_to_bytes(password))
    if length > MAX_PASSWORD_BYTES:
        raise HtpasswdError(
            '%s: the password is %d bytes long in UTF-8, but bcrypt uses only the first %d bytes '
            '(older bcrypt releases silently ignore the rest, so any password sharing those bytes would '
            'be accepted; bcrypt 5 refuses it); use a password of at most %d bytes'
            % (label, length, MAX_PASSWORD_BYTES, MAX_PASSWORD_BYTES))


def validate_cost(cost):
    if not isinstance(cost, int) or isinstance(cost, bool) or not MIN_COST <= cost <= MAX_COST:
        raise HtpasswdError('cost must be an integer from %d to %d (bcrypt limits), got %r' % (MIN_COST, MAX_COST, cost))


def _entries(name, password, state, users, label='users'):
    """(where, user dict) pairs; ``where`` names the option, or the list and index, for messages."""
    if users is None:
        if name is None:
            return []
        return [('name', {'name': name, 'password': password, 'state': state})]
    return [('%s[%d]' % (label, index), entry) for index, entry in enumerate(users)]


def _check_users(entries):
    """Yield (User or None, HtpasswdError or None) for each entry, in order."""
    first_seen = {}
    for where, entry in entries:
        if not isinstance(entry, dict):
            yield None, HtpasswdError('%s: each user must be a dict with name, password and state, got %r'
                                      % (where, type(entry).__name__))
            continue
        user = User(entry.get('name'), entry.get('password'), entry.get('state') or 'present', where)
        try:
            # A missing name is reported as empty by validate_name.
            if user.name is not None and not isinstance(user.name, str):
                raise HtpasswdError('%s: the user name must be a string, got %r' % (where, type(user.name).__name__))
            validate_name(user.name, where)
            if user.state not in STATES:
                raise HtpasswdError('%s (user %r): state must be one of %s, got %r'
                                    % (where, user.name, ', '.join(STATES), user.state))
            if user.name in first_seen:
                raise HtpasswdError(
                    'user %r is given twice, as %s and %s; list each user once'
                    % (user.name, first_seen[user.name], where))
            first_seen[user.name] = where
            if user.state == 'present':
                if user.password is not None and not isinstance(user.password, str):
                    raise HtpasswdError('%s (user %r): the password must be a string (quote it)' % (where, user.name))
                validate_password(user.name, user.password, where)
        except HtpasswdError as exc:
            yield None, exc
        else:
            yield user, None


def requested_users(name=None, password=None, state='present', users=None):
    """Turn the module's options into a validated list of User.

    Either ``name`` (with ``password`` and ``state``) or ``users`` (a list of
    dicts with keys name, password, state). Raises HtpasswdError on the first
    problem, naming the user and where it was given.
    """
    result = []
    for user, error in _check_users(_entries(name, password, state, users)):
        if error is not None:
            raise error
        result.append(user)
    return result


def user_problems(users, label='users'):
    """Every problem of a list of user dicts, as messages; [] when it is valid.

    The rules of requested_users, for a caller that reports them all at once
    (the registry role's preflight, through the collection's filter plugin).
    Messages name the user and its place as ``<label>[<index>]``, never a
    password.
    """
    return [str(error) for _user, error in _check_users(_entries(None, None, None, users, label)) if error is not None]


# --------------------------------------------------------------------------
# Planning

def plan_changes(lines, users, exclusive=False, update_password='always', cost=DEFAULT_COST,
                 file_exists=True, verify=verify_many):
    """Compute what must change; ``verify`` checks [(password, hash)] pairs.

    - A present user missing from the file is added.
    - With update_password=always, an existing user is rehashed when its
      hash is not bcrypt, when its bcrypt hash has another cost than
      ``cost`` (without verifying: it is rehashed either way), or when the
      given password does not match it.
      With on_create, existing users are left as they are.
    - Absent users, and with ``exclusive`` every user not requested, are
      removed.
    All matching users are verified in one batch, so ``verify`` can spread
    them over all cores.
    """
    if update_password not in UPDATE_PASSWORD:
        raise HtpasswdError('update_password must be one of %s, got %r' % (', '.join(UPDATE_PASSWORD), update_password))
    validate_cost(cost)
    plan = Plan()
    existing = dict((line.name, line) for line in lines if line.name is not None)
    requested = dict((user.name, user) for user in users)

    to_verify = []
    removed = set()
    updated = {}
    for user in users:
        line = existing.get(user.name)
        if user.state == 'absent':
            if line is not None:
                removed.add(user.name)
            continue
        if line is None:
            plan.added.append(user.name)
            plan.to_hash[user.name] = user.password
        elif update_password == 'always':
            if hash_scheme(line.hash) != 'bcrypt':
                updated[user.name] = 'scheme'
            elif bcrypt_cost(line.hash) != cost:
                # Rehashed whether or not the password matches: no need to
                # verify (at a cost that may be far higher than requested).
                updated[user.name] = 'cost'
            else:
                to_verify.append(user)
    if exclusive:
        removed.update(name for name in existing if name not in requested)

    if to_verify:
        matches = verify([(user.password, existing[user.name].hash) for user in to_verify])
        for user, match in zip(to_verify, matches):
            if not match:
                updated[user.name] = 'password'

    for line in lines:
        if line.name is None:
            continue
        if line.name in removed:
            plan.removed.append(line.name)
        elif line.name in updated:
            plan.updated.append(line.name)
            plan.reasons[line.name] = updated[line.name]
            plan.to_hash[line.name] = requested[line.name].password
        else:
            scheme = hash_scheme(line.hash)
            if scheme != 'bcrypt':
                plan.unusable.append((line.name, scheme))
    plan.create_empty = exclusive and not file_exists and not plan.added
    return plan


def warnings_for(lines, plan, path):
    """Warnings about entries the registry cannot verify (names and schemes only)."""
    found = []
    for line in lines:
        if line.name is not None and hash_scheme(line.hash) != 'bcrypt':
            found.append('%s (%s)' % (line.name, hash_scheme(line.hash)))
    if not found:
        return []
    message = '%s holds users whose hashes are not bcrypt, the only scheme the registry verifies: %s.' % (path, ', '.join(found))
    rehashed = [name for name in plan.updated if plan.reasons.get(name) == 'scheme']
    if rehashed:
        message += ' Rehashed with bcrypt: %s.' % ', '.join(rehashed)
    if plan.unusable:
        message += (' They cannot log in to the registry until rehashed: %s; give their passwords '
                    '(with update_password=always) or remove them.' % ', '.join(name for name, dummy in plan.unusable))
    return [message]


# --------------------------------------------------------------------------
# Rendering and describing the result

def render(lines, plan, hashes):
    """The new file: unrelated lines (comments, blank lines, untouched users)
    kept verbatim and in order, updated users rewritten in place, removed
    users dropped, added users appended in the order given."""
    out = []
    removed = set(plan.removed)
    for line in lines:
        if line.name is None:
            out.append(line.text)
        elif line.name in removed:
            continue
        elif line.name in plan.reasons:
            out.append('%s:%s' % (line.name, hashes[line.name]))
        else:
            out.append(line.text)
    for name in plan.added:
        out.append('%s:%s' % (name, hashes[name]))
    return ''.join(entry + '\n' for entry in out)


_REASON_TEXT = {
    'password': 'new password',
    'cost': 'rehashed at cost {cost}',
    'scheme': 'rehashed with bcrypt, cost {cost}',
}


def diff(lines, plan, path, cost, file_exists=True):
    """An Ansible diff of the user list: names and what happens to them, no hashes."""
    before = []
    after = []
    removed = set(plan.removed)
    for line in lines:
        if line.name is None:
            continue
        scheme = hash_scheme(line.hash)
        before.append(line.name if scheme == 'bcrypt' else '%s (%s)' % (line.name, scheme))
        if line.name in removed:
            continue
        reason = plan.reasons.get(line.name)
        if reason is None:
            after.append(before[-1])
        else:
            after.append('%s (%s)' % (line.name, _REASON_TEXT[reason].format(cost=cost)))
    after.extend(plan.added)
    return {
        'before': ''.join(entry + '\n' for entry in before),
        'after': ''.join(entry + '\n' for entry in after),
        'before_header': '%s (users)' % path if file_exists else '%s (absent)' % path,
        'after_header': '%s (users)' % path,
    }
