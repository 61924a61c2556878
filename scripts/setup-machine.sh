#!/usr/bin/env bash
# Debian packages the installer and its lab need on the control machine (Debian 12). Idempotent,
# and a no-op in well under a second when everything is present (one dpkg-query call).
# Packages must not start daemons while installing (no systemd here): policy-rc.d says no.
set -euo pipefail
packages=(
  python3-venv python3-pip python3-wheel   # the venv, and `pip wheel` for the lab's Patroni wheelhouse
  podman crun conmon                       # container CLI inside lab hosts (and lab image builds)
  debootstrap debian-archive-keyring       # lab images are built from Debian packages
  openssh-server openssh-client            # one sshd per lab host; ssh/ssh-keygen on the machine
  iproute2 util-linux procps psmisc        # ip netns / veth / bridge, unshare, nsenter, ps, pkill
  tini                                     # PID 1 of every lab host: reaps orphans
  haproxy socat                            # the lab's load-balancer hosts; admin-socket queries
  ca-certificates
)
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null | awk '$2=="installed"{print $1}')
missing=()
for p in "${packages[@]}"; do grep -qx "$p" <<<"$installed" || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then echo "need root to apt-get install: ${missing[*]}" >&2; exit 1; fi
if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
echo "installing: ${missing[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
