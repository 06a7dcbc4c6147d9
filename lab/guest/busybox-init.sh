#!/bin/busybox sh
# init of the sanless test domU (busybox initramfs, PV). Console protocol, one line each:
#   SANLESS-GUEST up <kernel>              booted
#   SANLESS-PATTERN written                 first boot on this disk: pattern written
#   SANLESS-PATTERN sha256=<hex>            checksum of the pattern region (first PATTERN_MIB MiB)
#   SANLESS-HB <n> <unix time> <uptime>     heartbeat, after a synced write to the disk; busybox date has
#                                           whole seconds only, the guest's uptime has 1/100 s
#   SANLESS-CHECK <n> sha256=<hex>          pattern re-read every 15 beats
# Knobs on the guest kernel command line: sanless.pattern_mib=N (default 16), sanless.hb=SEC.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
PATTERN_MIB=16; HB=1
for w in $(cat /proc/cmdline); do
  case "$w" in
    sanless.pattern_mib=*) PATTERN_MIB=${w#*=} ;;
    sanless.hb=*) HB=${w#*=} ;;
  esac
done
insmod /lib/modules/xen-blkfront.ko 2>/dev/null
i=0; while [ ! -b /dev/xvda ] && [ $i -lt 20 ]; do sleep 0.2; i=$((i+1)); done
echo "SANLESS-GUEST up $(uname -r)"
DISK=""; [ -b /dev/xvda ] && DISK=/dev/xvda
# layout on the disk: [0, PATTERN_MIB) pattern; marker block at PATTERN_MIB; heartbeat block after it
MARK_AT=$PATTERN_MIB; HB_AT=$((PATTERN_MIB + 1))
pattern_sum() { dd if=$DISK bs=1M count=$PATTERN_MIB 2>/dev/null | sha256sum | cut -d' ' -f1; }
if [ -n "$DISK" ]; then
  WANT="SANLESS-PATTERN-V1-$PATTERN_MIB"
  # exactly the marker's bytes: what follows it in its block is whatever the LV held before (a recycled extent)
  MARK=$(dd if=$DISK bs=1M skip=$MARK_AT count=1 2>/dev/null | head -c ${#WANT})
  if [ "$MARK" != "$WANT" ]; then
    dd if=/dev/urandom of=$DISK bs=1M count=$PATTERN_MIB conv=fsync 2>/dev/null
    printf '%s' "$WANT" | dd of=$DISK bs=1M seek=$MARK_AT conv=fsync 2>/dev/null
    echo "SANLESS-PATTERN written"
  fi
  echo "SANLESS-PATTERN sha256=$(pattern_sum)"
fi
n=0
while true; do
  n=$((n+1))
  if [ -n "$DISK" ]; then
    printf 'SANLESS-HB-%08d' $n | dd of=$DISK bs=4k seek=$((HB_AT * 256)) conv=fsync 2>/dev/null
  fi
  read -r up _idle < /proc/uptime
  echo "SANLESS-HB $n $(date +%s) $up"
  if [ -n "$DISK" ] && [ $((n % 15)) -eq 0 ]; then
    echo "SANLESS-CHECK $n sha256=$(pattern_sum)"
  fi
  sleep "$HB"
done
