#!/bin/bash
# test.sh CHECK_JOBS: make test's body. The lab e2e runs in the foreground; the lab-free checks (unit on two
# ansible-core versions, sanity, lint, ee) run beside it at the lowest CPU priority, so they use only what the
# lab's TCG dom0s leave idle (one dom0 is busy at a time in most tests: about a CPU of two stays free) instead
# of running before the lab, which cost the whole run their 8-9 minutes. Each stage prints its own time.
set -uo pipefail
jobs=${1:-2}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p artifacts
checks_log=artifacts/checks.log
start=$SECONDS
(
  t0=$SECONDS
  nice -n 19 make --no-print-directory -j"$jobs" --output-sync=target unit-newest unit-oldest sanity lint ee \
    >"$checks_log" 2>&1
  rc=$?
  echo "checks rc=$rc after $((SECONDS - t0)) s" >>"$checks_log"
  exit $rc
) &
checks_pid=$!
make --no-print-directory e2e
e2e_rc=$?
e2e_s=$((SECONDS - start))
# the checks are this script's own child: wait for it by pid, whatever the lab did
wait "$checks_pid"
checks_rc=$?
cat "$checks_log"
echo "make test: lab e2e $([ $e2e_rc = 0 ] && echo passed || echo FAILED) in $e2e_s s"
echo "make test: unit, sanity, lint and ee $([ $checks_rc = 0 ] && echo passed || echo FAILED)" \
     "($(tail -1 "$checks_log" | sed 's/.*after //'), beside the lab)"
echo "make test: whole run $((SECONDS - start)) s"
if [ $e2e_rc = 0 ] && [ $checks_rc = 0 ]; then
  echo "make test: unit, sanity, lint, execution environment and lab e2e all passed"
  exit 0
fi
exit 1
