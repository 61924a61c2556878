"""render(site): the base OS files of every server. Pure, no I/O.

Every file is rendered for every server, the machine-wide ones included (layout.MACHINE_WIDE_FILES):
`keybuzz render` and lint see them all; the deploy converges those only where machine-wide changes
are applied (keybuzz.yaml `base_os.machine_wide: apply`, on a server that runs systemd).
"""

from __future__ import annotations

from keybuzz.contract import Module, Port
from keybuzz.modules.base_os import firewall, layout, runtime, sshd, sysctl
from keybuzz.modules.base_os.settings import BaseOsSettings
from keybuzz.render import DirSpec, FileSpec, HostPlan, Plans
from keybuzz.site import Site
from keybuzz.site.servers import Server

HEADER = "# Rendered by keybuzz (module base_os): edits are overwritten on the next install.\n"

FIREWALL_UNIT = f"""[Unit]
Description=keybuzz base OS firewall (nftables table inet {layout.TABLE})
Documentation=file://{layout.FIREWALL_FILE}
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
After=nftables.service
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f {layout.FIREWALL_FILE}

[Install]
WantedBy=sysinit.target
"""

# dhclient rewrites /etc/resolv.conf at every lease renewal unless told not to.
DHCLIENT_HOOK = HEADER + "# keep /etc/resolv.conf as keybuzz wrote it (DNS fixed by the site)\n" \
    "make_resolv_conf() { :; }\n"


def search_domains(site: Site, settings: BaseOsSettings) -> list[str]:
    return settings.dns.search if settings.dns.search is not None else [site.config.domain]


def resolv_conf(site: Site, settings: BaseOsSettings) -> str:
    lines = [f"nameserver {ip}" for ip in site.config.dns_servers]
    search = search_domains(site, settings)
    if search:
        lines.append(f"search {' '.join(search)}")
    if settings.dns.options:
        lines.append(f"options {' '.join(settings.dns.options)}")
    return HEADER + "\n".join(lines) + "\n"


def resolved_dropin(site: Site, settings: BaseOsSettings) -> str:
    return (HEADER + "[Resolve]\n" + f"DNS={' '.join(str(ip) for ip in site.config.dns_servers)}\n"
            f"Domains={' '.join(search_domains(site, settings))}\nFallbackDNS=\n")


def journald_dropin(settings: BaseOsSettings) -> str:
    j = settings.journald
    return (HEADER + "[Journal]\nStorage=persistent\nCompress=yes\n"
            f"SystemMaxUse={j.system_max_use}\nRuntimeMaxUse={j.runtime_max_use}\n"
            f"MaxRetentionSec={j.max_retention_days}day\n")


def timesyncd_dropin(settings: BaseOsSettings) -> str:
    return HEADER + f"[Time]\nNTP={' '.join(settings.ntp_servers)}\n"


def host_plan(site: Site, settings: BaseOsSettings, server: Server, fw: firewall.HostFirewall) -> HostPlan:
    files = [
        FileSpec(layout.FIREWALL_FILE, fw.text(), mode=0o600),
        FileSpec(layout.FIREWALL_UNIT_FILE, HEADER + FIREWALL_UNIT),
        FileSpec(layout.SSHD_DROPIN, sshd.dropin(settings.ssh)),
        FileSpec(layout.SYSCTL_NET, sysctl.conf(sysctl.net(server), "per network namespace: the server's own")),
        FileSpec(layout.SYSCTL_MACHINE, sysctl.conf(sysctl.machine(server), "machine-wide")),
        FileSpec(layout.JOURNALD_DROPIN, journald_dropin(settings)),
        FileSpec(layout.TIMESYNCD_DROPIN, timesyncd_dropin(settings)),
    ]
    if settings.resolver == "resolv.conf":
        files += [FileSpec(layout.RESOLV_CONF, resolv_conf(site, settings)),
                  FileSpec(layout.DHCLIENT_HOOK, DHCLIENT_HOOK)]
    else:
        files.append(FileSpec(layout.RESOLVED_DROPIN, resolved_dropin(site, settings)))
    chosen = runtime.runtime(site)
    files.append(FileSpec(layout.RUNTIME_PIN, chosen.pin_file()))
    if chosen.cli == "docker":
        files += [FileSpec(layout.DOCKER_LIST, runtime.docker_list(settings.distro)),
                  FileSpec(layout.DOCKER_DAEMON, runtime.docker_daemon())]
    return HostPlan(server.hostname, directories=[DirSpec(layout.STATE_DIR, 0o700)], files=files)


def render(site: Site, settings: BaseOsSettings, table: dict[str, list[tuple[Module, Port]]]) -> Plans:
    fws = firewall.firewalls(site, settings, table)
    return {s.hostname: host_plan(site, settings, s, fws[s.hostname]) for s in site.servers}


def local_part(plan: HostPlan) -> HostPlan:
    """The plan without its machine-wide files: what a lab host (or `machine_wide: render`) converges."""
    return HostPlan(plan.hostname, list(plan.directories),
                    [f for f in plan.files if f.path not in layout.MACHINE_WIDE_FILES], list(plan.containers),
                    list(plan.services))
