#!/usr/bin/env bash
# Prepare this host for qtap-fluent's eBPF capture source (Debian bookworm, run as root).
#
#  1. apt: python3-bpfcc (bcc 0.26, pure Python over libbcc), plus the test clients
#     (curl, gnutls-bin, and android-libboringssl/android-boringssl for a real BoringSSL
#     client, bssl-tool) unless QTAP_SETUP_NO_CLIENTS=1.
#  2. Kernel headers: bcc compiles C at run time. When /lib/modules/$(uname -r)/build is
#     missing, Debian's linux-headers-6.1.0-*-amd64 and -common are downloaded with
#     `apt-get download` and unpacked with dpkg -x into ONE folder, common first and amd64
#     over it. Our programs use only pt_regs, helpers and tracepoint arguments, so a
#     nearby kernel's headers are enough (nothing depends on kernel struct layouts).
#  3. tracefs (/sys/kernel/tracing) and debugfs (/sys/kernel/debug) are mounted if missing.
#  4. The default python3 gets ONLY /usr/lib/python3/dist-packages/bcc, through a symlink
#     in its site-packages. Never `pip install bcc`: that PyPI name is an unrelated project.
#
# Idempotent. Environment:
#   QTAP_FLUENT_HEADERS_DIR  where to unpack headers (default /var/lib/qtap-fluent/kernel-headers)
#   PYTHON                   interpreter to link bcc into (default python3)
set -euo pipefail

HEADERS_DIR="${QTAP_FLUENT_HEADERS_DIR:-/var/lib/qtap-fluent/kernel-headers}"
PYTHON="${PYTHON:-python3}"
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=300)

log() { printf 'setup-ebpf: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "must run as root (apt-get, mount)"; exit 1
fi

# --- 1. packages ---------------------------------------------------------------------------
want=(python3-bpfcc)
if [ "${QTAP_SETUP_NO_CLIENTS:-0}" != 1 ]; then
    want+=(curl gnutls-bin android-libboringssl android-boringssl)
fi
missing=()
for p in "${want[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
updated=0
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
    updated=1
    DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# --- 2. kernel headers ---------------------------------------------------------------------
if [ -e "/lib/modules/$(uname -r)/build/include/linux/kconfig.h" ]; then
    log "kernel headers: /lib/modules/$(uname -r)/build"
elif [ -e "$HEADERS_DIR/include/linux/kconfig.h" ] && [ -e "$HEADERS_DIR/include/generated/autoconf.h" ]; then
    log "kernel headers: $HEADERS_DIR (already unpacked)"
else
    [ "$updated" = 1 ] || apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
    # Newest 6.1.0-N ABI that has both packages (bookworm's kernel series).
    abi=$(apt-cache search --names-only '^linux-headers-6\.1\.0-[0-9]+-amd64$' \
          | sed -n 's/^linux-headers-\(6\.1\.0-[0-9]*\)-amd64 .*/\1/p' | sort -V | tail -n1)
    if [ -z "$abi" ]; then
        log "no linux-headers-6.1.0-*-amd64 package found in apt sources"; exit 1
    fi
    work=$(mktemp -d)
    chmod 755 "$work"  # apt-get download fetches as user _apt
    trap 'rm -rf "$work"' EXIT
    log "downloading linux-headers-$abi-common and -amd64"
    (cd "$work" && apt-get download -q "linux-headers-$abi-common" "linux-headers-$abi-amd64" >/dev/null)
    mkdir -p "$work/x"
    # common first, then amd64 over it, into ONE folder.
    dpkg -x "$work"/linux-headers-"$abi"-common_*.deb "$work/x"
    dpkg -x "$work"/linux-headers-"$abi"-amd64_*.deb "$work/x"
    rm -rf "$HEADERS_DIR.tmp"
    mkdir -p "$HEADERS_DIR.tmp"
    cp -a "$work/x/usr/src/linux-headers-$abi-common/." "$HEADERS_DIR.tmp/"
    cp -a --remove-destination "$work/x/usr/src/linux-headers-$abi-amd64/." "$HEADERS_DIR.tmp/"
    rm -rf "$HEADERS_DIR"
    mv "$HEADERS_DIR.tmp" "$HEADERS_DIR"
    log "kernel headers: $HEADERS_DIR ($abi)"
fi

# --- 3. tracefs / debugfs ------------------------------------------------------------------
if ! mountpoint -q /sys/kernel/debug; then
    mount -t debugfs debugfs /sys/kernel/debug && log "mounted debugfs"
fi
if ! mountpoint -q /sys/kernel/tracing; then
    mount -t tracefs tracefs /sys/kernel/tracing && log "mounted tracefs"
fi

# --- 4. bcc for the default python3 --------------------------------------------------------
src=/usr/lib/python3/dist-packages/bcc
site=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -e "$site/bcc" ]; then
    ln -s "$src" "$site/bcc"
    log "linked $src into $site"
fi
"$PYTHON" -c 'import bcc, sys; sys.stderr.write("setup-ebpf: bcc importable from %s\n" % sys.executable)'
