#!/usr/bin/env bash
# Build (once) what vm/run.sh boots: Debian's cloud kernel and a minimal bookworm root filesystem
# with python3, iproute2, iptables, kmod, ethtool, the programs the integration suites run on the
# hosts (procps, iputils-ping, curl, netcat-openbsd, tcpdump for the router's captures) and the kernel's modules, packed as a gzipped cpio.
#
# Idempotent: everything is cached under build/vm/ (gitignored). A second run with nothing to do
# takes well under a second. The project's sources are NOT in this image: vm/run.sh appends them
# as a second cpio archive at every run, so a code change never needs a rebuild.
#
#   bash vm/build.sh            # build what is missing
#   NETBED_VM_REBUILD=1 bash vm/build.sh   # throw the cache away first
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${NETBED_VM_DIR:-$ROOT/build/vm}"
SUITE="${NETBED_VM_SUITE:-bookworm}"
PACKAGES="python3,iproute2,iptables,kmod,ethtool,procps,iputils-ping,curl,netcat-openbsd,tcpdump"

log() { printf 'vm/build: %s\n' "$*" >&2; }

if [[ "${NETBED_VM_REBUILD:-0}" == 1 ]]; then
  log "NETBED_VM_REBUILD=1: removing $OUT"
  rm -rf "$OUT"
fi
mkdir -p "$OUT"

# --- host tools -------------------------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v cpio >/dev/null || missing+=(cpio)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    log "need root to apt-get install ${missing[*]}"; exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- kernel -----------------------------------------------------------------------------------
# The cloud flavour: small, and its modules include sch_netem, sctp and veth.
KPKG="${NETBED_VM_KERNEL_PACKAGE:-}"
if [[ -z "$KPKG" ]]; then
  if [[ -s "$OUT/kernel.pkg" ]]; then
    KPKG="$(cat "$OUT/kernel.pkg")"
  else
    KPKG="$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
    if [[ -z "$KPKG" ]]; then
      log "cannot find linux-image-cloud-amd64's kernel package (apt-get update?)"; exit 1
    fi
  fi
fi
KDIR="$OUT/kernel/$KPKG"
if [[ ! -e "$KDIR/.done" ]]; then
  log "downloading $KPKG"
  rm -rf "$KDIR" && mkdir -p "$KDIR"
  (cd "$OUT/kernel" && rm -f "${KPKG}"_*.deb && apt-get download -qq -o APT::Sandbox::User=root "$KPKG")
  dpkg-deb -x "$OUT/kernel/${KPKG}"_*.deb "$KDIR"
  rm -f "$OUT/kernel/${KPKG}"_*.deb
  touch "$KDIR/.done"
fi
KVER="$(ls "$KDIR/lib/modules")"
VMLINUZ="$KDIR/boot/vmlinuz-$KVER"
[[ -f "$VMLINUZ" ]] || { log "no $VMLINUZ"; exit 1; }
ln -sfn "$VMLINUZ" "$OUT/vmlinuz"
echo "$KPKG" >"$OUT/kernel.pkg"

# --- root filesystem --------------------------------------------------------------------------
STAMP="$SUITE $PACKAGES $KPKG"
if [[ ! -s "$OUT/base.cpio.gz" || "$(cat "$OUT/base.stamp" 2>/dev/null)" != "$STAMP" ]]; then
  RFS="$OUT/rootfs"
  rm -rf "$RFS" "$OUT/base.cpio.gz" "$OUT/base.stamp"
  if [[ ! -s "$OUT/rootfs-$SUITE.tar" || "$(cat "$OUT/rootfs.stamp" 2>/dev/null)" != "$SUITE $PACKAGES" ]]; then
    log "mmdebstrap $SUITE (minbase + $PACKAGES)"
    mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      "$SUITE" "$OUT/rootfs-$SUITE.tar"
    echo "$SUITE $PACKAGES" >"$OUT/rootfs.stamp"
  fi
  log "assembling the root filesystem"
  mkdir -p "$RFS"
  tar -C "$RFS" -xf "$OUT/rootfs-$SUITE.tar"
  rm -rf "$RFS/var/cache/apt/"* "$RFS/var/lib/apt/lists/"*
  # modules: /lib is a symlink to usr/lib in bookworm
  mkdir -p "$RFS/usr/lib/modules"
  cp -a "$KDIR/lib/modules/$KVER" "$RFS/usr/lib/modules/"
  chroot "$RFS" /sbin/depmod -a "$KVER"
  install -m 0755 "$ROOT/vm/init.sh" "$RFS/init"
  log "packing base.cpio.gz"
  (cd "$RFS" && find . -mindepth 1 -print0 | LC_ALL=C sort -z \
     | cpio --null -o -H newc --quiet | gzip -1 >"$OUT/base.cpio.gz.tmp")
  mv "$OUT/base.cpio.gz.tmp" "$OUT/base.cpio.gz"
  rm -rf "$RFS"
  echo "$STAMP" >"$OUT/base.stamp"
fi
log "ready: $OUT/vmlinuz ($KPKG), $OUT/base.cpio.gz ($(du -h "$OUT/base.cpio.gz" | cut -f1))"
