"""HAProxy configuration shared by the modules that put a service behind the haproxy servers.

Each module runs its own HAProxy container on the haproxy servers (haproxy-postgres,
haproxy-redis, ...) with its own file, as the seed had one file per service; a module's
cleanup then never touches another module's traffic. Binds are always 0.0.0.0: the managed
load balancer owns the VIP (definitive design A).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keybuzz.containers import ContainerSpec, Mount

CONFIG_IN_CONTAINER = "/usr/local/etc/haproxy/haproxy.cfg"


@dataclass(frozen=True)
class Section:
    kind: str  # frontend | backend | listen
    name: str
    lines: tuple[str, ...] = field(default=())


def render_config(sections: list[Section], *, stats_port: int, maxconn: int = 4096) -> str:
    head = [
        "# Rendered by keybuzz: edits are overwritten on the next install.",
        "global",
        "    log stdout format raw local0",
        f"    maxconn {maxconn}",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    option tcplog",
        "    timeout connect 3s",
        "    timeout client 30m",
        "    timeout server 30m",
        "    timeout check 2s",
        "",
        "listen stats",
        "    mode http",
        f"    bind 0.0.0.0:{stats_port}",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 5s",
        "",
    ]
    body = []
    for section in sections:
        body.append(f"{section.kind} {section.name}")
        body.extend(f"    {line}" for line in section.lines)
        body.append("")
    return "\n".join(head + body)


def parse_config(text: str) -> dict[str, list[str]]:
    """Sections as `"kind name"` -> stripped lines; used by lint and by tests."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith("tcp-check") else raw.rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = sections.setdefault(line.strip(), [])
        elif current is not None:
            current.append(line.strip())
    return sections


def container(name: str, module: str, image: str, config_path: str) -> ContainerSpec:
    """An HAProxy container reading one rendered file; recreated when that file changes."""
    return ContainerSpec(
        name=name,
        image=image,
        module=module,
        command=("haproxy", "-W", "-db", "-f", CONFIG_IN_CONTAINER),
        mounts=(Mount(config_path, CONFIG_IN_CONTAINER, read_only=True),),
        restart_on=(config_path,),
    )
