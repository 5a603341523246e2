#!/usr/bin/env bash
# Set up qtap-fluent on a Debian machine, from a clean clone. Idempotent.
#
#  1. (root) Debian packages: python3-venv, and tcpdump/curl for the capture tests.
#  2. A virtualenv in .venv (with the system site-packages, so Debian's bcc can be seen)
#     holding qtap-fluent in editable mode plus its test and AWS extras.
#  3. (root) eBPF prerequisites through scripts/setup-ebpf.sh: python3-bpfcc, kernel headers,
#     tracefs/debugfs. Without them everything but the eBPF capture source still works, and
#     the eBPF tests skip with the reason.
#
# Environment: VENV (default .venv), PYTHON (interpreter to build the venv, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in python3-venv tcpdump curl; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
            --no-install-recommends "${missing[@]}" >/dev/null
    fi
else
    log "not root: skipping Debian packages (python3-venv, tcpdump, curl) and eBPF set-up"
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv --system-site-packages "$VENV"
fi
log "installing qtap-fluent into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test,aws]'

if [ "$(id -u)" = 0 ] && [ -f scripts/setup-ebpf.sh ]; then
    PYTHON="$VENV/bin/python" bash scripts/setup-ebpf.sh \
        || log "eBPF set-up incomplete: 'qtap-fluent agent' without --replay will say what is missing"
fi
log "done: $VENV/bin/qtap-fluent --help"
