#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: htpasswd_user
short_description: Manage bcrypt users in an htpasswd file for the container registry
version_added: 0.1.0
description:
  - Adds, updates and removes users in an htpasswd file as the CNCF distribution registry
    (C(docker-registry)) reads it for C(auth.htpasswd), hashing passwords with bcrypt
    (C($2y$) hashes, the only scheme the registry verifies).
  - Manages one user (O(name)) or many in one call (O(users)); either way the file is written
    at most once, atomically (temporary file in the same directory, then a rename), so a
    registry reading the file never sees it half written. Runs on the same host take turns (an
    exclusive lock on the file's directory from reading the file to writing it), so two at a time
    never lose each other's users. The registry re-reads the file when
    its modification time changes, so users added here can log in without a restart, provided
    the file reaches the registry's container through a B(directory) mount (a single-file bind
    mount keeps showing the replaced file).
  - Idempotent without rehashing, by verifying each given password against the stored hash.
    Verification runs on a pool of threads, one per CPU the module may use (bcrypt releases
    Python's global interpreter lock), so checking many users uses all cores.
  - B(Choosing the cost.) The registry verifies the bcrypt hash on B(every) HTTP request
    carrying basic-auth credentials; it caches nothing. Each step up in O(cost) doubles the
    time of that check. Measured against registry 2.8.2 on a 2-core VM (one keep-alive client,
    median of 20 C(GET /v2/)), cost 5 takes 2.5 ms per request, 8 takes 14 ms, 10 takes 50 ms,
    12 takes 200 ms; with 8 concurrent clients the server answered 709, 143, 30 and 8
    authenticated requests per second. A pull makes a request per layer plus a few more, a
    push several per layer, so a high cost slows every client and lets anyone who knows a
    user name load the CPU with a few requests.
  - The default cost 5 is what Apache's C(htpasswd -B) writes and what the registry's
    documentation uses. What it buys against an offline attack on a stolen file is small next
    to the password's length, so give registry users long random passwords (for example
    C(lookup('ansible.builtin.password', '/dev/null', length=32))) rather than a high cost.
    Raise O(cost) (10 to 12) only for passwords people choose and type, and accept the
    per-request price. Changing O(cost) rehashes every user whose password is given (with
    O(update_password=always)) on the next run.
  - Blank lines and comments (lines starting with C(#)), which both the registry and Apache
    ignore, are kept in place. Unrelated users keep their lines and their order; updated
    users are rewritten in place and new users appended in the order given.
  - Existing entries that are not bcrypt (Apache MD5 C($apr1$), C({SHA}), crypt, plain text)
    cannot log in to the registry. The module warns about them by name and rehashes them with
    bcrypt when their password is given.
author:
  - selfhosted.registry maintainers (@selfhosted)
requirements:
  - The Python library C(bcrypt) (any release from 3.1 on) for the Python interpreter that runs
    the module on the target; on Debian and Ubuntu the package C(python3-bcrypt).
    C(passlib) is not needed.
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    description: Can run in check mode and return a changed status prediction without modifying the target.
    support: full
    details:
      - Check mode reads the file and verifies passwords like a real run, so it reports exactly the users
        a real run would add, remove and update; it writes nothing, not even a temporary file.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) in diff mode.
    support: full
    details:
      - The diff lists user names, marking those with a new password or a rehash; it never shows a
        password or a hash. Changes of owner, group or mode are shown as a second diff.
  idempotent:
    description: Run twice in a row with the same arguments, the second run reports no change.
    support: full
    details:
      - New hashes have a fresh random salt, so the file's bytes differ from one rehash to the next;
        the module therefore compares passwords, not file contents, and rewrites nothing when every
        given password matches its stored hash at the requested O(cost).
  platform:
    description: Target OS families the module can run on.
    support: full
    platforms: posix
options:
  path:
    description:
      - Path of the htpasswd file. It is created when missing, but its parent directory must exist.
      - When the path is a symbolic link, the file it points to is updated.
      - A file created by this module gets mode C(0600) unless O(mode) is given, since it holds
        password hashes.
    type: path
    required: true
    aliases: [dest]
  name:
    description:
      - Name of the one user to manage. Mutually exclusive with O(users).
      - Names may not be empty, contain C(:), white space, line breaks or control characters,
        or start with C(#).
    type: str
  password:
    description:
      - Password of O(name), required when O(state=present). At most 72 bytes in UTF-8 (bcrypt ignores
        anything longer, so the module refuses it), not empty, no line breaks.
      - Never logged, returned or shown in a diff.
    type: str
  state:
    description:
      - Whether O(name) should be in the file. Use O(users[].state) with O(users).
    type: str
    choices: [present, absent]
    default: present
  users:
    description:
      - Many users managed in one call and written in one atomic update. Mutually exclusive with
        O(name), O(password) and O(state).
      - Each user may appear only once.
    type: list
    elements: dict
    suboptions:
      name:
        description: User name, with the same restrictions as O(name).
        type: str
        required: true
      password:
        description: Password, with the same restrictions as O(password); required when O(users[].state=present).
        type: str
      state:
        description: Whether this user should be in the file.
        type: str
        choices: [present, absent]
        default: present
  exclusive:
    description:
      - Remove every user in the file that is not given by O(name) or O(users).
      - With O(exclusive=true) a missing file is created even if no user is to be added, so that
        the registry finds a file with exactly the users given (possibly none).
    type: bool
    default: false
  update_password:
    description:
      - V(always) rehashes an existing user when the given password does not match the stored hash, when the
        stored bcrypt hash has another cost than O(cost), or when it is not a bcrypt hash.
      - V(on_create) sets the password of new users only and leaves existing users untouched (and
        unverified, which makes large runs fast), including users whose hashes the registry cannot verify.
    type: str
    choices: [always, on_create]
    default: always
  cost:
    description:
      - bcrypt cost factor (log2 of the number of rounds) for new hashes; from 4 to 31.
      - The registry pays for it on every authenticated request; see the description above before raising it.
    type: int
    default: 5
  backup:
    description:
      - Keep a copy of the previous file, with a timestamp in its name, when the module changes it.
    type: bool
    default: false
notes:
  - The module never returns or logs hashes. Comparing against stored hashes needs the passwords
    on every run, so keep them in Ansible Vault or another secret store.
  - Verifying a password costs the same as hashing it, so a no-op run over N users at cost C takes
    about N times one bcrypt check at cost C, divided by the number of CPUs; see docs/performance.md.
seealso:
  - name: Registry configuration, auth.htpasswd
    description: How the registry reads the htpasswd file.
    link: https://distribution.github.io/distribution/about/configuration/#htpasswd
"""

EXAMPLES = r"""
- name: Give CI a registry account
  selfhosted.registry.htpasswd_user:
    path: /srv/registry/auth/htpasswd
    name: ci
    password: "{{ vault_registry_ci_password }}"
    owner: root
    group: root
    mode: "0640"

- name: Remove a user
  selfhosted.registry.htpasswd_user:
    path: /srv/registry/auth/htpasswd
    name: former-colleague
    state: absent

- name: Make the file hold exactly these users, in one write
  selfhosted.registry.htpasswd_user:
    path: /srv/registry/auth/htpasswd
    users:
      - name: ci
        password: "{{ vault_registry_ci_password }}"
      - name: deploy
        password: "{{ vault_registry_deploy_password }}"
      - name: alice
        password: "{{ vault_registry_alice_password }}"
    exclusive: true
    mode: "0640"
    backup: true
  register: registry_users

- name: Show who changed
  ansible.builtin.debug:
    msg: "added {{ registry_users.added }}, removed {{ registry_users.removed }}, updated {{ registry_users.updated }}"

- name: Human-chosen password, so a higher cost (every request to the registry pays about 50 ms for it)
  selfhosted.registry.htpasswd_user:
    path: /srv/registry/auth/htpasswd
    name: bob
    password: "{{ vault_registry_bob_password }}"
    cost: 10

- name: Set an initial password for new users only, never reset it
  selfhosted.registry.htpasswd_user:
    path: /srv/registry/auth/htpasswd
    name: carol
    password: "{{ lookup('ansible.builtin.password', '/dev/null', length=32) }}"
    update_password: on_create
"""

RETURN = r"""
added:
  description: Users added to the file (or that would be, in check mode), in the order given.
  returned: success
  type: list
  elements: str
  sample: [ci, deploy]
removed:
  description: Users removed from the file (or that would be), in file order.
  returned: success
  type: list
  elements: str
  sample: [former-colleague]
updated:
  description:
    - Existing users rehashed (or that would be), in file order, because their password changed,
      their hash had another cost, or their hash was not bcrypt.
  returned: success
  type: list
  elements: str
  sample: [alice]
backup_file:
  description: Name of the backup file made before the change.
  returned: changed and O(backup=true) and the file existed
  type: str
  sample: /srv/registry/auth/htpasswd.12345.2024-05-01@12:00:00~
"""

import contextlib
import fcntl
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.selfhosted.registry.plugins.module_utils import _htpasswd as htpasswd


class HtpasswdFile:
    """The target file: where it really is, what it holds, and how to replace it."""

    def __init__(self, module, path):
        self.module = module
        self.path = path
        self.real_path = os.path.realpath(path)
        self.directory = os.path.dirname(self.real_path)

    def check_location(self):
        if os.path.isdir(self.real_path):
            raise htpasswd.HtpasswdError('%s is a directory; give the path of the htpasswd file inside it' % self.path)
        if not os.path.isdir(self.directory):
            raise htpasswd.HtpasswdError(
                'the directory %s for %s does not exist; create it first (for example with ansible.builtin.file '
                'and state=directory), this module creates only the file' % (self.directory, self.path))

    @property
    def exists(self):
        return os.path.exists(self.real_path)

    @contextlib.contextmanager
    def locked(self):
        """Hold an exclusive lock on the file's directory from the read to the write.

        A second writer on this host (another playbook, a second task) waits,
        then plans from what the first wrote, instead of writing over it with
        a plan made from the file as it was.
        """
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self):
        with open(self.real_path, 'rb') as handle:
            return handle.read().decode('utf-8', 'surrogateescape')

    def write(self, content):
        """Write a temporary file next to the target, then rename it over the target.

        A file that exists keeps its owner and mode (atomic_move copies them); a new
        file is created 0600 rather than from the umask, as it holds password hashes,
        until the file arguments (mode, owner, ...) are applied.
        """
        fd, tmp_path = tempfile.mkstemp(prefix='.%s.' % os.path.basename(self.real_path), suffix='.tmp', dir=self.directory)
        try:
            with os.fdopen(fd, 'wb') as handle:
                handle.write(content.encode('utf-8', 'surrogateescape'))
                handle.flush()
                os.fsync(handle.fileno())
            umask = os.umask(0o077)
            try:
                self.module.atomic_move(tmp_path, self.real_path, unsafe_writes=self.module.params['unsafe_writes'])
            finally:
                os.umask(umask)
        finally:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)


def run(module):
    params = module.params
    target = HtpasswdFile(module, params['path'])
    target.check_location()
    htpasswd.validate_cost(params['cost'])
    users = htpasswd.requested_users(params['name'], params['password'], params['state'], params['users'])

    with target.locked():
        exists = target.exists
        lines = htpasswd.parse(target.read(), params['path']) if exists else []
        plan = htpasswd.plan_changes(
            lines, users, exclusive=params['exclusive'], update_password=params['update_password'],
            cost=params['cost'], file_exists=exists)
        for warning in htpasswd.warnings_for(lines, plan, params['path']):
            module.warn(warning)

        result = dict(changed=plan.changed, **plan.result())
        diffs = [htpasswd.diff(lines, plan, params['path'], params['cost'], exists)]

        if plan.changed and not module.check_mode:
            hashes = htpasswd.hash_many(plan.to_hash, params['cost'])
            if params['backup'] and exists:
                result['backup_file'] = module.backup_local(target.real_path)
            target.write(htpasswd.render(lines, plan, hashes))

    if target.exists:
        attributes_diff = dict(before={}, after={})
        file_args = module.load_file_common_arguments(params, path=target.real_path)
        result['changed'] = module.set_fs_attributes_if_different(file_args, result['changed'], diff=attributes_diff)
        if attributes_diff['before'] or attributes_diff['after']:
            attributes_diff['before_header'] = attributes_diff['after_header'] = '%s (attributes)' % params['path']
            diffs.append(attributes_diff)

    if module._diff:
        result['diff'] = diffs
    return result


def main():
    user_spec = dict(
        name=dict(type='str', required=True),
        password=dict(type='str', no_log=True),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True, aliases=['dest']),
            name=dict(type='str'),
            password=dict(type='str', no_log=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            users=dict(type='list', elements='dict', options=user_spec),
            exclusive=dict(type='bool', default=False),
            update_password=dict(type='str', choices=['always', 'on_create'], default='always', no_log=False),
            cost=dict(type='int', default=htpasswd.DEFAULT_COST),
            backup=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('name', 'users'), ('password', 'users'), ('state', 'users')],
        required_one_of=[('name', 'users')],
        add_file_common_args=True,
        supports_check_mode=True,
    )

    if htpasswd.bcrypt is None:
        module.fail_json(
            msg=missing_required_lib('bcrypt', reason='to hash and verify passwords (Debian/Ubuntu package: python3-bcrypt)'),
            exception=htpasswd.BCRYPT_IMPORT_ERROR)

    try:
        result = run(module)
    except htpasswd.HtpasswdError as e:
        module.fail_json(msg=to_native(e))
    except OSError as e:
        module.fail_json(msg='cannot read or write %s: %s' % (module.params['path'], to_native(e)))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
