#!/bin/bash
# Build a bootable x86-64 UEFI GPT disk image from Debian bookworm packages.
#   ESP (FAT32, systemd-boot) | root-a (ext4) | root-b (ext4, copy) | data (ext4)
# No mounting: rootfs via mmdebstrap (root mode, directory output), ext4 via
# mkfs.ext4 -d, FAT via mtools, partitions dd'ed into the image at offsets.
# Usage: ./build.sh [OUTDIR]     (default OUTDIR=./out)
set -euo pipefail
umask 022
W=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$W/out}")
CACHE=${CACHE:-$W/cache}          # persistent .deb cache (sync-in / sync-out)
ROOTFS=$OUT/rootfs
NICE="nice -n 10"
export LC_ALL=C.UTF-8
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1747699200}   # 2025-05-20 00:00 UTC
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH               # fixed mkfs.ext4 timestamps

SUITE=bookworm
PKGS=linux-image-amd64,systemd,systemd-sysv,udev,systemd-boot
# systemd-boot (+ its dep systemd-boot-efi) gives the EFI binary *and*
# systemd-bless-boot(-generator) for boot counting.

# Layout in MiB (GPT, 1 MiB aligned).  Total = last end + 1 MiB for backup GPT.
ESP_START=1;     ESP_SIZE=256
A_START=257;     A_SIZE=1024
B_START=1281;    B_SIZE=1024
D_START=2305;    D_SIZE=512
IMG_MIB=$((D_START + D_SIZE + 1))
# Fixed identifiers => reproducible image and known root=PARTUUID=...
DISK_GUID=6b1c3f36-58a4-4b8e-9f5e-000000000000
ESP_PUUID=6b1c3f36-58a4-4b8e-9f5e-000000000001
A_PUUID=6b1c3f36-58a4-4b8e-9f5e-00000000000a
B_PUUID=6b1c3f36-58a4-4b8e-9f5e-00000000000b
D_PUUID=6b1c3f36-58a4-4b8e-9f5e-00000000000d
A_FSUUID=0b3e4a1c-1111-4a2b-8c3d-00000000000a
B_FSUUID=0b3e4a1c-1111-4a2b-8c3d-00000000000b
D_FSUUID=0b3e4a1c-1111-4a2b-8c3d-00000000000d
ESP_VOLID=1ABC2DEF
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
ROOT_X86_64_TYPE=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709
LINUX_TYPE=0FC63DAF-8483-4772-8E79-3D69D8477DE4

T0=$(date +%s.%N)
ts() { awk -v a="$T0" -v b="$(date +%s.%N)" -v m="$*" 'BEGIN{printf "[%6.1fs] %s\n", b-a, m}'; }

mkdir -p "$OUT" "$CACHE"
rm -rf "$ROOTFS" "$OUT"/*.part "$OUT/disk.img"

############################################################################
ts "mmdebstrap $SUITE -> $ROOTFS"
# --skip=essential/unlink : keep the .debs of the essential stage in
#   /var/cache/apt/archives so sync-out can save them.
# setup-hook sync-in: seed the chroot's archive dir from $CACHE (apt then sees
#   the .debs, checks their hashes against the Packages index, and skips
#   downloading them).  customize-hook sync-out: save new .debs back.
#   (cleanup/apt/cache then empties the archive dir in the final rootfs.)
$NICE mmdebstrap --mode=root --variant=essential --format=directory \
  --include="$PKGS" \
  --skip=essential/unlink \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/partial' \
  --setup-hook="sync-in $CACHE /var/cache/apt/archives/" \
  --customize-hook="sync-out /var/cache/apt/archives $CACHE" \
  --customize-hook='echo imgproto > "$1/etc/hostname"; printf "127.0.0.1 localhost\n127.0.1.1 imgproto\n" > "$1/etc/hosts"' \
  --customize-hook='mkdir -p "$1/efi" "$1/data"
cat > "$1/etc/fstab" <<EOF
# / is mounted by the initramfs from root=PARTUUID=... (slot-specific), rw on cmdline
PARTLABEL=esp   /efi   vfat  umask=0077,nofail,x-systemd.device-timeout=10s  0 2
PARTLABEL=data  /data  ext4  defaults,nofail,x-systemd.device-timeout=10s  0 2
EOF' \
  --customize-hook='d="$1/etc/systemd/system/serial-getty@ttyS0.service.d"; mkdir -p "$d"
printf "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %%I \$TERM\n" > "$d/autologin.conf"' \
  --customize-hook='chroot "$1" dpkg-query -W -f "\${Package}\t\${Version}\n" > "$1/../packages.txt"' \
  "$SUITE" "$ROOTFS" \
  "deb http://deb.debian.org/debian $SUITE main" \
  "deb http://deb.debian.org/debian $SUITE-updates main" \
  "deb http://deb.debian.org/debian-security $SUITE-security main"
ts "rootfs done: $(du -sh --apparent-size "$ROOTFS" | cut -f1), $(wc -l < "$OUT/packages.txt") packages"

KVER=$(ls "$ROOTFS"/boot/ | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
[ -n "$KVER" ] || { echo "no kernel in rootfs" >&2; exit 1; }
ts "kernel $KVER"

############################################################################
ts "ESP (FAT32 via mtools)"
STAGE=$OUT/esp-stage; rm -rf "$STAGE"
mkdir -p "$STAGE"/EFI/BOOT "$STAGE"/EFI/systemd "$STAGE"/loader/entries "$STAGE"/slot-a "$STAGE"/slot-b
SDBOOT="$ROOTFS/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
cp "$SDBOOT" "$STAGE/EFI/BOOT/BOOTX64.EFI"
cp "$SDBOOT" "$STAGE/EFI/systemd/systemd-bootx64.efi"
for s in a b; do
  cp "$ROOTFS/boot/vmlinuz-$KVER" "$STAGE/slot-$s/vmlinuz"
  cp "$ROOTFS/boot/initrd.img-$KVER" "$STAGE/slot-$s/initrd.img"
done
cat > "$STAGE/loader/loader.conf" <<EOF
default slot-a*
timeout 0
editor no
EOF
# Boot counting: "+3" = 3 tries left. systemd-boot renames slot-a+3.conf ->
# slot-a+2-1.conf before booting it; systemd-bless-boot renames to slot-a.conf
# once boot-complete.target is reached. Entries at +0 are "bad" (sorted last).
mkentry() { # slot partuuid
  cat <<EOF
title      Debian bookworm (slot ${1^^})
sort-key   debian-$1
version    $KVER
linux      /slot-$1/vmlinuz
initrd     /slot-$1/initrd.img
options    root=PARTUUID=$2 rw console=ttyS0,115200 systemd.show_status=auto
EOF
}
mkentry a "$A_PUUID" > "$STAGE/loader/entries/slot-a+3.conf"
mkentry b "$B_PUUID" > "$STAGE/loader/entries/slot-b+3.conf"
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
truncate -s "${ESP_SIZE}M" "$OUT/esp.part"
mkfs.fat -F 32 -n ESP -i "$ESP_VOLID" --invariant "$OUT/esp.part" >/dev/null
export MTOOLS_SKIP_CHECK=1
( cd "$STAGE" && mcopy -i "$OUT/esp.part" -s -m -Q ./EFI ./loader ./slot-a ./slot-b ::/ )

############################################################################
ts "ext4 root-a / root-b / data (mkfs.ext4 -d)"
mkext4() { # file sizeMiB label fsuuid [srcdir]
  truncate -s "${2}M" "$1"
  $NICE mkfs.ext4 -q -F -L "$3" -U "$4" -E "hash_seed=$4,root_owner=0:0" \
    ${5:+-d "$5"} "$1"
}
mkext4 "$OUT/root-a.part" "$A_SIZE" root-a "$A_FSUUID" "$ROOTFS"
mkext4 "$OUT/root-b.part" "$B_SIZE" root-b "$B_FSUUID" "$ROOTFS"
mkext4 "$OUT/data.part"   "$D_SIZE" data   "$D_FSUUID"

############################################################################
ts "GPT disk image (sfdisk) + dd at offsets"
IMG=$OUT/disk.img
truncate -s "${IMG_MIB}M" "$IMG"
sfdisk -q --no-reread --no-tell-kernel "$IMG" <<EOF
label: gpt
label-id: $DISK_GUID
unit: sectors
first-lba: 2048
start=$((ESP_START*2048)), size=$((ESP_SIZE*2048)), type=$ESP_TYPE, uuid=$ESP_PUUID, name="esp"
start=$((A_START*2048)), size=$((A_SIZE*2048)), type=$ROOT_X86_64_TYPE, uuid=$A_PUUID, name="root-a"
start=$((B_START*2048)), size=$((B_SIZE*2048)), type=$ROOT_X86_64_TYPE, uuid=$B_PUUID, name="root-b"
start=$((D_START*2048)), size=$((D_SIZE*2048)), type=$LINUX_TYPE, uuid=$D_PUUID, name="data"
EOF
for p in esp:$ESP_START root-a:$A_START root-b:$B_START data:$D_START; do
  $NICE dd if="$OUT/${p%%:*}.part" of="$IMG" bs=1M seek="${p##*:}" conv=notrunc,sparse status=none
done
rm -f "$OUT"/*.part
rm -rf "$STAGE"
sfdisk -d "$IMG" > "$OUT/partitions.sfdisk"
ts "done: $IMG apparent=$(du -h --apparent-size "$IMG" | cut -f1) actual=$(du -h "$IMG" | cut -f1)"
