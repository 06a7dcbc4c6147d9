#!/bin/bash
# tests/ee/check.sh [PYTHON]: check execution-environment.yml with ansible-builder, installed from
# PyPI into a throwaway venv (no container engine needed, nothing is built):
#  - `ansible-builder create` accepts the v3 definition and writes a build context whose
#    Containerfile has the base image, the Python, ansible-core and ansible-runner it names, and
#    our requirements.txt and bindep.txt;
#  - `ansible-builder introspect` of the collection as ansible-galaxy installs it finds the ssh
#    client in its bindep.txt and no Python requirement, as an EE that includes the collection sees it.
# PYTHON (default .venv-newest/bin/python) makes the venv; its ansible-galaxy installs the collection.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
py=${1:-$top/.venv-newest/bin/python}
bin=$(dirname "$py")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "ee check: $*" >&2; exit 1; }

"$py" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q ansible-builder==3.2.0
builder=$tmp/venv/bin/ansible-builder

cd "$top"
"$builder" create -f execution-environment.yml -c "$tmp/context" --output-filename Containerfile
cf=$tmp/context/Containerfile
core=$(sed -n 's/^ansible-core==\(.*\)$/\1/p' requirements/controller-newest.txt)
grep -qx 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' "$cf" || fail "base image"
grep -qx 'ARG PYCMD="/usr/bin/python3.12"' "$cf" || fail "python"
grep -q "^ARG ANSIBLE_INSTALL_REFS=\"ansible-core==$core ansible-runner==" "$cf" \
  || fail "ansible-core $core (requirements/controller-newest.txt) and ansible-runner"
cmp -s requirements.txt "$tmp/context/_build/requirements.txt" || fail "requirements.txt not in the context"
cmp -s bindep.txt "$tmp/context/_build/bindep.txt" || fail "bindep.txt not in the context"
grep -q 'introspect.py introspect --user-pip=requirements.txt --user-bindep=bindep.txt' "$cf" || fail "introspection"

ANSIBLE_COLLECTIONS_PATH=$tmp/collections "$bin/ansible-galaxy" collection install --offline \
  -p "$tmp/collections" -r collections/requirements.yml >/dev/null
"$builder" introspect --sanitize "$tmp/collections" > "$tmp/deps.yml"
cat "$tmp/deps.yml"
"$py" - "$tmp/deps.yml" <<'PY'
import sys
import yaml
with open(sys.argv[1]) as handle:
    deps = yaml.safe_load(handle)
system = [line.split("#")[0].strip() for line in deps["system"]]
assert system == ["openssh-clients [platform:rpm]", "openssh-client [platform:dpkg]"], system
assert deps["python"] == [], deps["python"]
PY
echo "ee check: ansible-builder create and introspect passed"
