#!/bin/bash
# test.sh CHECK_JOBS: make test's body. The lab e2e runs in the foreground; the lab-free checks (unit on two
# ansible-core versions, sanity, lint, ee) run beside it at the lowest CPU priority, so they use only what the
# lab's TCG dom0s leave idle (one dom0 is busy at a time in most tests: about a CPU of two stays free) instead
# of running before the lab, which cost the whole run their 8-9 minutes. Each stage prints its own time.
#
# The lowest priority needs a session of their own: with the kernel's autogroup scheduling (Debian and Ubuntu
# kernels, kernel.sched_autogroup_enabled=1) CPU time is shared between sessions first, and nice only orders the
# processes of one session. Each lab dom0's QEMU has its own session (-daemonize), so checks run at nice 19 in make
# test's session still took a third of the CPU from two busy dom0s: their session is given nice 19 too
# (/proc/self/autogroup). The first test's setup (lab up and the dom0 role twice) took 654-852 s beside the checks,
# where lab up alone takes 103-151 s and one dom0.yml run 118 s.
set -uo pipefail
jobs=${1:-2}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p artifacts
checks_log=artifacts/checks.log
start=$SECONDS
# setsid execs at once (a background job of this non-interactive script leads no process group), so the checks'
# session, and its process group, has the pid $!; --wait covers a setsid that had to fork
setsid --wait bash -c '
  echo 19 >/proc/self/autogroup 2>/dev/null   # no autogroup scheduling: nice alone does it
  t0=$SECONDS
  nice -n 19 make --no-print-directory -j"$1" --output-sync=target unit-newest unit-oldest sanity lint ee >"$2" 2>&1
  rc=$?
  echo "checks rc=$rc after $((SECONDS - t0)) s" >>"$2"
  exit $rc' checks "$jobs" "$checks_log" &
checks_pid=$!
# a Ctrl-C or a kill reaches the foreground session only: end the checks' process group too, by its id (bash runs
# the trap once the foreground make returns: a Ctrl-C ends that make at once; a TERM sent to this script alone waits for it)
trap 'kill -TERM -- -"$checks_pid" 2>/dev/null; exit 130' INT TERM
make --no-print-directory e2e
e2e_rc=$?
e2e_s=$((SECONDS - start))
# the checks are this script's own child: wait for it by pid, whatever the lab did
wait "$checks_pid"
checks_rc=$?
trap - INT TERM
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
