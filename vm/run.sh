#!/usr/bin/env bash
# Boot Debian's kernel in qemu and run the kernel netem backend's fidelity checks
# (vm/kernel_fidelity.py) against the CURRENT sources: services/router/netbed_router,
# harness/netbed_core and harness/netbed_testkit (topology, traffic, binomial interval) are
# packed into a small second cpio archive at every run, appended to the
# cached base image from vm/build.sh (which this script calls; it is a no-op when cached).
#
#   bash vm/run.sh                    # the whole fidelity suite (make test-kernel-netem)
#   bash vm/run.sh -k delay           # extra arguments go to kernel_fidelity.py
#   NETBED_VM_TEST=trivial bash vm/run.sh   # just boot and check that netem loads
#   NETBED_VM_SCRIPT=my.sh bash vm/run.sh    # run my.sh in the VM instead (PYTHONPATH=/netbed/lib)
#
# Environment: NETBED_VM_ACCEL=tcg|kvm (default tcg: software emulation, what CI machines have),
# NETBED_VM_TIMEOUT=seconds (default 110), NETBED_VM_DIR (default build/vm).
# Exits 0 only when the VM printed "NETBED-VM-RESULT: PASS".
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${NETBED_VM_DIR:-$ROOT/build/vm}"
TIMEOUT="${NETBED_VM_TIMEOUT:-110}"
ACCEL="${NETBED_VM_ACCEL:-tcg}"

log() { printf 'vm/run: %s\n' "$*" >&2; }

bash "$ROOT/vm/build.sh"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/netbed-vm.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --- the overlay: init, the project's sources, the test -----------------------------------------
OV="$WORK/overlay"
mkdir -p "$OV/netbed/lib" "$OV/netbed/vm"
install -m 0755 "$ROOT/vm/init.sh" "$OV/init"
cp -r "$ROOT/harness/netbed_core" "$OV/netbed/lib/netbed_core"
cp -r "$ROOT/services/router/netbed_router" "$OV/netbed/lib/netbed_router"
cp -r "$ROOT/harness/netbed_testkit" "$OV/netbed/lib/netbed_testkit"
[[ -f "$ROOT/vm/kernel_fidelity.py" ]] && cp "$ROOT/vm/kernel_fidelity.py" "$OV/netbed/vm/"
find "$OV" -name __pycache__ -prune -exec rm -rf {} +
if [[ -n "${NETBED_VM_SCRIPT:-}" ]]; then
  install -m 0755 "$NETBED_VM_SCRIPT" "$OV/netbed/test.sh"
elif [[ "${NETBED_VM_TEST:-fidelity}" != trivial ]]; then
  {
    echo '#!/bin/sh'
    echo 'cd /netbed && PYTHONPATH=/netbed/lib exec python3 /netbed/vm/kernel_fidelity.py "$@" \'
    for a in "$@"; do printf "  '%s' \\\\\n" "${a//\'/\'\\\'\'}"; done
    echo ''
  } >"$OV/netbed/test.sh"
  chmod 0755 "$OV/netbed/test.sh"
fi
(cd "$OV" && find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0 \
   | gzip -1 >"$WORK/overlay.cpio.gz")
# the kernel unpacks concatenated (separately compressed) cpio archives in order; later files win
cat "$OUT/base.cpio.gz" "$WORK/overlay.cpio.gz" >"$WORK/initrd.gz"

# --- boot ---------------------------------------------------------------------------------------
cpu=(-cpu max)
case "$ACCEL" in
  tcg) accel=(-accel tcg) ;;
  # KVM is opt-in: on the build machines /dev/kvm exists but qemu aborts ("failed to set MSR 0x10a")
  kvm) accel=(-accel kvm); cpu=(-cpu host) ;;
  *) log "NETBED_VM_ACCEL must be tcg or kvm"; exit 2 ;;
esac
log "booting $(basename "$(readlink -f "$OUT/vmlinuz")") (${accel[*]}, timeout ${TIMEOUT}s)"
start=$(date +%s.%N)
set +e
timeout --kill-after=5 "$TIMEOUT" qemu-system-x86_64 "${accel[@]}" -machine q35 "${cpu[@]}" -m 2048 -smp 2 \
  -nographic -no-reboot -nic none \
  -kernel "$OUT/vmlinuz" -initrd "$WORK/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init" </dev/null 2>&1 \
  | LC_ALL=C sed -u -E $'s/\r//g; s/\x1b(\\[[0-9;?]*[A-Za-z]|c)//g' | tee "$WORK/console.log"
qrc=${PIPESTATUS[0]}
set -e
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
mkdir -p "$OUT" && cp "$WORK/console.log" "$OUT/last-console.log"

marker="$(grep -a '^NETBED-VM-RESULT:' "$WORK/console.log" | tail -n 1 || true)"
if [[ "$qrc" == 124 || "$qrc" == 137 ]]; then
  log "TIMEOUT after ${TIMEOUT}s (qemu killed); ${marker:-no result marker}"
  exit 1
fi
if [[ "$marker" == "NETBED-VM-RESULT: PASS" ]]; then
  log "PASS in ${elapsed}s (console: $OUT/last-console.log)"
  exit 0
fi
log "FAIL in ${elapsed}s: ${marker:-no result marker (qemu exit $qrc)} (console: $OUT/last-console.log)"
exit 1
