#!/bin/bash
# find-python.sh MIN_MINOR [MAX_MINOR]: print the newest working python3.X (MIN<=X<=MAX),
# from pyenv's versions or PATH (pyenv shims on PATH may exist without working).
set -uo pipefail
min=$1; max=${2:-14}
for minor in $(seq "$max" -1 "$min"); do
  for cand in "$HOME"/.pyenv/versions/3."$minor".*/bin/python3."$minor" "$(command -v "python3.$minor" 2>/dev/null)"; do
    if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c 'import venv' >/dev/null 2>&1; then
      echo "$cand"; exit 0
    fi
  done
done
echo "no working python3.$min..3.$max found (install one, e.g. with pyenv)" >&2
exit 1
