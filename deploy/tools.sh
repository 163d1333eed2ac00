#!/usr/bin/env bash
# Test tools from Debian's packages: promtool (package prometheus), for the rule and metric
# checks of make test. Installs only what is missing, and only where it can (root with
# apt-get); elsewhere it says what to install and the tests that need the tool skip, except
# under CI=true, where they fail.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "tools.sh: installing promtool (Debian package prometheus)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
else
  echo "tools.sh: promtool is missing; install Debian's prometheus package (or put promtool on PATH)"
fi
