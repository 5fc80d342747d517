#!/bin/sh
# make test-bluez: boots Debian's kernel in QEMU with virtme-ng (the host's filesystem as the guest's root,
# read-only with copy-on-write overlays) and runs tools/bluez/guest.sh there. Arguments go to pytest.
# KVM is used when it works; otherwise (or with KINEFUSE_BLUEZ_KVM=0) QEMU emulates the CPU (TCG), slowly.
set -eu
cd "$(dirname "$0")/../.."
KERNEL=${KINEFUSE_BLUEZ_KERNEL:-$(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -n 1)}
test -n "$KERNEL" && test -f "$KERNEL" || { echo "no Debian kernel in /boot (apt-get install linux-image-amd64)" >&2; exit 2; }
test -d "/lib/modules/${KERNEL#/boot/vmlinuz-}" || { echo "no modules for $KERNEL" >&2; exit 2; }
LOGS=$PWD/build/bluez-logs
rm -rf "$LOGS" && mkdir -p "$LOGS"
ACCEL=--disable-kvm
# nested KVM (e.g. inside a Firecracker VM) can hang the guest at boot: try it only when asked
[ "${KINEFUSE_BLUEZ_KVM:-0}" = 1 ] && [ -w /dev/kvm ] && ACCEL=
PATH=$PWD/.venv/bin:$PATH
export PATH
start=$(date +%s)
status=0
# --force-9p: virtme-ng's virtiofsd root needs a working virtiofsd; 9p always works
vng $ACCEL --force-9p --run "$KERNEL" --cpus 2 --memory 2G --rwdir "$LOGS" \
    --exec "KINEFUSE_BLUEZ_LOGS=$LOGS tools/bluez/guest.sh $*" || status=$?
echo "make test-bluez: guest exit status $status after $(( $(date +%s) - start )) s; logs (bluetoothd, btsnoop) in $LOGS"
exit $status
