#!/bin/sh
# Runs INSIDE the make test-bluez guest (virtme-ng boots Debian's kernel with the host's filesystem as root,
# overlaid copy-on-write, as root): loads hci_vhci, starts a system D-Bus and bluetoothd, then runs pytest
# on tests/bluez with the project venv. Arguments are passed to pytest (or: --run CMD ARGS...). Exit status:
# pytest's (or CMD's).
set -eu
cd "$(dirname "$0")/../.."
LOG_DIR=${KINEFUSE_BLUEZ_LOGS:-/tmp/kinefuse-bluez}
mkdir -p "$LOG_DIR"

modprobe hci_vhci   # pulls in bluetooth; a controller appears when a test opens /dev/vhci
test -c /dev/vhci

# the system bus bluetoothd and bleak talk over
mkdir -p /run/dbus
rm -f /run/dbus/pid /run/dbus/system_bus_socket
dbus-daemon --system --fork --nopidfile

# bluetoothd as a distribution runs it (default plugins, /etc/bluetooth/main.conf: AutoEnable powers new
# adapters), with its debug log kept for when a test fails
/usr/libexec/bluetooth/bluetoothd --nodetach --debug >"$LOG_DIR/bluetoothd.log" 2>&1 &
BLUETOOTHD=$!
if command -v btmon >/dev/null; then
    btmon --write "$LOG_DIR/hci.btsnoop" >/dev/null 2>&1 &
fi
i=0
until dbus-send --system --print-reply --dest=org.bluez / org.freedesktop.DBus.ObjectManager.GetManagedObjects \
        >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 $BLUETOOTHD 2>/dev/null; then
        echo "bluetoothd did not come up on the system bus:" >&2
        cat "$LOG_DIR/bluetoothd.log" >&2
        exit 3
    fi
    sleep 0.1
done
echo "guest: $(uname -r), $(/usr/libexec/bluetooth/bluetoothd --version | sed 's/^/bluetoothd /'), bus and daemon up"

export KINEFUSE_BLUEZ_GUEST=1 PYTHONDONTWRITEBYTECODE=1  # the guest's view of the repository is read-only
status=0
if [ "${1:-}" = "--run" ]; then  # tools/bluez/guest.sh --run CMD...: another command in the same set-up
    shift
    "$@" || status=$?
else
    .venv/bin/python -m pytest -p no:cacheprovider tests/bluez "$@" || status=$?
fi
if ! kill -0 $BLUETOOTHD 2>/dev/null; then
    wait $BLUETOOTHD || echo "bluetoothd exited during the tests, status $?" >&2
fi
if [ $status -ne 0 ]; then
    echo "--- tail of bluetoothd's log ($LOG_DIR/bluetoothd.log) ---"
    tail -n 60 "$LOG_DIR/bluetoothd.log"
fi
exit $status
