#!/usr/bin/env bash
# Checks (and, as root, installs) what building and testing Ringside needs.
#   Debian packages: qemu-system-x86, tmux, libncurses-dev, iputils-ping, arping, curl, iproute2, python3, bsdextrautils, tshark
#   Swift toolchain with the Embedded stdlib for x86_64-unknown-none-elf (not an apt package).
# As root, missing packages are installed with apt-get (only when something is missing).
# Otherwise it prints the one command to run and exits 1.
set -euo pipefail

missing=()
need_cmd() { # command package
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need_file() { # path package
    [ -e "$1" ] || missing+=("$2")
}

need_cmd qemu-system-x86_64 qemu-system-x86
need_cmd tmux tmux
need_file /usr/include/ncursesw/curses.h libncurses-dev
need_cmd ping iputils-ping
need_cmd arping arping
need_cmd curl curl
need_cmd ip iproute2
need_cmd python3 python3
need_cmd hexdump bsdextrautils   # the TUI tests compare their hex dump with the real one
need_cmd wrk wrk                 # make bench: HTTP load
need_cmd tshark tshark           # the pcap tests read Ringside's captures back with it

if [ "${#missing[@]}" -gt 0 ]; then
    # De-duplicate, keep order.
    pkgs=$(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++' | tr '\n' ' ' | sed 's/ $//')
    if [ "$(id -u)" -eq 0 ]; then
        echo "ensure-deps: installing $pkgs"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs
    else
        echo "ensure-deps: missing packages; as root run:" >&2
        echo "sudo apt-get install -y $pkgs" >&2
        exit 1
    fi
fi

# Swift toolchain (cannot come from apt).
if ! command -v swift >/dev/null 2>&1 || ! command -v swiftc >/dev/null 2>&1; then
    echo "ensure-deps: no Swift toolchain in PATH. Install Swift 6.x for Linux from swift.org" >&2
    echo "  (these machines have it at /opt/swift: export PATH=/opt/swift/usr/bin:\$PATH)" >&2
    exit 1
fi
swiftc_dir=$(dirname "$(readlink -f "$(command -v swiftc)")")
embedded=""
for d in /opt/swift/usr/lib/swift/embedded/x86_64-unknown-none-elf \
         "$swiftc_dir/../lib/swift/embedded/x86_64-unknown-none-elf"; do
    if [ -d "$d" ]; then embedded=$d; break; fi
done
if [ -z "$embedded" ]; then
    echo "ensure-deps: the Swift toolchain at $swiftc_dir has no Embedded Swift stdlib for" >&2
    echo "  x86_64-unknown-none-elf (lib/swift/embedded/x86_64-unknown-none-elf)." >&2
    echo "  Install a Swift 6.x release toolchain from swift.org (they ship it) at /opt/swift." >&2
    exit 1
fi
exit 0
