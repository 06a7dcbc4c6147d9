#!/bin/bash
# venv.sh DIR PYTHON REQUIREMENTS: (re)create DIR when the pinned requirements change.
set -euo pipefail
dir=$1; py=$2; req=$3
stamp="$dir/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then exit 0; fi
rm -rf "$dir"
"$py" -m venv "$dir"
"$dir/bin/python" -m pip install -q --upgrade pip
"$dir/bin/python" -m pip install -q -r "$req"
echo "$want" > "$stamp"
