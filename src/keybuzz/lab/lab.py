"""`Lab`: many servers on one machine, made of namespaces and reached over SSH like real ones.

State lives in DIR/lab.json (written before anything is built, so `down` can always clean a
half-built lab). Kernel object names come from a hash of DIR: labs in different folders and
subnets run side by side.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

from keybuzz.lab import kernel, volumes
from keybuzz.lab.errors import LabError, run
from keybuzz.lab.hostfiles import DATA_ROOT, HOST_INIT, HostFolder, hosts_file
from keybuzz.lab.images import DEFAULT_IMAGE_ROOT, BuildReport, ImageStore, image_refs
from keybuzz.lab.lb import lb_haproxy_config
from keybuzz.lab.site import LAB_DOMAIN, add_credentials, lab_config, write_lab_site
from keybuzz.lab.topology import DEFAULT_SUBNET, HostSpec, Names, check_lab_dir, gateway_ip, host_ip
from keybuzz.lab.topology import topology as topology_hosts
from keybuzz.registry import load_site
from keybuzz.render_output import images_per_host

DEFAULT_DIR = Path(os.environ.get("KEYBUZZ_LAB_DIR", "/srv/keybuzz-lab/default"))
STATE_FILE = "lab.json"
LOCK_DIR = Path("/run/keybuzz-lab")
HOST_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
            "LANG": "C.UTF-8", "USER": "root", "LOGNAME": "root"}
SSH_WAIT_S = 20.0
ENGINE_WAIT_S = 60.0
Engine = Literal["podman", "docker"]
ENGINES: tuple[Engine, ...] = get_args(Engine)


@dataclass(frozen=True)
class LabHost:
    name: str
    ip: str
    index: int
    roles: tuple[str, ...]
    lb: str | None
    netns: str
    veth: str


@dataclass
class HostStatus:
    name: str
    ip: str
    roles: list[str]
    load_balancer: str | None
    up: bool
    link_up: bool
    pid1: int | None
    processes: int
    rss_mb: float
    containers: list[str] = field(default_factory=list)
    isolated_from: list[str] = field(default_factory=list)  # hosts its packet filter drops (lab isolate)


@dataclass
class UpReport:
    seconds: float
    images: list[BuildReport]
    hosts: int
    already_up: bool = False
    timings: dict[str, float] = field(default_factory=dict)


class Lab:
    """One lab in one folder. Needs root on Linux for everything but reading its state."""

    def __init__(self, directory: Path = DEFAULT_DIR, *, image_root: Path = DEFAULT_IMAGE_ROOT,
                 log: Callable[[str], None] | None = None):
        self.dir = check_lab_dir(Path(directory))
        self.names = Names.for_dir(self.dir)
        self.images = ImageStore(image_root, log=log or (lambda message: None))
        self.log = log or (lambda message: None)

    # -- where things are -------------------------------------------------------------------

    @property
    def site_dir(self) -> Path:
        return self.dir / "site"

    @property
    def key_path(self) -> Path:
        return self.dir / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "ssh" / "known_hosts"

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    def _state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            raise LabError(f"no lab in {self.dir}: run `keybuzz lab up --dir {self.dir}`") from None

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self._state()["subnet"])

    @property
    def hosts(self) -> dict[str, LabHost]:
        return {h["name"]: LabHost(**{**h, "roles": tuple(h["roles"])}) for h in self._state()["hosts"]}

    def host(self, name: str) -> LabHost:
        hosts = self.hosts
        if name not in hosts:
            raise LabError(f"no host {name!r} in the lab at {self.dir}; hosts: {', '.join(hosts)}")
        return hosts[name]

    def ip(self, name: str) -> str:
        return self.host(name).ip

    def exists(self) -> bool:
        return self.state_path.exists()

    @property
    def engine(self) -> Engine:
        """The hosts' container engine (labs made before docker was offered ran podman)."""
        return self._state().get("engine", "podman")  # type: ignore[no-any-return]

    # -- lifecycle ----------------------------------------------------------------------------

    @contextmanager
    def _locked(self, host: str = "") -> Iterator[None]:
        """One `up`/`down` at a time per lab (a second `up` then finds the lab up and keeps it), one
        `boot` at a time per host (two concurrent boots would both see no process and start two inits)."""
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        with open(LOCK_DIR / f"{self.names.lab_id}{'-' + host if host else ''}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def up(self, topology: str = "small", subnet: ipaddress.IPv4Network = DEFAULT_SUBNET,
           engine: Engine = "podman") -> UpReport:
        """Build every host, boot them, write the site. A half-built lab is torn down and rebuilt.

        `engine` is the container engine of every host: podman (one image store shared by every host)
        or docker (each host its own dockerd, as production runs, the images loaded into each)."""
        _require_root()
        if engine not in ENGINES:
            raise LabError(f"unknown container engine {engine!r}: use {' or '.join(ENGINES)}")
        with self._locked():
            return self._up(topology, subnet, engine)

    def _up(self, topology: str, subnet: ipaddress.IPv4Network, engine: Engine) -> UpReport:
        started = time.monotonic()
        specs = topology_hosts(topology)
        hosts = self._plan(specs, subnet)
        if self.exists():
            state = self._state()
            same_hosts = [(h["name"], h["ip"]) for h in state["hosts"]] == [(h.name, h.ip) for h in hosts]
            if state["topology"] == topology and state["subnet"] == str(subnet) and same_hosts and \
                    self.engine == engine and self._complete(state):
                volumes.attach(self.dir, self.dir / "hosts", specs)  # again after a reboot of this machine
                restored = self.restore()
                if engine == "docker":
                    self._load_docker_images()  # new tags after a recipe change
                add_credentials(self.site_dir)
                self.log(f"lab {self.dir} is already up ({len(state['hosts'])} hosts"
                         + (f"; booted or healed {', '.join(restored)})" if restored else ")"))
                return UpReport(time.monotonic() - started, [], len(state["hosts"]), already_up=True)
            self.log(f"cleaning the previous lab in {self.dir} first")
            self._down()
        users = kernel.subnet_users(subnet, self.names.bridge)
        if users:
            raise LabError(f"subnet {subnet} is already used by {', '.join(users)}: pick another --subnet")
        timings: dict[str, float] = {}
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps({"topology": topology, "subnet": str(subnet), "id": self.names.lab_id,
                                               "engine": engine, "hosts": [asdict(h) for h in hosts]}, indent=2))
        mark = time.monotonic()
        kernel.ensure_hugetlb_v1()
        reports = self.images.ensure()
        timings["images"] = time.monotonic() - mark
        mark = time.monotonic()
        self._make_key()
        kernel.make_bridge(self.names.bridge, gateway_ip(subnet), subnet)
        for host in hosts:
            kernel.make_host_link(self.names.bridge, host.netns, host.veth, ipaddress.IPv4Address(host.ip), subnet)
        timings["network"] = time.monotonic() - mark
        mark = time.monotonic()
        self._write_host_files(hosts, specs, subnet)
        volumes.attach(self.dir, self.dir / "hosts", specs)
        timings["files"] = time.monotonic() - mark
        mark = time.monotonic()
        for host in hosts:
            self._spawn(host, engine)
        self._wait_ssh(hosts)
        if engine == "docker":
            self._wait_engine(hosts)
        timings["boot"] = time.monotonic() - mark
        write_lab_site(self.site_dir, subnet, specs, image_refs(), self.key_path, self.known_hosts, engine)
        if engine == "docker":
            mark = time.monotonic()
            self._load_docker_images()
            timings["docker images"] = time.monotonic() - mark
        state = self._state()
        self.state_path.write_text(json.dumps({**state, "complete": True}, indent=2))
        report = UpReport(time.monotonic() - started, reports, len(hosts), timings=timings)
        self.log(f"lab up: {len(hosts)} hosts in {report.seconds:.1f} s "
                 + " ".join(f"{k}={v:.1f}s" for k, v in timings.items()))
        return report

    def down(self) -> None:
        """Remove processes, namespaces, links, cgroups, mounts and folders; the image cache stays."""
        _require_root()
        with self._locked():
            self._down()

    def _down(self) -> None:
        prefix = f"kb-{self.names.lab_id}-"
        netns_names = sorted(p.name for p in kernel.NETNS_DIR.glob(prefix + "*")) if kernel.NETNS_DIR.exists() else []
        kernel.kill_all(*netns_names)
        for netns in netns_names:
            run(["ip", "netns", "del", netns], check=False)
        for link in kernel.links_with_prefix(f"kb{self.names.lab_id}h"):
            run(["ip", "link", "del", link], check=False)
        if kernel.link_exists(self.names.bridge):
            run(["ip", "link", "del", self.names.bridge])
        kernel.remove_cgroups(self._container_ids())
        kernel.remove_cgroup_trees(f"kblab-{self.names.lab_id}-")  # the hosts' dockerd cgroup parents
        for lock in LOCK_DIR.glob(f"{self.names.lab_id}-*.lock"):  # host boot locks; the lab lock is held now
            lock.unlink()
        for target in kernel.mounts_under(self.dir):
            run(["umount", "-l", target], check=False)
        volumes.detach_all(self.dir)
        for child in ("hosts", "ssh", "site", "logs", volumes.FOLDER, "host-init.sh", STATE_FILE):
            path = self.dir / child
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        if self.dir.exists() and not any(self.dir.iterdir()):
            self.dir.rmdir()

    # -- hosts --------------------------------------------------------------------------------

    def status(self, containers: bool = True) -> list[HostStatus]:
        table = kernel.netns_pids()
        hosts = self.hosts
        by_ip = {h.ip: h.name for h in hosts.values()}
        rows = []
        for host in hosts.values():
            pids = kernel.pids_in(host.netns, table)
            pid1 = kernel.host_pid1(pids)
            rows.append(HostStatus(host.name, host.ip, list(host.roles), host.lb, pid1 is not None,
                                   kernel.link_is_up(host.veth), pid1, len(pids),
                                   round(kernel.rss_kib(pids) / 1024, 1),
                                   isolated_from=[by_ip.get(ip, ip) for ip in kernel.isolated_from(host.netns)]))
        if containers:
            with ThreadPoolExecutor(max_workers=8) as pool:
                lists = pool.map(lambda row: self._containers(row.name) if row.up else [], rows)
                for row, names in zip(rows, lists, strict=True):
                    row.containers = names
        return rows

    def exec(self, host: str, argv: Sequence[str], *, check: bool = False, input_text: str | None = None,
             timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside a host (all its namespaces), output captured."""
        return run(self.enter_argv(host, argv), check=check, input_text=input_text, timeout=timeout)

    def enter_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        pid1 = self._pid1(host)
        return ["env", "-i", *[f"{k}={v}" for k, v in HOST_ENV.items()],
                "nsenter", "-t", str(pid1), "-n", "-m", "-u", "-i", "-p", "--wd=/", "--", *argv]

    def ssh_argv(self, host: str, command: Sequence[str] = (), *, batch: bool = True) -> list[str]:
        """The ssh command the installer's engine mirrors: lab key, strict host key checking."""
        return ["ssh", "-i", str(self.key_path), "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", f"BatchMode={'yes' if batch else 'no'}", "-o", "ConnectTimeout=5",
                f"root@{self.ip(host)}", *command]

    def poweroff(self, host: str) -> None:
        """Link down, then SIGKILL of every process: peers see silence, not a reset."""
        _require_root()
        target = self.host(host)
        kernel.link_set(target.veth, up=False)
        kernel.kill_all(target.netns)

    def crash(self, host: str) -> None:
        """SIGKILL of every process with the link up: peers get resets from the kernel."""
        _require_root()
        kernel.kill_all(self.host(host).netns)

    def partition(self, host: str) -> None:
        _require_root()
        kernel.link_set(self.host(host).veth, up=False)

    def isolate(self, host: str, peers: Sequence[str]) -> list[str]:
        """Cut `host` from these peers only (hostnames or roles), both ways; clients, load balancers
        and every other host still reach it. Returns the peer hostnames. `heal` removes exactly this."""
        _require_root()
        target = self.host(host)
        hosts = self.hosts
        names: list[str] = []
        for peer in peers:
            matched = [h.name for h in hosts.values() if h.name == peer or peer in h.roles]
            if not matched:
                raise LabError(f"--from {peer!r} is neither a host nor a role of the lab; hosts: {', '.join(hosts)}")
            names += [name for name in matched if name != host and name not in names]
        if not names:
            raise LabError(f"nothing to isolate {host} from: {', '.join(peers)} names only {host} itself")
        kernel.isolate(target.netns, [hosts[name].ip for name in names])
        return names

    def heal(self, host: str) -> None:
        """Link up again and no isolation: undoes `partition` and `isolate`."""
        _require_root()
        target = self.host(host)
        kernel.unisolate(target.netns)
        kernel.link_set(target.veth, up=True)

    def boot(self, host: str) -> list[str]:
        """Power on: link up, new PID 1 and sshd; then on podman the lab starts every container with a
        restart policy (as dockerd would), on docker the host's own dockerd does it by itself.

        Returns the containers the lab started (none on docker). Refuses a host that still runs
        anything: two inits on one host's files ran two Patronis on one data dir.
        """
        _require_root()
        target = self.host(host)
        with self._locked(host):
            left = kernel.pids_in(target.netns)
            if left:
                raise LabError(f"{host} still has {len(left)} processes (e.g. {left[:5]}): "
                               f"`keybuzz lab poweroff {host}` or `crash` it before booting")
            kernel.link_set(target.veth, up=True)
            engine = self.engine
            self._spawn(target, engine)
            self._wait_ssh([target])
        if engine == "docker":
            self._wait_engine([target])
            return []
        return self._start_restart_policy_containers(host)

    def restore(self) -> list[str]:
        """Boot every powered-off host, heal every cut link and isolation; what tests call after a fault."""
        touched = []
        for row in self.status(containers=False):
            host = self.host(row.name)
            if not row.up:
                kernel.kill_all(host.netns)  # leftovers of a half-dead host
                self.boot(row.name)
                touched.append(row.name)
            elif not row.link_up or row.isolated_from:
                self.heal(row.name)
                touched.append(row.name)
        return touched

    # -- internals ----------------------------------------------------------------------------

    def _plan(self, specs: list[HostSpec], subnet: ipaddress.IPv4Network) -> list[LabHost]:
        return [LabHost(s.name, str(host_ip(subnet, s.offset)), i, s.roles, s.lb, self.names.netns(s.name),
                        self.names.veth(i)) for i, s in enumerate(specs, start=1)]

    def _make_key(self) -> None:
        self.key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.key_path.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"keybuzz-lab-{self.names.lab_id}",
                 "-f", str(self.key_path)])

    def _write_host_files(self, hosts: list[LabHost], specs: list[HostSpec], subnet: ipaddress.IPv4Network) -> None:
        hosts_text = hosts_file([(h.name, ipaddress.IPv4Address(h.ip), "" if h.lb else f"{h.name}.{LAB_DOMAIN}")
                                 for h in hosts])
        public_key = self.key_path.with_suffix(".pub").read_text()
        (self.dir / "host-init.sh").write_text(HOST_INIT)
        (self.dir / "logs").mkdir(exist_ok=True)
        balancers = {lb["name"]: lb for lb in lab_config(subnet, specs, self.key_path, self.known_hosts)
                     ["load_balancers"]}
        docker = self.engine == "docker"
        docker_cgroup = {h.name: f"/kblab-{self.names.lab_id}-{h.name}" for h in hosts if docker}

        def create(host: LabHost) -> str:
            haproxy = None
            if host.lb:
                lb = balancers[host.lb]
                targets = [(h.name, ipaddress.IPv4Address(h.ip)) for h in hosts if lb["target_role"] in h.roles]
                haproxy = lb_haproxy_config(ipaddress.IPv4Address(host.ip), lb["ports"], targets)
            folder = HostFolder(self.dir / "hosts" / host.name)
            host_key = folder.create(host.name, ipaddress.IPv4Address(host.ip), hosts_text, public_key,
                                     self.images.store, haproxy, docker_cgroup.get(host.name))
            names = [host.ip, host.name] + ([] if host.lb else [f"{host.name}.{LAB_DOMAIN}"])
            return f"{','.join(names)} {host_key}"

        with ThreadPoolExecutor(max_workers=8) as pool:  # ssh-keygen per host is most of the time
            known = list(pool.map(create, hosts))
        self.known_hosts.write_text("\n".join(known) + "\n")

    def _spawn(self, host: LabHost, engine: Engine) -> None:
        log = self.dir / "logs" / f"{host.name}.log"
        argv = ["setsid", "-f", "nsenter", f"--net={kernel.NETNS_DIR / host.netns}", "--",
                "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--mount-proc", "--propagation", "private",
                "/bin/sh", str(self.dir / "host-init.sh"), str(self.dir / "hosts" / host.name), host.name, DATA_ROOT,
                engine]
        with open(log, "ab") as out:
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd="/", check=True,
                           env=HOST_ENV)

    def _wait_ssh(self, hosts: list[LabHost]) -> None:
        deadline = time.monotonic() + SSH_WAIT_S
        waiting = list(hosts)
        while waiting:
            waiting = [h for h in waiting if not _port_open(h.ip, 22)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                logs = ", ".join(str(self.dir / "logs" / f"{h.name}.log") for h in waiting[:3])
                raise LabError(f"sshd did not answer on {', '.join(h.name for h in waiting)} after "
                               f"{SSH_WAIT_S:.0f} s; see {logs}")
            time.sleep(0.05)

    def _complete(self, state: dict) -> bool:
        """Built to the end (not a half-failed `up`) and nothing of it removed since."""
        return (bool(state.get("complete")) and kernel.link_exists(self.names.bridge)
                and all(kernel.netns_id(h["netns"]) is not None and kernel.link_exists(h["veth"])
                        for h in state["hosts"])
                and (self.site_dir / "servers.tsv").exists())

    def _pid1(self, host: str) -> int:
        pid1 = kernel.host_pid1(kernel.pids_in(self.host(host).netns))
        if pid1 is None:
            raise LabError(f"{host} is powered off: `keybuzz lab boot {host}`")
        return pid1

    def _containers(self, host: str) -> list[str]:
        engine = self.engine
        result = self.exec(host, [engine, "ps", "--format", "{{.Names}}"], timeout=60)
        return result.stdout.split() if result.returncode == 0 else [f"?{engine} failed"]

    def _wait_engine(self, hosts: list[LabHost]) -> None:
        """Every host's dockerd answers (it starts after sshd, as docker.service after ssh.service may)."""
        deadline = time.monotonic() + ENGINE_WAIT_S
        waiting, last = list(hosts), ""
        while waiting:
            answers = {h.name: self.exec(h.name, ["docker", "version", "--format", "{{.Server.Version}}"],
                                         timeout=30) for h in waiting}
            last = "; ".join(f"{name}: {a.stderr.strip()[-200:]}" for name, a in answers.items() if a.returncode)
            waiting = [h for h in waiting if answers[h.name].returncode != 0]
            if waiting and time.monotonic() > deadline:
                raise LabError(f"dockerd of {', '.join(h.name for h in waiting)} not answering after "
                               f"{ENGINE_WAIT_S:.0f} s (last error: {last}); its log: /var/log/keybuzz-lab-dockerd.log "
                               "inside the host (`keybuzz lab exec HOST -- cat /var/log/keybuzz-lab-dockerd.log`)")
            if waiting:
                time.sleep(0.3)

    def _load_docker_images(self) -> None:
        """Into each host's dockerd, the images its servers' containers run (rendered from the lab's site)
        and it does not hold yet: there is no registry here, and a missing image would be pulled."""
        built = set(image_refs().values())  # a container of another image fails at its start, with its name
        wanted = {host: refs & built for host, refs in images_per_host(load_site(self.site_dir)).items()}
        archives = {ref: self.images.docker_archive(ref) for ref in sorted(set().union(*wanted.values()))}

        def load(host: str) -> None:
            held = set(self.exec(host, ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
                                 check=True, timeout=60).stdout.split())
            for ref in sorted(wanted[host] - held):
                self.exec(host, ["docker", "load", "-q", "-i", str(archives[ref])], check=True, timeout=600)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(load, [h for h in wanted if h in self.hosts]))

    def _start_restart_policy_containers(self, host: str) -> list[str]:
        ids = self.exec(host, ["podman", "ps", "-aq"], check=True, timeout=120).stdout.split()
        if not ids:
            return []
        listing = self.exec(host, ["podman", "inspect", "--format",
                                   "{{.Name}} {{.HostConfig.RestartPolicy.Name}}", *ids], check=True, timeout=120)
        pairs = [line.partition(" ") for line in listing.stdout.splitlines()]
        wanted = [name for name, _, policy in pairs if policy.strip() in ("always", "unless-stopped")]
        if wanted:
            self.exec(host, ["podman", "start", *wanted], check=True, timeout=300)
        return wanted

    def _container_ids(self) -> list[str]:
        ids = []
        for listing in (self.dir / "hosts").glob("*/containers/overlay-containers/containers.json"):
            try:
                ids += [c["id"] for c in json.loads(listing.read_text())]
            except (OSError, ValueError, KeyError):
                continue
        return ids


def _port_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.2):
            return True
    except OSError:
        return False


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, bridges, mounts): run it with sudo or as root")
