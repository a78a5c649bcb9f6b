# The text of the unattended install script run by nerv-install.service on the
# installer ISO. Plain Nix (builtins only): the result is a string, so tests can
# evaluate it and run it against stub commands. The commands are found on PATH
# (the systemd unit sets `path`), never by store path.
#
# Order, and why:
#   1. pick the target disk: kernel parameter nerv.disk=, else `diskFile` (site.json's
#      "disk", written into the ISO), else /dev/sda; refuse when several candidate disks
#      are attached and none was named, or when the disk is not where the base system's
#      GRUB goes (`bootDisk`).
#   2. guard, before anything that writes: a volume group "nerv", a partition labelled
#      nerv-*, or a root file system holding the marker means "installed by us": log it and
#      power off without touching the disk. Any other data on the disk: refuse, unless the
#      kernel parameter nerv.wipe=1 says it may go.
#   3. partition (GPT: BIOS boot, ESP, LVM), format, mount, nixos-install the base
#      system built into the ISO (no network needed), drop per-machine identity (host
#      keys, machine-id), write the marker last, power off.
# On any failure the script exits non-zero and the VM stays up: powering off would look
# like success to whoever waits for the VM to stop.
{
  systemToplevel,
  bootDisk,
  layout ? import ./partitions.nix,
  diskFile ? "/etc/nerv/disk",
  cmdlineFile ? "/proc/cmdline",
  mountPoint ? "/mnt",
  liveMount ? "/iso",
  defaultDisk ? "/dev/sda",
}:
let
  vg = layout.lvm.vg;
  root = builtins.head layout.lvm.lvs;
  esp = builtins.elemAt layout.partitions 1;
  lvmPart = builtins.elemAt layout.partitions 2;
  rootDev = "/dev/${vg}/${root.name}";
  q = s: "'${s}'"; # the values above are fixed identifiers without quotes
  sgdiskArgs = builtins.concatStringsSep " " (map q layout.sgdiskArgs);
  espOptions = builtins.concatStringsSep "," esp.options;
in
''
  set -euo pipefail

  log() { echo "nerv-install: $*"; }
  # An install is already there: leave the disk alone and stop the VM.
  already_installed() {
    log "$*"
    log "not touching any disk; powering off"
    sync
    systemctl poweroff
    exit 0
  }
  # Something is wrong: leave the disk alone, stay up so the journal can be read.
  refuse() {
    log "REFUSED: $*"
    log "no disk was changed; the VM stays up (journalctl -u nerv-install)"
    exit 1
  }

  cmdline=()
  read -r -a cmdline < ${q cmdlineFile} || true
  kernel_arg() {
    local word
    for word in "''${cmdline[@]}"; do
      case "$word" in "$1="*) echo "''${word#*=}"; return 0 ;; esac
    done
    return 1
  }

  # 1. The target disk.
  udevadm settle || true
  explicit=0
  if disk=$(kernel_arg nerv.disk); then
    explicit=1
    origin="kernel parameter nerv.disk"
  elif [ -s ${q diskFile} ]; then
    disk=$(head -n 1 ${q diskFile})
    explicit=1
    origin=${q diskFile}
  else
    disk=${q defaultDisk}
    origin="the default"
  fi
  disk=$(readlink -m -- "$disk")
  log "target disk $disk (from $origin)"

  live=""
  if live_source=$(findmnt -nvo SOURCE ${q liveMount} 2>/dev/null); then
    live_source=$(readlink -m -- "$live_source")
    live=$(lsblk -ndpo PKNAME "$live_source" 2>/dev/null || true)
    [ -n "$live" ] || live=$live_source
  fi
  candidates=()
  while read -r name type ro; do
    if [ "$type" != disk ] || [ "$ro" != 0 ]; then continue; fi
    case "$name" in /dev/zram* | /dev/loop* | /dev/sr* | /dev/ram*) continue ;; esac
    [ "$name" = "$live" ] && continue
    candidates+=("$name")
  done < <(lsblk -dnpo NAME,TYPE,RO)
  log "candidate disks: ''${candidates[*]:-none}"

  if [ "''${#candidates[@]}" -gt 1 ] && [ "$explicit" = 0 ]; then
    refuse "''${#candidates[@]} candidate disks (''${candidates[*]}) and none named: boot with nerv.disk=/dev/... or set \"disk\" in site.json"
  fi
  found=0
  for candidate in "''${candidates[@]}"; do
    [ "$candidate" = "$disk" ] && found=1
  done
  [ "$found" = 1 ] || refuse "$disk is not a writable whole disk of this VM (candidates: ''${candidates[*]:-none})"
  boot_disk=$(readlink -m -- ${q bootDisk})
  [ "$disk" = "$boot_disk" ] || refuse "the base system installs GRUB on $boot_disk, not $disk: set \"disk\" in site.json to $disk and rebuild the ISO"

  # 2. Guard: never reinstall a disk that holds a system we installed.
  ours=""
  if vgs --noheadings -o vg_name ${q vg} >/dev/null 2>&1; then
    ours="volume group ${vg} exists"
    vgchange -ay ${q vg} >/dev/null 2>&1 || true
    if mount -o ro,noload ${q rootDev} ${q mountPoint} 2>/dev/null; then
      if [ -e ${q "${mountPoint}${layout.marker}"} ]; then
        ours="$ours and ${root.label} holds ${layout.marker}: $(head -c 300 ${q "${mountPoint}${layout.marker}"})"
      fi
      umount ${q mountPoint} || true
    fi
  elif labels=$(lsblk -nro PARTLABEL "$disk" 2>/dev/null) && grep -q '^nerv-' <<<"$labels"; then
    ours="$disk has partitions labelled nerv-* (an earlier install, maybe unfinished)"
  fi
  if [ -n "$ours" ]; then
    already_installed "$disk already holds a nerv install: $ours"
  fi

  probe=0
  blkid -p "$disk" >/dev/null 2>&1 || probe=$?
  if [ "$probe" != 2 ] || [ "$(lsblk -nro NAME "$disk" | wc -l)" -gt 1 ]; then
    if [ "$(kernel_arg nerv.wipe || true)" = 1 ]; then
      log "$disk holds other data; wiping it as nerv.wipe=1 asks"
    else
      refuse "$disk holds a partition table or file system that is not a nerv install: boot with nerv.wipe=1 to wipe it"
    fi
  fi

  # 3. Install.
  part() {
    case "$1" in *[0-9]) echo "$1p$2" ;; *) echo "$1$2" ;; esac
  }
  esp=$(part "$disk" ${toString esp.number})
  pv=$(part "$disk" ${toString lvmPart.number})

  log "partitioning $disk"
  wipefs -a "$disk"
  sgdisk --zap-all "$disk"
  sgdisk ${sgdiskArgs} "$disk"
  udevadm settle

  log "formatting"
  wipefs -a "$esp" "$pv"
  mkfs.fat -F 32 -n ${q esp.label} "$esp"
  pvcreate -ff -y "$pv"
  vgcreate ${q vg} "$pv"
  lvcreate -y -l ${q root.size} -n ${q root.name} ${q vg}
  udevadm settle
  mkfs.${root.format} -F -L ${q root.label} ${q rootDev}

  log "mounting"
  mount ${q rootDev} ${q mountPoint}
  mkdir -p ${q "${mountPoint}${esp.mountpoint}"}
  mount -o ${q espOptions} "$esp" ${q "${mountPoint}${esp.mountpoint}"}

  log "installing ${systemToplevel}"
  nixos-install --no-root-passwd --no-channel-copy --root ${q mountPoint} --system ${q systemToplevel}

  # Every clone of the template makes its own SSH host keys and machine-id at first boot.
  rm -f ${q mountPoint}/etc/ssh/ssh_host_* ${q "${mountPoint}/etc/machine-id"} ${q "${mountPoint}/var/lib/systemd/random-seed"}

  echo "installed $(date -u +%Y-%m-%dT%H:%M:%SZ) on $disk: ${systemToplevel}" > ${q "${mountPoint}${layout.marker}"}
  sync
  umount -R ${q mountPoint}
  vgchange -an ${q vg} || true
  log "installed; powering off"
  systemctl poweroff
''
