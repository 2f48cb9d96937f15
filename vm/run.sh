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
#   NETBED_VM_TEST=suites bash vm/run.sh     # the integration suites on a netns testbed whose router
#                                            # uses the kernel backend (make test-kernel-suites);
#                                            # extra arguments go to pytest (default: SUITES below)
#
# The suites mode also packs the harness (harness/netbed, services/agent), tests/integration,
# pyproject.toml (pytest's configuration) and the harness's pure-Python dependencies, copied
# from the checkout's .venv (`make venv`; its Python is 3.11 as Debian bookworm's in the VM, so
# the few compiled modules among them load there too): see SITE_PACKAGES.
#
# Environment: NETBED_VM_ACCEL=tcg|kvm (default tcg: software emulation, what CI machines have),
# NETBED_VM_TIMEOUT=seconds (default 110; 1500 for suites), NETBED_VM_MEMORY=MiB (default 2048;
# 3072 for suites), NETBED_VM_DIR (default build/vm).
# Exits 0 only when the VM printed "NETBED-VM-RESULT: PASS".
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${NETBED_VM_DIR:-$ROOT/build/vm}"
MODE="${NETBED_VM_TEST:-fidelity}"
if [[ "$MODE" == suites ]]; then
  TIMEOUT="${NETBED_VM_TIMEOUT:-1500}"; MEMORY="${NETBED_VM_MEMORY:-3072}"
else
  TIMEOUT="${NETBED_VM_TIMEOUT:-110}"; MEMORY="${NETBED_VM_MEMORY:-2048}"
fi
ACCEL="${NETBED_VM_ACCEL:-tcg}"
# The suites the VM runs by default (tests/integration modules): the conformance suites (every
# module with property markers), the impairment fidelity suite, and the testbed's own checks.
SUITES=(tests/integration/test_datagram.py tests/integration/test_stream.py tests/integration/test_seqpacket.py
        tests/integration/test_ports.py tests/integration/test_raw.py tests/integration/test_impairment.py
        tests/integration/test_markers.py tests/integration/test_testbed.py tests/integration/test_capture.py)
# Left out of the default VM run (deselected, and listed in the run's output): tests whose senders
# and receivers must keep up with 1,000-20,000 datagrams/s, or whose timing tolerances are
# sub-millisecond. The agents are Python processes; under software emulation (TCG) a sender
# manages about 450 datagrams/s (measured: "sent 5944 of 10072 messages before the 13.3 s
# timeout") and a receiver that falls behind overflows its buffer (counted as loss) or delays
# its timestamps (counted as delay). Their failures there measure the emulator, not the router.
# The kernel backend's loss, duplicate, corrupt, reorder, delay, jitter, rate and slot fidelity
# is checked in the same VM by vm/kernel_fidelity.py (make test-kernel-netem), with traffic sized
# for it; on a machine with KVM (NETBED_VM_ACCEL=kvm) or natively, pass them by name in PYTEST_ARGS.
RATE_BOUND=(tests/integration/test_datagram.py::test_loss_rate_within_confidence_interval
            tests/integration/test_datagram.py::test_duplicates_arrive
            tests/integration/test_datagram.py::test_corruption_discarded_by_checksum
            tests/integration/test_impairment.py::test_clean_path_loses_nothing
            tests/integration/test_impairment.py::test_delay_median_matches
            tests/integration/test_impairment.py::test_jitter_stdev_matches
            tests/integration/test_impairment.py::test_corrupt_rate_in_confidence_interval
            tests/integration/test_impairment.py::test_reorder_sends_a_fraction_ahead
            tests/integration/test_impairment.py::test_reorder_gap_is_exact
            tests/integration/test_impairment.py::test_gilbert_elliott_bursts_match_the_model
            tests/integration/test_impairment.py::test_slot_releases_packets_in_bursts
            tests/integration/test_impairment.py::test_ecn_marks_instead_of_dropping
            tests/integration/test_impairment.py::test_clear_mid_traffic_loses_nothing
            tests/integration/test_impairment.py::test_one_direction_leaves_the_other_untouched)
# (the last: 2000 datagrams at 5000/s each way; in a CI run the receiver's overflow under
# emulation added its losses to netem's 50%, 50.7% against a 99% interval that excludes it)
# The harness's runtime dependencies (pyproject.toml), and theirs, by top-level module name.
SITE_PACKAGES=(pytest _pytest py.py pluggy iniconfig packaging pygments docker requests urllib3 idna certifi
               charset_normalizer tenacity pytest_docker attr attrs yaml _yaml typing_extensions.py)
# ... and their distributions' metadata (pytest asks pluggy's version through importlib.metadata).
DISTRIBUTIONS=(pytest pluggy iniconfig packaging pygments docker requests urllib3 idna certifi charset_normalizer
               tenacity pytest_docker attrs pyyaml typing_extensions)

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
if [[ "$MODE" == suites ]]; then
  PY="$ROOT/.venv/bin/python"
  [[ -x "$PY" ]] || { log "no $PY: run \`make venv\` first (the suites' dependencies are copied from it)"; exit 1; }
  SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  mkdir -p "$OV/netbed/site" "$OV/netbed/tests"
  for m in "${SITE_PACKAGES[@]}"; do
    [[ -e "$SITE/$m" ]] || { log "$SITE has no $m (make venv?)"; exit 1; }
    cp -r "$SITE/$m" "$OV/netbed/site/"
  done
  for d in "${DISTRIBUTIONS[@]}"; do
    found=("$SITE/$d"-*.dist-info)
    [[ -d "${found[0]}" ]] || { log "$SITE has no $d-*.dist-info (make venv?)"; exit 1; }
    cp -r "${found[@]}" "$OV/netbed/site/"
  done
  cp -r "$ROOT/harness/netbed" "$OV/netbed/lib/netbed"
  cp -r "$ROOT/services/agent/netbed_agent" "$OV/netbed/lib/netbed_agent"
  cp -r "$ROOT/tests/integration" "$OV/netbed/tests/integration"
  cp "$ROOT/pyproject.toml" "$OV/netbed/"
fi
find "$OV" -name __pycache__ -prune -exec rm -rf {} +
if [[ -n "${NETBED_VM_SCRIPT:-}" ]]; then
  install -m 0755 "$NETBED_VM_SCRIPT" "$OV/netbed/test.sh"
elif [[ "$MODE" == suites ]]; then
  if ((! $#)); then
    set -- "${SUITES[@]}"
    for t in "${RATE_BOUND[@]}"; do set -- "$@" --deselect "$t"; done
    log "default suites; left out under emulation (see RATE_BOUND in vm/run.sh): ${RATE_BOUND[*]##*::}"
  fi
  {
    echo '#!/bin/sh'
    echo '# Plugins are not auto-loaded (the copy has no netbed entry point): ours is named.'
    echo '# NETBED_BACKEND=kernel: the router must run the kernel backend here; if it cannot, it fails naming why.'
    echo 'cd /netbed && PYTHONPATH=/netbed/lib:/netbed/site PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 NETBED_BACKEND=kernel \'
    echo '  exec python3 -m pytest -p netbed.pytest_plugin -p no:cacheprovider --netbed-hosts netns \'
    echo '  -o addopts=-ra --durations=15 \'
    for a in "$@"; do printf "  '%s' \\\\\n" "${a//\'/\'\\\'\'}"; done
    echo ''
  } >"$OV/netbed/test.sh"
  chmod 0755 "$OV/netbed/test.sh"
elif [[ "$MODE" != trivial ]]; then
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
timeout --kill-after=5 "$TIMEOUT" qemu-system-x86_64 "${accel[@]}" -machine q35 "${cpu[@]}" -m "$MEMORY" -smp 2 \
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
