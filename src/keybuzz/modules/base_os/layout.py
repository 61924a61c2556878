"""Names and paths of the base OS module: one place, shared by render, deploy and checks."""

from __future__ import annotations

MODULE = "base_os"
STATE_DIR = "/etc/keybuzz/base_os"

# The firewall: one nftables table of ours, replaced atomically; other tables (Docker's, K3s', the
# lab's `keybuzz_lab_isolate`) are never touched.
TABLE = "keybuzz_base_os"
FIREWALL_FILE = f"{STATE_DIR}/firewall.nft"
FIREWALL_UNIT = "keybuzz-firewall"  # loads FIREWALL_FILE at boot (servers with systemd)
FIREWALL_UNIT_FILE = f"/etc/systemd/system/{FIREWALL_UNIT}.service"
ROLLBACK_DIR = "/run/keybuzz/base_os"  # the previous ruleset while a new one is on probation
ROLLBACK_AFTER_S = 45  # a change the installer could not confirm over a fresh SSH login is undone
HASH_MARK = "keybuzz base_os sha256:"

SSHD = "/usr/sbin/sshd"
SSHD_CONFIG = "/etc/ssh/sshd_config"
SSHD_DROPIN_DIR = "/etc/ssh/sshd_config.d"
SSHD_DROPIN = f"{SSHD_DROPIN_DIR}/00-keybuzz.conf"  # read first: sshd keeps the first value of a keyword
SSHD_INCLUDE = f"Include {SSHD_DROPIN_DIR}/*.conf"

SYSCTL_NET = "/etc/sysctl.d/60-keybuzz-net.conf"
SYSCTL_MACHINE = "/etc/sysctl.d/61-keybuzz-machine.conf"
RESOLV_CONF = "/etc/resolv.conf"
RESOLVED_DROPIN = "/etc/systemd/resolved.conf.d/60-keybuzz.conf"
DHCLIENT_HOOK = "/etc/dhcp/dhclient-enter-hooks.d/keybuzz-keep-resolv-conf"
JOURNALD_DROPIN = "/etc/systemd/journald.conf.d/60-keybuzz.conf"
TIMESYNCD_DROPIN = "/etc/systemd/timesyncd.conf.d/60-keybuzz.conf"
DOCKER_LIST = "/etc/apt/sources.list.d/keybuzz-docker.list"
DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc"
DOCKER_DAEMON = "/etc/docker/daemon.json"
RUNTIME_PIN = "/etc/apt/preferences.d/keybuzz-container-runtime"

# What acts on the whole machine when the "server" is a namespace of it (the lab, a container):
# rendered and checked everywhere, applied only with `machine_wide: apply` on a host that runs systemd.
MACHINE_WIDE_FILES = (SYSCTL_MACHINE, TIMESYNCD_DROPIN, DOCKER_LIST, RUNTIME_PIN, DOCKER_DAEMON)
