#!/bin/sh
# The VM's /init (PID 1 of an initramfs-only boot; see vm/run.sh).
# Mounts the pseudo filesystems, loads veth, sch_netem and sctp, runs the test that vm/run.sh
# packed (/netbed/test.sh), prints one result marker line and powers off.
#   NETBED-VM-RESULT: PASS
#   NETBED-VM-RESULT: FAIL rc=N
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /run /tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
exec </dev/console >/dev/console 2>&1

echo "netbed-vm: kernel $(uname -r), up $(cut -d' ' -f1 /proc/uptime)s"
[ -s "/lib/modules/$(uname -r)/modules.dep" ] || depmod -a
rc=0
for m in veth sch_netem sctp; do
  modprobe "$m" || { echo "netbed-vm: modprobe $m failed"; rc=1; }
done
ip link set lo up

if [ "$rc" -eq 0 ]; then
  if [ -x /netbed/test.sh ]; then
    /netbed/test.sh
    rc=$?
  else
    # trivial check: netem works on a veth pair
    ip link add t0 type veth peer name t1 && ip link set t0 up && ip link set t1 up \
      && tc qdisc add dev t0 root netem delay 10ms && tc qdisc show dev t0
    rc=$?
  fi
fi

echo "netbed-vm: done, up $(cut -d' ' -f1 /proc/uptime)s"
if [ "$rc" -eq 0 ]; then
  echo "NETBED-VM-RESULT: PASS"
else
  echo "NETBED-VM-RESULT: FAIL rc=$rc"
fi
sync
echo o >/proc/sysrq-trigger
sleep 30
