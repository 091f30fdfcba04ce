#!/usr/bin/env bash
# Builds the tests' stand-in for Debian 12's genericcloud image (debian-12-genericcloud-amd64.qcow2),
# as root, from Debian packages:
#   disk.qcow2     2 GiB virtual, compressed: an MBR disk that SeaBIOS boots on its own (no --kernel):
#                  p1 FAT (syslinux, the kernel and initramfs), p2 ext4 root made by mke2fs -d
#   manifest.json  what is in it (kernel, cloud-init, partition UUIDs, sizes, build time)
#   packages.txt   every installed package and version (dpkg-query)
# Like the real image it has cloud-init (NoCloud among its datasources: a nocloud-net seed named
# by the SMBIOS serial, or a CIDATA disk), OpenSSH, sudo, netplan + systemd-networkd (DHCP) +
# systemd-resolved, the cloud kernel, and no password, no user and no key: root is locked, the
# SSH host keys are made at first boot. What differs from the real image is listed in
# the README's "The cloud image stand-in".
#
# Output goes to $VMNET_CLOUD_IMAGE_DIR (default: build/cloud-image in the repository) and is
# cached: a rebuild happens only when this script, the package list or the mirror/suite change.
# Downloaded .debs are kept in $VMNET_CLOUD_IMAGE_DIR/apt-cache (debootstrap --cache-dir), so a
# rebuild downloads only what changed. $VMNET_DEBIAN_MIRROR picks the mirror.
# Needs: root (debootstrap chroots), debootstrap, fdisk (sfdisk), dosfstools, mtools, syslinux +
# syslinux-common, e2fsprogs (mke2fs -d), qemu-utils.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${VMNET_CLOUD_IMAGE_DIR:-$repo/build/cloud-image}"
mirror="${VMNET_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
disk_mib=2048   # Debian 12 genericcloud's virtual size
boot_start=2048 # sectors: p1 (FAT, syslinux) from 1 MiB ...
root_start=262144 # ... to 128 MiB, where p2 (the root, grown to the disk's end by growroot) starts, as the real image's p1 does

die() { echo "cloud-image build: $*" >&2; exit 1; }
for tool in debootstrap chroot sfdisk mkfs.fat mcopy syslinux mke2fs qemu-img sha256sum; do
  command -v "$tool" >/dev/null || die "missing '$tool' (see the README's install command)"
done
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$mbr" ] || die "missing $mbr (apt-get install syslinux-common)"

packages="$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages" | tr -s ' \n' ',' | sed 's/,$//')"
key="$( { echo "$suite $mirror $disk_mib"; sha256sum "$here/build.sh" "$here/packages"; } | sha256sum | cut -c1-16)"
if [ -f "$out/key" ] && [ "$(cat "$out/key")" = "$key" ] && [ -f "$out/disk.qcow2" ]; then
  echo "cloud-image build: cached in $out"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "needs root (debootstrap builds the system in a chroot); run it as root, as CI does"

mkdir -p "$out" "$out/apt-cache"
work="$(mktemp -d "$out/.work.XXXXXX")"
root="$work/root"
unmount_all() { # whatever debootstrap left mounted under the tree when it failed
  findmnt -rn -o TARGET | awk -v p="$root/" 'index($0, p) == 1' | sort -r | while read -r m; do umount -l "$m" || true; done
}
trap 'unmount_all; rm -rf --one-file-system "$work"' EXIT
start=$SECONDS

echo "cloud-image build: debootstrap $suite from $mirror"
debootstrap --variant=minbase --include="$packages" --cache-dir="$out/apt-cache" \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
unmount_all
bootstrap_s=$((SECONDS - start))

kver="$(basename "$(ls -d "$root"/lib/modules/*-cloud-amd64 | head -1)")"
[ -f "$root/boot/vmlinuz-$kver" ] && [ -f "$root/boot/initrd.img-$kver" ] || die "no kernel or initramfs for $kver in /boot"

# The initramfs must find the root on a virtio disk: virtio-pci, virtio-blk and ext4 as modules in
# it or built into the kernel (virtio-net too, though udev loads it after the switch to the root).
initrd_list="$(chroot "$root" lsinitramfs "/boot/initrd.img-$kver")"
for m in virtio_pci virtio_blk ext4 virtio_net; do
  grep -q "/$m\.ko" <<<"$initrd_list" || grep -q "/$m\.ko" "$root/lib/modules/$kver/modules.builtin" ||
    die "$m is neither in the initramfs nor built into $kver"
done

echo "cloud-image build: configuring"
fsuuid="$(cat /proc/sys/kernel/random/uuid)"
diskid="$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
root_partuuid="$diskid-02"
cmdline="root=PARTUUID=$root_partuuid ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0"

# As debian-cloud-images does for bookworm (files/etc/fstab/AMD64, cloud.cfg.d/01_debian_cloud.cfg,
# scripts/DEBIAN/11-misc, scripts/SYSTEM_BOOT/20-enable-systemd-*): the root by PARTUUID, the
# default user "debian" (created only when user-data asks for the default user), no SSH passwords.
cat > "$root/etc/fstab" <<EOF
PARTUUID=$root_partuuid / ext4 rw,discard,errors=remount-ro,x-systemd.growfs 0 1
EOF
cat > "$root/etc/cloud/cloud.cfg.d/01_debian_cloud.cfg" <<'EOF'
apt:
  generate_mirrorlists: true

system_info:
  default_user:
    name: debian
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    lock_passwd: True
    gecos: Debian
    groups: [adm, audio, cdrom, dialout, dip, floppy, plugdev, sudo, video]
EOF
cat > "$root/etc/ssh/sshd_config.d/60-debian-cloud.conf" <<'EOF'
PasswordAuthentication no
ClientAliveInterval 120
EOF
cat > "$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
rm -f "$root/etc/apt/sources.list"
printf 'LANG=C.UTF-8\n' > "$root/etc/default/locale"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' > "$root/etc/hosts"
chroot "$root" systemctl enable --quiet systemd-networkd.service systemd-resolved.service
ln -sf /run/systemd/resolve/resolv.conf "$root/etc/resolv.conf"
chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' > "$work/packages.txt"
cloud_init_version="$(awk '$1 == "cloud-init" {print $2}' "$work/packages.txt")"

# Nothing of the build host or of this build's instance (debian-cloud-images scripts/LAST/10-cleanup):
# no host keys (cloud-init makes them), an empty machine-id and hostname, no apt lists or logs.
for d in dev proc run sys tmp var/tmp var/cache/apt var/lib/apt/lists; do
  find "$root/$d" -mindepth 1 -depth -delete
done
rm -f "$root"/etc/ssh/ssh_host_* "$root/var/lib/dbus/machine-id" "$root/var/lib/systemd/random-seed" "$root/etc/mailname"
rm -rf "$root/var/log/apt" "$root"/var/log/{alternatives,bootstrap,dpkg}.log
: > "$root/etc/machine-id"
: > "$root/etc/hostname"
: > "$root/var/lib/dpkg/available"

# No password, no user, no key inside.
unlocked="$(awk -F: '$2 !~ /^[*!]/ {print $1}' "$root/etc/shadow")"
[ -z "$unlocked" ] || die "accounts with a usable password: $unlocked"
users="$(awk -F: '$3 >= 1000 && $3 < 65534 {print $1}' "$root/etc/passwd")"
[ -z "$users" ] || die "unexpected users: $users"
keys="$(find "$root" -xdev -path "$root/usr/share" -prune -o -type f \( -name 'authorized_keys*' -o -name 'ssh_host_*key*' -o -name 'id_rsa*' -o -name 'id_ed25519*' -o -name 'id_ecdsa*' \) -print)"
[ -z "$keys" ] || die "keys inside the image: $keys"
# NoCloud among cloud-init's datasources: Debian 12 names no datasource_list in /etc/cloud, so
# cloud-init's built-in list applies (NoCloud first; ds-identify keeps those it finds).
if grep -rqs '^[[:space:]]*datasource_list' "$root/etc/cloud/cloud.cfg" "$root/etc/cloud/cloud.cfg.d/"; then
  grep -rhs '^[[:space:]]*datasource_list' "$root/etc/cloud/cloud.cfg" "$root/etc/cloud/cloud.cfg.d/" | grep -q NoCloud
else
  grep -q '"NoCloud"' "$root"/usr/lib/python3/dist-packages/cloudinit/settings.py
fi || die "NoCloud is not among cloud-init's datasources"

echo "cloud-image build: disk"
disk="$work/disk.raw"
boot_sectors=$((root_start - boot_start))
truncate -s "${disk_mib}M" "$disk"
sfdisk -q "$disk" <<EOF
label: dos
label-id: 0x$diskid
start=$boot_start, size=$boot_sectors, type=e, bootable
start=$root_start, type=83
EOF
# (mkfs.fat warns that the file is larger than the file system it was asked for: that is the point)
mkfs.fat -F 16 -n BOOT --offset "$boot_start" "$disk" $((boot_sectors / 2)) 2>&1 >/dev/null | { grep -v 'block count mismatch' >&2 || true; }
cat > "$work/syslinux.cfg" <<EOF
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND $cmdline
EOF
mcopy -i "$disk@@$((boot_start * 512))" "$root/boot/vmlinuz-$kver" ::vmlinuz
mcopy -i "$disk@@$((boot_start * 512))" "$root/boot/initrd.img-$kver" ::initrd.img
mcopy -i "$disk@@$((boot_start * 512))" "$work/syslinux.cfg" ::syslinux.cfg
syslinux --install --offset $((boot_start * 512)) "$disk"
dd if="$mbr" of="$disk" bs=440 count=1 conv=notrunc status=none
root_kib=$(( (disk_mib * 2048 - root_start) / 2 ))
mke2fs -q -t ext4 -L debian-root -U "$fsuuid" -d "$root" -E offset=$((root_start * 512)) "$disk" "${root_kib}k"
# Compressed, as debian-cloud-images converts its qcow2 images (qemu-img convert -c -o compat=1.1).
qemu-img convert -q -c -f raw -O qcow2 -o compat=1.1 "$disk" "$work/disk.qcow2"

build_s=$((SECONDS - start))
qcow2_bytes="$(stat -c %s "$work/disk.qcow2")"
used_kib="$(du -sk --apparent-size "$root" | cut -f1)"
cat > "$work/manifest.json" <<JSON
{
  "suite": "$suite",
  "kernelVersion": "$kver",
  "cloudInit": "$cloud_init_version",
  "cmdline": "$cmdline",
  "rootPartuuid": "$root_partuuid",
  "rootFsUuid": "$fsuuid",
  "virtualBytes": $((disk_mib * 1048576)),
  "qcow2Bytes": $qcow2_bytes,
  "rootTreeKiB": $used_kib,
  "debootstrapSeconds": $bootstrap_s,
  "buildSeconds": $build_s
}
JSON
for f in disk.qcow2 manifest.json packages.txt; do mv "$work/$f" "$out/$f"; done
echo "$key" > "$out/key"
echo "cloud-image build: done in $out in ${build_s}s (debootstrap ${bootstrap_s}s), qcow2 $((qcow2_bytes / 1048576)) MiB, kernel $kver, cloud-init $cloud_init_version"
