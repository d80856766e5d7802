# Copyright (c) selfhosted.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The compose CLI (``docker compose``, v2) next to compose_stack.

An operator may run ``docker compose up -d`` in the project directory, as the
tutorials teach. compose recreates a container when its
``com.docker.compose.config-hash`` label differs from the hash compose itself
computes for the service. So where compose is installed, compose_stack labels
its containers with compose's own hash and version, and takes a container
compose made as its own when that hash matches: the two converge to one
steady state. Where it is not installed, compose_stack's own hash
(_compose_labels.config_hash) stands in.

The project directory's ``.env`` names the project and its files, so that a
bare ``docker compose`` there sees the project compose_stack runs, with every
file of it (each role of the collection adds one).

Private module: the interface may change without notice.
"""

from __future__ import annotations

import os

from ansible_collections.selfhosted.registry.plugins.module_utils._compose_load import ComposeError

ENV_FILE = '.env'
ENV_PROJECT_NAME = 'COMPOSE_PROJECT_NAME'
ENV_FILES = 'COMPOSE_FILE'
# compose's default separator of COMPOSE_FILE on Linux.
FILE_SEPARATOR = ':'


def compose_version(run_command, docker):
    """The version of compose v2 (``docker compose version --short``), or None when it is not installed."""
    if not docker:
        return None
    rc, out, dummy = run_command([docker, 'compose', 'version', '--short'])
    version = out.strip()
    if rc != 0 or not version:
        return None
    return version


def compose_hashes(run_command, docker, project):
    """service -> the config hash compose computes for it from the project's files.

    ``config --hash`` reads the files only; it does not contact the engine.
    """
    argv = [docker, 'compose', '--project-directory', project.working_dir, '--project-name', project.name]
    for path in project.config_files:
        argv.extend(['--file', path])
    argv.extend(['config', '--hash', '*'])
    rc, out, err = run_command(argv)
    if rc != 0:
        raise ComposeError('docker compose, installed on this host, cannot read the project files (%s): %s. '
                           'compose_stack labels containers with the config hash compose computes where compose is '
                           'installed; fix the files (or remove the compose plugin). Nothing was changed.'
                           % (', '.join(project.config_files), (err or out).strip()))
    hashes = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2:
            hashes[fields[0]] = fields[1]
    missing = sorted(set(project.services) - set(hashes))
    if missing:
        raise ComposeError('docker compose config --hash printed no hash for %s' % ', '.join(missing))
    return hashes


def _assignment(line):
    """(key, value) of a KEY=value line of a .env file, or None for a comment or any other line."""
    line = line.strip()
    if not line or line.startswith('#') or '=' not in line:
        return None
    key, value = line.split('=', 1)
    return key.strip(), value.strip()


def parse_env(text):
    """KEY=value lines of a .env file as a dict (comments and other lines are left out)."""
    return dict(pair for pair in map(_assignment, text.splitlines()) if pair)


def env_files(project, current, exists=os.path.isfile):
    """The files COMPOSE_FILE lists: those it lists now that still exist, then this project's that it lacks.

    Each role runs compose_stack with the files it knows (the registry its
    compose.yaml, the proxy compose.yaml and its own): the union, in the order
    first seen, is the whole project, and stays the same from run to run.
    """
    files = []
    for path in (current or '').split(FILE_SEPARATOR):
        if path and path not in files and exists(os.path.join(project.working_dir, path)):
            files.append(path)
    for path in project.config_files:
        relative = os.path.relpath(path, project.working_dir)
        name = path if relative.startswith('..') else relative
        if name not in files:
            files.append(name)
    return files


def render_env(text, values):
    """``text`` (a .env file) with ``values`` set: existing lines replaced in place, new ones appended."""
    lines = text.splitlines()
    pending = dict(values)
    for index, line in enumerate(lines):
        pair = _assignment(line)
        if pair and pair[0] in pending:
            lines[index] = '%s=%s' % (pair[0], pending.pop(pair[0]))
    for key in sorted(pending):
        lines.append('%s=%s' % (key, pending[key]))
    return '\n'.join(lines) + '\n'


def env_text(project, text):
    """The project's .env as it should be, from its text now (None when there is none)."""
    current = parse_env(text or '')
    values = {
        ENV_PROJECT_NAME: project.name,
        ENV_FILES: FILE_SEPARATOR.join(env_files(project, current.get(ENV_FILES))),
    }
    return render_env(text or '', values)
