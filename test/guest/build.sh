#!/usr/bin/env bash
# Builds vmnet's test guest from Debian packages, without root:
#   vmlinuz        Debian's cloud kernel (linux-image-cloud-amd64, resolved to its versioned package)
#   initramfs.gz   newc cpio: busybox-static, the virtio-net modules, test/guest/init
#   disk.raw       FAT image booted by SeaBIOS through syslinux (same kernel + initramfs)
#   disk.qcow2     the same disk converted by qemu-img
# Output goes to $VMNET_GUEST_DIR (default: build/guest in the repository) and
# is cached: a rebuild happens only when the kernel package, busybox or the
# guest's own files change.
# Needs: apt-get (to download the kernel .deb), dpkg-deb, cpio, gzip,
# busybox-static, syslinux + syslinux-common + mtools + dosfstools, qemu-utils.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${VMNET_GUEST_DIR:-$repo/build/guest}"
mkdir -p "$out"

die() { echo "guest build: $*" >&2; exit 1; }
for tool in apt-cache apt-get dpkg-deb cpio gzip mkfs.vfat syslinux mcopy qemu-img sha256sum; do
  command -v "$tool" >/dev/null || die "missing '$tool' (see the README's install command)"
done
busybox=/bin/busybox
[ -x "$busybox" ] && "$busybox" --list | grep -qx udhcpc || die "busybox-static is not installed (apt-get install busybox-static)"

kpkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$kpkg" ] || die "cannot resolve linux-image-cloud-amd64 (run apt-get update first)"
kver="${kpkg#linux-image-}"
modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
# Copied, never loaded by default: the ACPI power button and the input event device busybox acpid
# reads (/init loads them with vmnet.acpi=1), and virtio_blk for tests that write to their disk
# (insmod /lib/modules/virtio_blk.ko gives /dev/vda).
acpi_modules="evdev button virtio_blk"

key="$( { echo "$kpkg"; sha256sum "$busybox" "$here/init" "$here/udhcpc.script" "$here/build.sh"; echo "$modules $acpi_modules"; } | sha256sum | cut -c1-16)"
if [ -f "$out/key" ] && [ "$(cat "$out/key")" = "$key" ] && [ -f "$out/disk.qcow2" ]; then
  echo "guest build: cached in $out ($kpkg)"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "guest build: downloading $kpkg"
deb="$(ls "$out"/"$kpkg"_*.deb 2>/dev/null | head -1 || true)"
if [ -z "$deb" ]; then
  (cd "$work" && apt-get download -q "$kpkg" 2>&1 | grep -v 'unsandboxed' || true)
  deb="$(ls "$work"/"$kpkg"_*.deb 2>/dev/null | head -1 || true)"
  [ -n "$deb" ] || die "apt-get download $kpkg failed"
  rm -f "$out"/linux-image-*.deb
  cp "$deb" "$out/"
  deb="$out/$(basename "$deb")"
fi
dpkg-deb -x "$deb" "$work/kernel"
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"

echo "guest build: initramfs"
root="$work/root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,lib/modules,var/www,root}
cp "$busybox" "$root/bin/busybox"
for app in $("$busybox" --list); do
  [ "$app" = busybox ] || ln -sf busybox "$root/bin/$app"
done
for m in $modules $acpi_modules; do
  ko="$(find "$work/kernel/lib/modules/$kver" -name "$m.ko" | head -1)"
  [ -n "$ko" ] || die "module $m.ko not found in $kpkg"
  cp "$ko" "$root/lib/modules/"
done
install -m 0755 "$here/init" "$root/init"
install -m 0755 "$here/udhcpc.script" "$root/etc/udhcpc.script"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9 > "$work/initramfs.gz"

echo "guest build: bootable disk (FAT + syslinux)"
cat > "$work/syslinux.cfg" <<CFG
DEFAULT vmnet
PROMPT 0
TIMEOUT 0
LABEL vmnet
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check
CFG
truncate -s 48M "$work/disk.raw"
mkfs.vfat -n VMNET "$work/disk.raw" >/dev/null
syslinux --install "$work/disk.raw"
mcopy -i "$work/disk.raw" "$work/vmlinuz" ::vmlinuz
mcopy -i "$work/disk.raw" "$work/initramfs.gz" ::initrd.gz
mcopy -i "$work/disk.raw" "$work/syslinux.cfg" ::syslinux.cfg
qemu-img convert -q -f raw -O qcow2 "$work/disk.raw" "$work/disk.qcow2"

for f in vmlinuz initramfs.gz disk.raw disk.qcow2; do mv "$work/$f" "$out/$f"; done
cat > "$out/manifest.json" <<JSON
{ "kernelPackage": "$kpkg", "kernelVersion": "$kver", "append": "console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check" }
JSON
echo "$key" > "$out/key"
echo "guest build: done in $out ($kpkg)"
