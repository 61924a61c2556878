"""Least exposure, on the whole render of a site: every HAProxy file binds only its own server's private
address (or 127.0.0.1), and no file or container argv anywhere names a wildcard listener (0.0.0.0, [::],
or an address left empty as in `--address :9000`). The sites: the seed's production choices, the lab's
(SeaweedFS, the ProxySQL stand-in) and the seed with etcd as Patroni's DCS."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from keybuzz.containers import ContainerCli
from keybuzz.haproxy import parse_config
from keybuzz.lab.images import image_refs
from keybuzz.lab.lb import lb_haproxy_config
from keybuzz.lab.site import write_lab_site
from keybuzz.lab.topology import topology
from keybuzz.registry import load_site, write_example_site
from keybuzz.render import Plans
from keybuzz.render_output import render_modules
from keybuzz.site import Site

# An explicit wildcard: 0.0.0.0 (not a 0.0.0.0/0 network), [::], or a listen address with no host.
WILDCARD = re.compile(r"0\.0\.0\.0(?![/\d])|\[::\]|(?:^|=|//|\s):\d+\b")


def haproxy_binds(text: str) -> list[str]:
    """The host part of every `bind a:p[,b:p]` of an HAProxy file ("" for `bind :p`)."""
    parts = [part for lines in parse_config(text).values() for line in lines if line.startswith("bind ")
             for part in line.split()[1].split(",")]
    return [part.rsplit(":", 1)[0].removeprefix("ipv4@").strip("[]") for part in parts]


def _seed(tmp_path: Path, kb: type) -> Site:
    write_example_site(tmp_path / "site")
    return load_site(tmp_path / "site")


def _seed_etcd(tmp_path: Path, kb: type) -> Site:
    _seed(tmp_path, kb)
    return kb.retune(tmp_path / "site", "patroni", dcs="etcd")


def _lab(tmp_path: Path, kb: type) -> Site:
    root = tmp_path / "site"
    write_lab_site(root, ipaddress.IPv4Network("10.78.0.0/16"), topology("small"), image_refs(),
                   tmp_path / "id_ed25519", tmp_path / "known_hosts")
    return load_site(root)


SITES: dict[str, Callable[[Path, type], Site]] = {"seed": _seed, "seed-etcd": _seed_etcd, "lab": _lab}


@pytest.fixture(params=sorted(SITES))
def rendered(request: pytest.FixtureRequest, tmp_path: Path, kb: type) -> tuple[Site, Plans]:
    site = SITES[request.param](tmp_path, kb)
    plans, _ = render_modules(site)
    return site, plans


def test_every_haproxy_binds_its_own_private_address_or_loopback(rendered: tuple[Site, Plans]) -> None:
    site, plans = rendered
    seen = 0
    for host, plan in plans.items():
        own = {str(site.server(host).private_ip), "127.0.0.1"}
        for spec in plan.files:
            if spec.path.endswith("haproxy.cfg"):
                binds = haproxy_binds(spec.content)
                assert binds and set(binds) <= own, f"{host}:{spec.path} binds {binds}"
                seen += 1
    assert seen >= 2 * 4  # two haproxy servers, one file per module behind them at least


def test_no_file_or_argv_names_a_wildcard_listener(rendered: tuple[Site, Plans]) -> None:
    _, plans = rendered
    cli = ContainerCli("podman")
    offenders = []
    for host, plan in plans.items():
        texts = {spec.path: spec.content for spec in plan.files if isinstance(spec.content, str)}
        texts |= {f"container {c.name}": " ".join(cli.run(c, "0")) for c in plan.containers}
        offenders += [f"{host} {where}: {match.group(0)!r}" for where, text in texts.items()
                      for match in WILDCARD.finditer(text)]
    assert offenders == []
    assert WILDCARD.search("--address :9000") and WILDCARD.search("bind 0.0.0.0:5432")  # the pattern bites
    assert not WILDCARD.search("ip saddr 0.0.0.0/0 accept")


def test_the_lab_load_balancer_binds_only_its_vip() -> None:
    text = lb_haproxy_config(ipaddress.IPv4Address("10.78.0.10"), (5432, 6379),
                             [("haproxy-01", ipaddress.IPv4Address("10.78.0.11"))])
    assert text is not None and set(haproxy_binds(text)) == {"10.78.0.10"}
