#!/usr/bin/env bash
# Debian packages the installer and its lab need on the control machine (Debian 12). Idempotent,
# and a no-op in well under a second when everything is present (one dpkg-query call).
# Packages must not start daemons while installing (no systemd here): policy-rc.d says no.
# Every failure names what failed and the command to run by hand; the exit status is non-zero.
set -uo pipefail
packages=(
  python3-venv python3-pip python3-wheel   # the venv, and `pip wheel` for the lab's Patroni wheelhouse
  podman crun conmon                       # container CLI inside lab hosts (and lab image builds)
  docker.io                                # `lab up --engine docker`: a dockerd in each lab host, as on the servers
  debootstrap debian-archive-keyring       # lab images are built from Debian packages
  openssh-server openssh-client            # one sshd per lab host; ssh/ssh-keygen on the machine
  iproute2 util-linux procps psmisc        # ip netns / veth / bridge, unshare, nsenter, ps, pkill
  nftables                                 # `lab isolate`: a packet filter inside one lab host
  tini                                     # PID 1 of every lab host: reaps orphans
  haproxy socat                            # the lab's load-balancer hosts; admin-socket queries
  xfsprogs                                 # mkfs.xfs on the lab hosts' volumes (loop devices)
  prometheus prometheus-alertmanager       # promtool, amtool: make test checks the rendered rules and configuration
  ca-certificates
)

fail() {
  echo "setup-machine: $1" >&2
  [ $# -lt 2 ] || echo "  fix: $2" >&2
  exit 1
}

# Packages dpkg knows as installed. dpkg-query exits 1 when some names are unknown to it (every one on a
# fresh machine), yet still prints the known ones: its status says nothing here, its output does.
installed_packages() {
  dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null | awk '$2=="installed"{print $1}'
  return 0
}

missing_packages() {
  local installed p
  installed=$(installed_packages)
  for p in "${packages[@]}"; do grep -qx "$p" <<<"$installed" || echo "$p"; done
}

command -v dpkg-query >/dev/null || fail "dpkg-query not found: this machine is not Debian" \
  "run keybuzz's lab on Debian 12 (bookworm)"
mapfile -t missing < <(missing_packages)
[ ${#missing[@]} -eq 0 ] && exit 0

policy_rc_d=${KEYBUZZ_POLICY_RC_D:-/usr/sbin/policy-rc.d}  # tests point it elsewhere
install_cmd="apt-get update && apt-get install -y ${missing[*]}"
[ "$(id -u)" -eq 0 ] || fail "these Debian packages are missing and installing them needs root: ${missing[*]}" \
  "sudo sh -c '$install_cmd'"
if [ ! -e "$policy_rc_d" ]; then
  { printf '#!/bin/sh\n# keybuzz: packages must not start daemons on this machine\nexit 101\n' > "$policy_rc_d" \
    && chmod +x "$policy_rc_d"; } || fail "cannot write $policy_rc_d" "check that its folder is writable"
fi
echo "setup-machine: installing ${#missing[@]} Debian packages: ${missing[*]}"
apt-get update -q || fail "apt-get update failed (see its output above): no package list from the mirrors" \
  "check /etc/apt/sources.list* and the network, then: $install_cmd"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" \
  || fail "apt-get install failed (see its output above) for: ${missing[*]}" "$install_cmd"
echo "setup-machine: Debian packages ready"
