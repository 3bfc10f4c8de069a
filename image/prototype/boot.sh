#!/bin/bash
# Boot the image under qemu/KVM + OVMF, serial console only.
#   ./boot.sh [IMG]            interactive: serial+monitor on stdio (Ctrl-A x quits)
#   ./boot.sh --test [IMG]     non-interactive: wait for the autologin shell on
#                              ttyS0, run a few commands, power off, print timings
# KEEP_VARS=1 keeps the OVMF variable store between boots (default: fresh copy).
set -euo pipefail
W=$(cd "$(dirname "$0")" && pwd)
MODE=interactive
[ "${1:-}" = --test ] && { MODE=test; shift; }
IMG=$(realpath "${1:-$W/out/disk.img}")
VARS=$(dirname "$IMG")/OVMF_VARS.fd
if [ "${KEEP_VARS:-0}" != 1 ] || [ ! -f "$VARS" ]; then
  cp /usr/share/OVMF/OVMF_VARS_4M.fd "$VARS"
fi
QEMU=(qemu-system-x86_64 -enable-kvm -machine q35 -m 1024 -smp 2
  -nographic -no-reboot
  -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
  -drive if=pflash,format=raw,unit=1,file="$VARS"
  -drive file="$IMG",format=raw,if=virtio
  -nic none)
if [ $MODE = interactive ]; then
  exec nice -n 10 "${QEMU[@]}"
fi
# /usr/bin/python3 (Debian) has python3-pexpect from apt; pyenv's python3 may not.
exec /usr/bin/python3 "$W/drive.py" "$(dirname "$IMG")/serial.log" nice -n 10 "${QEMU[@]}"
