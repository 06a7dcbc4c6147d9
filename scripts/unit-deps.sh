#!/bin/bash
# unit-deps.sh: install what the unit tests use beyond the venvs when it is missing (make unit):
# Debian's chromium and chromium-driver, in which tests/unit/plugins/filter/test_report_html.py
# renders the HTML cluster report headless and checks the screenshot. Without root or apt-get it
# says so and goes on: that test is then skipped with the reason.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# the ssh client the AWX job tests (tests/unit/project/test_ansible_runner.py) use against a closed port
command -v ssh >/dev/null || need+=(openssh-client)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "unit-deps: not installing ${need[*]} (needs root and apt-get); the browser test will be skipped"
  exit 0
fi
echo "unit-deps: installing ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
