#!/usr/bin/env bash
# System packages labkit's commands use, installed where this machine allows it (root with apt).
#   scripts/system-packages.sh [PACKAGE ...]     default: bubblewrap chromium
#   bubblewrap  the grading sandbox (`make demo` grades a class; `make test` attacks the sandbox).
#               Without it grading runs with resource limits only, and says so loudly.
#   chromium    the offset explorer's browser test (without it that one test skips, saying why)
# Under LABKIT_CI=1 (.ci/run) the tests' skips for a missing one are failures: CI promises both
# (tests/system_packages.py). Nothing is done when all are present, so this costs once per machine.
set -uo pipefail
wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(bubblewrap chromium)
missing=()
for pkg in "${wanted[@]}"; do
    case "$pkg" in
        bubblewrap) command -v bwrap >/dev/null || missing+=(bubblewrap) ;;
        chromium)   [ -x /usr/bin/chromium ] || missing+=(chromium) ;;
        *) echo "system-packages.sh: unknown package '$pkg'; expected bubblewrap or chromium" >&2
           exit 2 ;;
    esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} (apt)" >&2
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null; then
        exit 0
    fi
fi
echo "note: ${missing[*]} not installed (needs root and apt); what needs them skips or falls" \
     "back and says why. Install them with your package manager to use them." >&2
exit 0
