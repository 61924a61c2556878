"""base_os on Debian 12 and Ubuntu 24.04: what differs is rendered per OS and parsed back (Docker's apt
source line, the runtime pin, the resolver's file), a server's /etc/os-release is read as the OS it is,
a server on another OS is refused before any change, and lint names a pin or resolver of the wrong OS."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from keybuzz.errors import InputErrors
from keybuzz.lint import lint
from keybuzz.modules.base_os import distro, facts, layout, runtime
from keybuzz.modules.base_os.deploy import other_os
from keybuzz.modules.base_os.settings import BaseOsSettings
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

MODULE = module_by_name("base_os")
# /etc/os-release as the two OS ship it (trimmed): quoted and unquoted values.
DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n' \
         'VERSION_CODENAME=bookworm\nID=debian\n'
UBUNTU = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\n' \
         'ID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=noble\n'


def edit_site(root: Path, base_os: dict | None = None, software: dict | None = None) -> Site:
    config_path, versions_path = root / "keybuzz.yaml", root / "versions.yaml"
    config, versions = yaml.safe_load(config_path.read_text()), yaml.safe_load(versions_path.read_text())
    config["base_os"].update(base_os or {})
    versions.setdefault("software", {}).update(software or {})
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    versions_path.write_text(yaml.safe_dump(versions, sort_keys=False))
    return load_site(root)


def apt_source(text: str) -> dict[str, str]:
    """The one-line apt source (sources.list(5)): `deb [options] URI suite component`."""
    line = next(line for line in text.splitlines() if line.startswith("deb "))
    options, _, rest = line.removeprefix("deb [").partition("] ")
    uri, suite, component = rest.split()
    return {"options": options, "uri": uri, "suite": suite, "component": component}


def pin_fields(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line and not line.startswith("#"))


def test_os_release_is_read_as_the_os_keybuzz_knows_or_as_what_it_says() -> None:
    assert distro.detected(distro.parse_os_release(DEBIAN)) == "debian-12"
    assert distro.detected(distro.parse_os_release(UBUNTU)) == "ubuntu-24.04"
    assert distro.detected(distro.parse_os_release('ID=ubuntu\nVERSION_ID="22.04"\n')) == "ubuntu 22.04"
    assert distro.detected({}) == ""
    assert "cat /etc/os-release" in facts.script([], [], "true")
    assert facts.parse(f"#KB-os\n{UBUNTU}#KB-user\nroot\n").os == "ubuntu-24.04"  # its section as the script prints it


def test_debian_site_renders_debian_sources_and_its_resolver(site: Site) -> None:
    plans = MODULE.render(site)
    plan = plans["db-master-01"]
    source = apt_source(plan.file(layout.DOCKER_LIST).content)
    assert source == {"options": f"signed-by={layout.DOCKER_KEYRING}", "uri": "https://download.docker.com/linux/debian",
                      "suite": "bookworm", "component": "stable"}
    assert pin_fields(plan.file(layout.RUNTIME_PIN).content)["Pin"] == "version 5:27.5.1-1~debian.12~bookworm"
    paths = {f.path for f in plan.files}
    assert layout.RESOLV_CONF in paths and layout.RESOLVED_DROPIN not in paths
    assert [f for f in lint(site) if f.rule == "KB027"] == []


def test_ubuntu_site_renders_ubuntu_sources_pin_and_resolved(seed_site: Path) -> None:
    site = edit_site(seed_site, {"os": "ubuntu-24.04"}, {"docker": "5:27.5.1-1~ubuntu.24.04~noble"})
    plan = MODULE.render(site)["db-master-01"]
    source = apt_source(plan.file(layout.DOCKER_LIST).content)
    assert (source["uri"], source["suite"]) == ("https://download.docker.com/linux/ubuntu", "noble")
    assert pin_fields(plan.file(layout.RUNTIME_PIN).content) == {
        "Package": "docker-ce docker-ce-cli", "Pin": "version 5:27.5.1-1~ubuntu.24.04~noble", "Pin-Priority": "1001"}
    paths = {f.path for f in plan.files}
    assert layout.RESOLVED_DROPIN in paths and layout.RESOLV_CONF not in paths  # never replace resolved's link
    dropin = plan.file(layout.RESOLVED_DROPIN).content
    assert "[Resolve]" in dropin and f"DNS={' '.join(str(ip) for ip in site.config.dns_servers)}" in dropin
    script = runtime.runtime(site).install_script()
    assert "https://download.docker.com/linux/ubuntu/gpg" in script and runtime.DOCKER_KEY_FINGERPRINT in script
    assert "docker-ce=5:27.5.1-1~ubuntu.24.04~noble" in script
    assert [f for f in lint(site) if f.rule == "KB027"] == []


@pytest.mark.parametrize(("base_os", "software", "message"), [
    ({"os": "ubuntu-24.04"}, {"docker": "5:27.5.1-1~debian.12~bookworm"}, "Docker's build for debian-12"),
    ({"os": "ubuntu-24.04"}, {}, "Docker's build for debian-12"),  # the pin a new site's versions.yaml holds
    ({"dns": {"manager": "resolv.conf"}, "os": "ubuntu-24.04"}, {"docker": "5:27.5.1-1~ubuntu.24.04~noble"},
     "would replace its link to systemd-resolved's stub"),
    ({"dns": {"manager": "systemd-resolved"}}, {}, "no systemd-resolved runs there"),
])
def test_lint_names_a_pin_or_resolver_of_another_os(seed_site: Path, base_os: dict, software: dict,
                                                     message: str) -> None:
    site = edit_site(seed_site, base_os, software)
    hits = [f for f in lint(site) if f.rule == "KB027"]
    assert len(hits) == 1 and message in hits[0].message and hits[0].severity == "error", hits
    assert hits[0].where.startswith(("versions.yaml:", "keybuzz.yaml:")) and not hits[0].where.endswith(":1")


def test_podman_on_ubuntu_needs_a_pin(seed_site: Path) -> None:
    config = yaml.safe_load((seed_site / "keybuzz.yaml").read_text())
    config["container_cli"] = "podman"
    (seed_site / "keybuzz.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    versions = yaml.safe_load((seed_site / "versions.yaml").read_text())
    versions["software"].pop("podman", None)
    (seed_site / "versions.yaml").write_text(yaml.safe_dump(versions, sort_keys=False))
    site = edit_site(seed_site, {"os": "ubuntu-24.04"})
    hits = [f for f in lint(site) if f.rule == "KB027"]
    assert len(hits) == 1 and "keybuzz knows none for ubuntu-24.04" in hits[0].message
    assert "software.podman" in hits[0].hint


def test_an_unknown_os_is_refused_at_load_with_its_line(seed_site: Path) -> None:
    with pytest.raises(InputErrors) as raised:
        edit_site(seed_site, {"os": "centos-9"})
    [error] = [e for e in raised.value.errors if "os" in e.message or "centos" in e.message]
    assert error.file.endswith("keybuzz.yaml") and error.line > 1 and "debian-12" in str(error)


def test_a_server_on_another_os_is_named_with_what_it_runs() -> None:
    settings = BaseOsSettings(os="ubuntu-24.04")
    found = {"a": facts.Facts(os_release=distro.parse_os_release(UBUNTU)),
             "b": facts.Facts(os_release=distro.parse_os_release(DEBIAN)),
             "c": facts.Facts()}
    assert other_os(settings, found) == {"b": "debian-12", "c": ""}
