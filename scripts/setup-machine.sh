#!/usr/bin/env bash
# Debian packages the installer and its lab need on the control machine. Idempotent.
# Packages must not start daemons while installing (no systemd here): policy-rc.d says no.
set -euo pipefail
packages=(python3-venv)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then echo "need root to apt-get install: ${missing[*]}" >&2; exit 1; fi
if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
