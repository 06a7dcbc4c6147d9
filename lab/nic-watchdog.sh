#!/bin/sh
# Lab only (started on each lab dom0 by sanless_lab.start_nic_watchdog; not part of the product).
#
# Why: in CI (stop 38) hosta's virtio NIC stopped for good under QEMU TCG during a DRBD resync: the peer's
# PingAck stopped arriving, 280 s later the kernel's NETDEV WATCHDOG reported "transmit queue 0 timed out" every
# 5 s for 45 minutes, and every later test failed with "No route to host". virtio_net only logs a TX timeout; it
# never resets the device. This does what the driver does not: on a TX timeout counted by the kernel (its own
# verdict, so a busy dom0 never triggers it), it rebinds the NIC to its driver (a virtio device reset, fresh
# queues and interrupts) and puts the new eth0 back into xenbr0 with its MTU. A request file does the same on
# demand, so the lab test can prove the reset path.
set -u
NIC=eth0
BRIDGE=xenbr0
REQUEST=/run/sanless-lab-nic-reset     # sanless_lab.NIC_RESET_REQUEST
COUNTER=/sys/class/net/$NIC/queues/tx-0/tx_timeout

timeouts() { cat "$COUNTER" 2>/dev/null || echo 0; }

reset_nic() {
    dev=$(basename "$(readlink -f /sys/class/net/$NIC/device)")
    mtu=$(cat /sys/class/net/$NIC/mtu)
    echo "sanless-lab nic-watchdog: $1; resetting $NIC ($dev, mtu $mtu)" > /dev/kmsg
    echo "$dev" > /sys/bus/virtio/drivers/virtio_net/unbind
    echo "$dev" > /sys/bus/virtio/drivers/virtio_net/bind
    tries=0
    until [ -e /sys/class/net/$NIC ] || [ $tries -ge 50 ]; do sleep 0.2; tries=$((tries + 1)); done
    ip link set dev $NIC mtu "$mtu"
    ip link set dev $NIC master $BRIDGE
    ip link set dev $NIC up
    echo "sanless-lab nic-watchdog: $NIC back in $BRIDGE" > /dev/kmsg
}

last=$(timeouts)
while sleep 5; do
    if [ -e $REQUEST ]; then
        rm -f $REQUEST
        reset_nic "reset requested"
        last=$(timeouts)
        continue
    fi
    now=$(timeouts)
    if [ "$now" != "$last" ]; then
        reset_nic "tx timeout count $last -> $now"
        now=$(timeouts)     # a new netdev counts from 0
    fi
    last=$now
done
