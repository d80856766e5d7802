#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_login
short_description: Log a user of a host in to a container registry, as docker login does
version_added: 0.1.0
description:
  - Keeps the login for one registry in a Docker client configuration file (C(~/.docker/config.json)), the file
    C(docker login) writes and Docker, Podman, skopeo and crane read.
  - Before it writes a new or changed login, it tries the credentials against the registry (O(verify)), as
    C(docker login) does, through the registry's basic or token authentication. A login already in the file is not
    tried again, so a run that changes nothing needs no registry.
  - Other logins and settings in the file stay as they are. The file is written atomically, mode C(0600), in a
    directory of mode C(0700), both owned by O(owner).
  - Refuses a file that sends this registry's credentials to a credential helper (C(credsStore) or
    C(credHelpers)), since docker would not read a login written to the file.
author:
  - selfhosted.registry maintainers (@selfhosted)
attributes:
  check_mode:
    description: Can run in check mode and return a changed status prediction without modifying the target.
    support: full
    details:
      - In check mode the credentials are still tried against the registry (nothing changes there).
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) in diff mode.
    support: full
    details:
      - The diff shows the registries the file holds logins for and their user names, never a password.
  idempotent:
    description: Run twice in a row with the same arguments, the second run reports no change.
    support: full
  platform:
    description: Target OS families the module can run on.
    support: full
    platforms: posix
options:
  registry:
    description:
      - The registry's name as clients use it in image names, with its port where it is not 443, for example
        V(registry.example.com) or V(registry.example.com:5443).
    type: str
    required: true
  username:
    description: The registry user. Required with O(state=present).
    type: str
  password:
    description: The user's password. Required with O(state=present).
    type: str
  state:
    description: V(present) keeps the login in the file, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  config_path:
    description: The client configuration file, for example C(/home/deploy/.docker/config.json).
    type: path
    required: true
  owner:
    description: The OS user who owns the file and its directory (the user who runs docker).
    type: str
    required: true
  group:
    description: Their group; the owner's primary group when not given.
    type: str
  verify:
    description: Try new credentials against the registry before writing them; fail when it refuses them.
    type: bool
    default: true
  ca_path:
    description: PEM file of the CA that signs the registry's certificate, when it is not publicly trusted.
    type: path
  timeout:
    description: Seconds each request to the registry may take.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Log deploy in to the registry
  selfhosted.registry.registry_login:
    registry: registry.example.com
    username: ci
    password: "{{ vault_registry_ci_password }}"
    config_path: /home/deploy/.docker/config.json
    owner: deploy
"""

RETURN = r"""
logins:
  description: The registries the file holds logins for after the run, with their user names (never a password).
  returned: success
  type: dict
  sample:
    registry.example.com: ci
"""

import base64
import grp
import json
import os
import pwd
import re
import tempfile
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.selfhosted.registry.plugins.module_utils._registry_login import (
    LoginError, helper_for, logins, parse_config, render, with_login, without_login,
)

_CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')


def _challenge(error):
    """(scheme, params) of a 401's WWW-Authenticate header."""
    header = error.headers.get('WWW-Authenticate', '') if error.headers else ''
    scheme = header.split(' ', 1)[0].lower()
    return scheme, dict(_CHALLENGE_PARAM_RE.findall(header))


class RegistryLogin:
    def __init__(self, module):
        self.module = module
        self.params = module.params

    def _get(self, url, basic=None):
        headers = {}
        if basic:
            token = base64.b64encode(('%s:%s' % basic).encode('utf-8')).decode('ascii')
            headers['Authorization'] = 'Basic %s' % token
        return open_url(url, headers=headers, timeout=self.params['timeout'], ca_path=self.params['ca_path'],
                        validate_certs=True, follow_redirects='none', http_agent='selfhosted.registry.registry_login')

    def verify(self):
        """Fail unless the registry accepts the credentials (what docker login checks)."""
        registry = self.params['registry']
        credentials = (self.params['username'], self.params['password'])
        base = 'https://%s/v2/' % registry
        scheme, params = '', {}
        try:
            self._get(base)
            return  # the registry asks for no credentials
        except HTTPError as error:
            if error.code != 401:
                self.module.fail_json(msg='%s answered %s %s instead of asking for credentials' % (base, error.code, error.reason))
            scheme, params = _challenge(error)
        except URLError as error:
            self.module.fail_json(msg='cannot reach %s to try the login: %s' % (base, error.reason))
        if scheme == 'basic':
            url = base
        elif scheme == 'bearer' and params.get('realm'):
            # What docker login asks for: a token for no repository, for this account.
            query = {'service': params['service']} if params.get('service') else {}
            query['account'] = self.params['username']
            url = params['realm'] + '?' + urlencode(query)
        else:
            self.module.fail_json(msg='%s asks for credentials in a way this module does not know (%s)' % (base, scheme or 'no challenge'))
        try:
            self._get(url, basic=credentials)
        except HTTPError as error:
            if error.code == 401:
                self.module.fail_json(msg='%s refused user %s: check the password (or the user on the registry)'
                                          % (registry, self.params['username']))
            self.module.fail_json(msg='trying the login at %s failed: %s %s' % (url, error.code, error.reason))
        except URLError as error:
            self.module.fail_json(msg='cannot reach %s to try the login: %s' % (url, error.reason))

    def _owner_ids(self):
        try:
            user = pwd.getpwnam(self.params['owner'])
        except KeyError:
            self.module.fail_json(msg='owner %s is not a user on this host' % self.params['owner'])
        if not self.params['group']:
            return user.pw_uid, user.pw_gid
        try:
            return user.pw_uid, grp.getgrnam(self.params['group']).gr_gid
        except KeyError:
            self.module.fail_json(msg='group %s is not a group on this host' % self.params['group'])

    def write(self, path, text):
        uid, gid = self._owner_ids()
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700)
            os.chown(directory, uid, gid)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix='.config.json.')
        try:
            with os.fdopen(fd, 'w') as handle:
                handle.write(text)
            os.chmod(temporary, 0o600)
            os.chown(temporary, uid, gid)
            os.rename(temporary, path)
        except Exception:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    def run(self):
        path = self.params['config_path']
        registry = self.params['registry']
        text = None
        if os.path.exists(path):
            with open(path) as handle:
                text = handle.read()
        try:
            before = parse_config(text, path)
        except LoginError as error:
            self.module.fail_json(msg=str(error))

        if self.params['state'] == 'present':
            helper = helper_for(before, registry)
            if helper:
                self.module.fail_json(msg='%s sends the credentials for %s to the credential helper docker-credential-%s, '
                                          'so docker would not read a login written to the file: remove credsStore/credHelpers '
                                          'there, or log in with docker login' % (path, registry, helper))
            after = with_login(before, registry, self.params['username'], self.params['password'])
        else:
            after = without_login(before, registry)

        changed = after.get('auths', {}).get(registry) != before.get('auths', {}).get(registry)
        if changed and self.params['state'] == 'present' and self.params['verify']:
            ca_path = self.params['ca_path']
            if ca_path and not os.path.exists(ca_path):
                if not self.module.check_mode:
                    self.module.fail_json(msg='ca_path %s does not exist' % ca_path)
                # Check mode on a new host: the CA is not installed yet.
                self.module.warn('the login for %s was not tried: its CA %s is not there yet' % (registry, ca_path))
            else:
                self.verify()
        if changed and not self.module.check_mode:
            self.write(path, render(after))
        result = {'changed': changed, 'logins': logins(after)}
        if self.module._diff:
            result['diff'] = {
                'before_header': path, 'after_header': path,
                'before': json.dumps(logins(before), indent=2) + '\n',
                'after': json.dumps(logins(after), indent=2) + '\n',
            }
        self.module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            registry=dict(type='str', required=True),
            username=dict(type='str'),
            password=dict(type='str', no_log=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            config_path=dict(type='path', required=True),
            owner=dict(type='str', required=True),
            group=dict(type='str'),
            verify=dict(type='bool', default=True),
            ca_path=dict(type='path'),
            timeout=dict(type='int', default=30),
        ),
        required_if=[('state', 'present', ('username', 'password'))],
        supports_check_mode=True,
    )
    RegistryLogin(module).run()


if __name__ == '__main__':
    main()
