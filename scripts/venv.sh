#!/bin/bash
# venv.sh DIR PYTHON REQUIREMENTS: DIR is a pinned virtual environment, rebuilt when the requirements or the Python
# change. It is built once per machine under ~/.cache/sanless-lab/venvs (a key of both) and DIR links to it, so a
# fresh clone (CI's) does not install the same pins again. SANLESS_VENV_CACHE=0 builds DIR in place.
set -euo pipefail
dir=$1; py=$2; req=$3
want=$(sha256sum "$req" | cut -d' ' -f1)
ready() { [ -x "$1/bin/python" ] && [ "$(cat "$1/.requirements.sha256" 2>/dev/null)" = "$want" ]; }
if ready "$dir"; then exit 0; fi
build() {  # build() TARGET: a venv at TARGET with the pins, its stamp written last
  rm -rf "$1"
  "$py" -m venv "$1"
  "$1/bin/python" -m pip install -q --upgrade pip
  "$1/bin/python" -m pip install -q -r "$req"
  echo "$want" > "$1/.requirements.sha256"
}
if [ "${SANLESS_VENV_CACHE:-1}" = 0 ]; then
  rm -rf "$dir"; build "$dir"; exit 0
fi
pyver=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
cache="${SANLESS_CACHE:-$HOME/.cache/sanless-lab}/venvs/$(basename "$dir")-py$pyver-${want:0:16}"
mkdir -p "$(dirname "$cache")"
# Built where it stays (its scripts name their python by path); the stamp is written last, so a build killed
# halfway is built again. The lock keeps two clones from building the same one at once.
exec 9>"$cache.lock"
flock 9
if ! ready "$cache"; then build "$cache"; fi
flock -u 9
rm -rf "$dir"
ln -s "$cache" "$dir"
