#!/usr/bin/env bash
# The README's three ways to install the collection, each into an empty path:
# a built tarball, a git URL, and a requirements.yml entry of type git (both
# from a bare clone of this repository's HEAD, as a server would serve it).
# Then read the docs of every module and role from the installed copy.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Only the fresh install may be found, not a copy elsewhere on this machine.
export ANSIBLE_COLLECTIONS_PATH=$work/collections ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
"$BIN/ansible-galaxy" collection build --output-path "$work/dist" .
"$BIN/ansible-galaxy" collection install -p "$work/collections" "$work"/dist/selfhosted-registry-*.tar.gz

# Nothing from the build_ignore list may ship.
if tar -tzf "$work"/dist/selfhosted-registry-*.tar.gz | grep -E '^(molecule|tests|\.ci|scripts|benchmarks|docs/plans)/'; then
  echo "collection build: test or CI files leaked into the tarball" >&2
  exit 1
fi

modules=$("$BIN/ansible-doc" -l selfhosted.registry --json | "$BIN/python" -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin))))')
echo "modules: $modules"
for module in $modules; do
  "$BIN/ansible-doc" "$module" >/dev/null
done
for role in roles/*/; do
  role=$(basename "$role")
  "$BIN/ansible-doc" -t role "selfhosted.registry.$role" >/dev/null
  echo "role doc ok: selfhosted.registry.$role"
done

# The collection playbook is reachable by its FQCN from the installed copy.
(cd "$work" && "$BIN/ansible-playbook" -i localhost, selfhosted.registry.site --syntax-check)

git clone --quiet --bare "$ROOT" "$work/registry.git"
branch=$(git -C "$work/registry.git" symbolic-ref --short HEAD)
"$BIN/ansible-galaxy" collection install -p "$work/from-git-url" "git+file://$work/registry.git,$branch"
cat >"$work/requirements.yml" <<EOF
collections:
  - name: file://$work/registry.git
    type: git
    version: $branch
EOF
"$BIN/ansible-galaxy" collection install -p "$work/from-requirements" -r "$work/requirements.yml"
for installed in from-git-url from-requirements; do
  (cd "$work" && ANSIBLE_COLLECTIONS_PATH=$work/$installed \
    "$BIN/ansible-playbook" -i localhost, selfhosted.registry.site --syntax-check >/dev/null)
  ANSIBLE_COLLECTIONS_PATH=$work/$installed "$BIN/ansible-doc" -t role selfhosted.registry.registry >/dev/null
  echo "installed from $installed: site playbook and roles found"
done
