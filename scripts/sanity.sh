#!/bin/bash
# sanity.sh VENV: ansible-test sanity needs the collection at ansible_collections/sanless/xen;
# build that tree in a temporary folder from the files git tracks (plus new ones), minus
# the parts galaxy.yml keeps out of the collection artifact (lab harness, e2e, bench).
set -euo pipefail
venv=$(cd "$1" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/ansible_collections/sanless/xen
mkdir -p "$dest"
cd "$top"
git ls-files --cached --others --exclude-standard \
  | grep -Ev '^(lab/|tests/e2e/|tests/bench/|tests/awx/|tests/ee/|awx/|collections/|\.ci/|scripts/|Makefile$)' \
  | while read -r f; do [ -e "$f" ] && printf '%s\n' "$f"; done \
  | tar -cf - -T - | tar -C "$dest" -xf -
# ansible-test runs the multi-version tests on every python3.X it finds on PATH
pybin=$tmp/pybin; mkdir -p "$pybin"
for minor in 9 10 11 12 13; do
  p=$(bash "$top/scripts/find-python.sh" "$minor" "$minor" 2>/dev/null) && ln -s "$p" "$pybin/python3.$minor"
done
# ansible-test bootstraps pip in its virtual environments with a script it downloads from a
# host outside the package index; put the offline stand-in where it looks first.
pip_version=$("$venv/bin/python" -c 'from ansible_test._internal.python_requirements import get_venv_packages
class P: version = "3.13"
print(get_venv_packages(P)["pip"])')
mkdir -p "$HOME/.ansible/test/cache"
cp "$top/scripts/get-pip-offline.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
cd "$dest"
# --venv: ansible-test keeps its own per-python virtual environments with its pinned tools
PATH="$venv/bin:$pybin:$PATH" ansible-test sanity --color no --venv --python 3.13
# modules and module_utils run on the dom0's Python: compile and import them on each older one
for py in $(ls "$pybin"); do
  [ "$py" = python3.13 ] && continue
  PATH="$venv/bin:$pybin:$PATH" ansible-test sanity --color no --venv --python "${py#python}" --test compile --test import
done
echo "sanity: ansible-test sanity passed"
