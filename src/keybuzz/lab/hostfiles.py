"""What a lab host is made of on disk: overlay upper dirs, sshd, podman settings, its init.

Everything here is written from the control machine before the host boots; the host's
init (HOST_INIT) then mounts it. Pure text builders are separate from the writer so unit
tests can parse them.
"""

from __future__ import annotations

import ipaddress
import json
import resource
import shutil
from dataclasses import dataclass
from pathlib import Path

from keybuzz.lab.errors import run

OVERLAID = ("etc", "opt", "var")
DATA_ROOT = "/opt/keybuzz"  # keybuzz.yaml paths.data_root: a plain bind mount, not an overlay
HAPROXY_CFG = "/etc/keybuzz-lab/haproxy.cfg"
DAEMON_JSON = "/etc/docker/daemon.json"

# PID 1 of every host (run by `unshare --pid --fork`, so this shell is PID 1 until it execs tini).
# The lab folder is never under /etc /opt /var /run /tmp (checked), so $1 stays the real folder.
HOST_INIT = r"""#!/bin/sh
# keybuzz lab host init: mounts the host's private files, starts sshd (and dockerd), then tini reaps as PID 1.
set -eu
H="$1"; NAME="$2"; DATA_ROOT="$3"; ENGINE="${4:-podman}"
cd /
hostname "$NAME"
# Other labs' netns files were copied into this mount namespace: drop them, or they outlive `lab down`.
umount -R -l /run/netns 2>/dev/null || true
for d in etc opt var; do
  mount -t overlay "kblab-$d" -o "lowerdir=/$d,upperdir=$H/upper/$d,workdir=$H/work/$d" "/$d"
done
mkdir -p /var/lib/containers/storage "$DATA_ROOT"
mount --bind "$H/containers" /var/lib/containers/storage
if [ "$ENGINE" = docker ]; then  # overlay2 cannot sit on the /var overlay: the host's own folder
  mkdir -p /var/lib/docker
  mount --bind "$H/docker" /var/lib/docker
fi
mount --bind "$H/data" "$DATA_ROOT"
mount --bind "$H/root" /root
# Attached volumes (keybuzz.lab.volumes): this host's own /dev/disk/by-id, then what a real server's
# boot mounts from fstab before any service starts (only keybuzz's lines, marked x-keybuzz).
if [ -s "$H/volumes" ]; then
  mount -t tmpfs -o mode=0755,nosuid,noexec tmpfs /dev/disk
  mkdir -p /dev/disk/by-id
  while read -r name dev; do ln -s "$dev" "/dev/disk/by-id/$name"; done < "$H/volumes"
fi
mount -a -O x-keybuzz || echo "keybuzz lab: mount -a -O x-keybuzz failed on $NAME" >&2
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mkdir -p /run/sshd /run/lock
/usr/sbin/sshd -f /etc/ssh/sshd_config
if [ -f /etc/keybuzz-lab/haproxy.cfg ]; then
  /usr/sbin/haproxy -D -f /etc/keybuzz-lab/haproxy.cfg -p /run/haproxy-lb.pid
fi
# As docker.service after local-fs.target: the data mounts are in place and /run, its exec-root, is new.
# It starts the containers whose restart policy says so by itself (/etc/docker/daemon.json).
if [ "$ENGINE" = docker ]; then
  /usr/sbin/dockerd </dev/null >>/var/log/keybuzz-lab-dockerd.log 2>&1 &
fi
exec /usr/bin/tini -s -- /bin/sleep infinity
"""


def sshd_config(ip: ipaddress.IPv4Address) -> str:
    """Key-only root login on the host's own IP; no PAM or DNS (both slow, neither exists here)."""
    return "\n".join([
        "# keybuzz lab host sshd",
        f"ListenAddress {ip}",
        "Port 22",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "UseDNS no",
        "PrintMotd no",
        "PidFile /run/sshd.pid",
        "MaxStartups 200:30:400",
        "MaxSessions 200",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
    ])


def container_ulimits() -> dict[str, int]:
    """crun cannot raise limits past what conmon holds: stay at this machine's hard nofile, 32768 nproc."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    cap = lambda value, top: top if value == resource.RLIM_INFINITY else min(value, top)  # noqa: E731
    return {"nofile": cap(nofile, 65536), "nproc": cap(nproc, 32768)}


def containers_conf(ulimits: dict[str, int]) -> str:
    limits = ", ".join(f'"{name}={value}:{value}"' for name, value in sorted(ulimits.items()))
    return "\n".join([
        "# keybuzz lab host: no systemd here, so cgroupfs and file events",
        "[containers]",
        f"default_ulimits = [{limits}]",
        "",
        "[engine]",
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        'runtime = "crun"',
        "",
    ])


def daemon_json(cgroup_parent: str, ulimits: dict[str, int]) -> str:
    """dockerd of one lab host: its own socket and cgroup parent (two hosts' engines never share one), no
    bridge and no iptables (containers use the host network, and the machine's rules are not the lab's)."""
    return json.dumps({
        "data-root": "/var/lib/docker",
        "exec-root": "/run/docker",
        "hosts": ["unix:///run/docker.sock"],
        "bridge": "none",
        "iptables": False,
        "ip-masq": False,
        "exec-opts": ["native.cgroupdriver=cgroupfs"],
        "cgroup-parent": cgroup_parent,
        "storage-driver": "overlay2",
        "log-level": "warn",
        "default-ulimits": {name: {"Name": name, "Soft": value, "Hard": value}
                            for name, value in sorted(ulimits.items())},
    }, indent=2) + "\n"


def storage_conf(image_store: Path) -> str:
    """graphroot on a real per-host folder (bind-mounted), runroot on the host's own /run."""
    return "\n".join([
        "# keybuzz lab host: private storage, the lab images shared read-mostly",
        "[storage]",
        'driver = "overlay"',
        'graphroot = "/var/lib/containers/storage"',
        'runroot = "/run/containers/storage"',
        "",
        "[storage.options]",
        f'additionalimagestores = ["{image_store}"]',
        "",
    ])


def hosts_file(entries: list[tuple[str, ipaddress.IPv4Address, str]]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "# keybuzz lab hosts"]
    lines += [f"{ip}\t{fqdn}\t{name}" if fqdn else f"{ip}\t{name}" for name, ip, fqdn in entries]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class HostFolder:
    """The folder of one host under DIR/hosts/NAME."""

    path: Path

    def upper(self, relative: str) -> Path:
        return self.path / "upper" / relative.lstrip("/")

    def write(self, relative: str, content: str, mode: int = 0o644) -> None:
        target = self.upper(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(mode)

    def create(self, name: str, ip: ipaddress.IPv4Address, hosts_text: str, authorized_key: str,
               image_store: Path, haproxy_cfg: str | None, docker_cgroup: str | None = None) -> str:
        """Lay out the host's files (dockerd's when `docker_cgroup` names its cgroup parent); returns its
        public SSH host key line."""
        for sub in OVERLAID:
            (self.path / "upper" / sub).mkdir(parents=True, exist_ok=True)
            (self.path / "work" / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("containers", "data", "docker"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        root = self.path / "root"
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree("/etc/skel", root)  # not the machine's /root: its .bashrc runs pyenv
        (root / ".ssh").mkdir(mode=0o700)
        (root / ".ssh" / "authorized_keys").write_text(authorized_key)
        (root / ".ssh" / "authorized_keys").chmod(0o600)
        root.chmod(0o700)
        self.write("etc/hostname", name + "\n")
        self.write("etc/hosts", hosts_text)
        self.write("etc/ssh/sshd_config", sshd_config(ip))
        self.write("etc/containers/containers.conf", containers_conf(container_ulimits()))
        self.write("etc/containers/storage.conf", storage_conf(image_store))
        if haproxy_cfg is not None:
            self.write(HAPROXY_CFG, haproxy_cfg)
        if docker_cgroup is not None:
            self.write(DAEMON_JSON, daemon_json(docker_cgroup, container_ulimits()))
        key = self.upper("etc/ssh/ssh_host_ed25519_key")
        for old in key.parent.glob("ssh_host_*"):
            old.unlink()
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", str(key)])
        kind, blob = key.with_suffix(".pub").read_text().split()[:2]
        return f"{kind} {blob}"
