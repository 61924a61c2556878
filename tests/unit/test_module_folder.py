"""A new module is one folder and one registry line: everything else picks it up from its declarations.

The module below is written as a package in a temporary folder (as a contributor would add
src/keybuzz/modules/<name>/), imported, and appended to the registry; nothing else is edited.
Its keybuzz.yaml section, credentials, image, lint rule, ports and render then show up in
`init`, site validation, lint, the port table, `render` and `inventory`.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from keybuzz import registry
from keybuzz.cli import app
from keybuzz.contract import Module, Port
from keybuzz.errors import InputErrors
from keybuzz.lint import lint
from keybuzz.render_output import render_modules

MODULE_FOLDER = {
    "__init__.py": "from kbextra_demo.module import MODULE\n",
    "settings.py": '''
from pydantic import Field

from keybuzz.site.config import Strict
from keybuzz.values import NAME


class DemoSettings(Strict):
    greeting: NAME.type = "hello"
    workers: int = Field(default=2, ge=1, le=8)
''',
    "module.py": '''
from keybuzz.containers import ContainerSpec
from keybuzz.contract import LOAD_BALANCER, Module, Port
from keybuzz.contract.lint import Rule
from keybuzz.images import ImageSpec
from keybuzz.render import FileSpec, HostPlan
from keybuzz.secrets import CredentialFile, CredentialSpec
from keybuzz.site.schema import SettingsSection
from keybuzz.values import SERVICE_USER
from kbextra_demo.settings import DemoSettings


def check_greeting(data):
    if data.site.settings(DemoSettings).greeting == "shout":
        yield "keybuzz.yaml tuning.demo.greeting", "shouting is rude", "say hello"


class DemoModule(Module):
    number, name, title, own_role = 60, "demo", "a module from one folder", "app"
    settings = (SettingsSection(("tuning", "demo"), DemoSettings, example={"greeting": "hello"}),)
    credentials = CredentialFile("demo", (CredentialSpec("DEMO_USER", "demo", kind=SERVICE_USER),
                                          CredentialSpec("DEMO_PASSWORD")), roles=("app",))
    images = (ImageSpec("demo", "example/demo:1.2.3"),)
    lint_rules = (Rule("KB900", "warning", "demo greets politely", check_greeting),)

    def ports(self, site):
        return [Port(9999, "app", "demo API", (LOAD_BALANCER, "haproxy"))]

    def render(self, site):
        greeting = site.settings(DemoSettings).greeting
        return {s.hostname: HostPlan(s.hostname, files=[
                    FileSpec("/opt/keybuzz/demo/demo.conf", f"greeting={greeting}\\n"),
                    FileSpec("/opt/keybuzz/demo/demo.env", f"DEMO_PASSWORD={site.secret('demo', 'DEMO_PASSWORD')}\\n",
                             secret=True)],
                    containers=[ContainerSpec("demo", site.image("demo"), self.name,
                                              env_file="/opt/keybuzz/demo/demo.env")])
                for s in site.with_role("app")}


MODULE = DemoModule()
''',
}


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Module]:
    folder = tmp_path / "pkgs" / "kbextra_demo"
    folder.mkdir(parents=True)
    for name, text in MODULE_FOLDER.items():
        (folder / name).write_text(text.lstrip("\n"))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    module = importlib.import_module("kbextra_demo").MODULE
    monkeypatch.setattr(registry, "MODULES", [*registry.MODULES, module])  # the one registry line
    yield module
    for name in [n for n in sys.modules if n.startswith("kbextra_demo")]:
        del sys.modules[name]


def test_init_writes_its_credentials_image_and_example_settings(demo: Module, tmp_path: Path) -> None:
    root = tmp_path / "site"
    result = CliRunner().invoke(app, ["init", str(root)])
    assert result.exit_code == 0, result.output
    env = (root / "credentials" / "demo.env").read_text()
    assert "DEMO_USER=demo" in env and len(env.split("DEMO_PASSWORD=")[1].strip()) == 32
    assert (root / "credentials" / "demo.env").stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load((root / "versions.yaml").read_text())["images"]["demo"] == "example/demo:1.2.3"
    assert yaml.safe_load((root / "keybuzz.yaml").read_text())["tuning"]["demo"] == {"greeting": "hello"}


def test_its_section_is_validated_with_line_numbers_and_defaults(demo: Module, tmp_path: Path) -> None:
    root = tmp_path / "site"
    registry.write_example_site(root)
    site = registry.load_site(root)
    assert (site.settings(type(demo).settings[0].model).workers, site.config.tuning.demo.greeting) == (2, "hello")
    config = yaml.safe_load((root / "keybuzz.yaml").read_text())
    config["tuning"]["demo"] = {"greeting": "hi", "workers": 99, "colour": "red"}
    (root / "keybuzz.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(InputErrors) as caught:
        registry.load_site(root)
    messages = [str(e) for e in caught.value.errors]
    assert any("tuning.demo.workers" in m and "keybuzz.yaml:" in m for m in messages), messages
    assert any("unknown key tuning.demo.colour" in m for m in messages), messages
    (root / "credentials" / "demo.env").unlink()
    config["tuning"]["demo"] = {"greeting": "hi"}
    (root / "keybuzz.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(InputErrors, match=r"demo\.env: credentials file is missing"):
        registry.load_site(root)


def test_render_ports_lint_and_inventory_include_it(demo: Module, tmp_path: Path) -> None:
    root = tmp_path / "site"
    registry.write_example_site(root)
    config = yaml.safe_load((root / "keybuzz.yaml").read_text())
    config["tuning"]["demo"] = {"greeting": "shout"}
    (root / "keybuzz.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    site = registry.load_site(root)
    plans, _ = render_modules(site)
    apps = [s.hostname for s in site.with_role("app")]
    assert apps and all(plans[h].file("/opt/keybuzz/demo/demo.conf").text == "greeting=shout\n" for h in apps)
    ports = registry.host_ports(site)
    assert [(m.name, p.number) for m, p in ports[apps[0]]] == [("monitoring", 9100), ("demo", 9999)]
    findings = [f for f in lint(site) if f.rule == "KB900"]
    assert [(f.severity, f.message) for f in findings] == [("warning", "shouting is rude")]
    assert not [f for f in lint(site) if f.rule == "KB001"]  # its secret stays in its secret file
    result = CliRunner().invoke(app, ["inventory", "--site", str(root), "--json"])
    row = next(r for r in json.loads(result.output)["servers"] if r["hostname"] == apps[0])
    assert "60 demo" in row["modules"]
    out = tmp_path / "render"
    assert CliRunner().invoke(app, ["render", "--site", str(root), "--out", str(out), "-m", "demo"]).exit_code == 0
    manifest = json.loads((out / apps[0] / "manifest.json").read_text())
    assert [c["name"] for c in manifest["containers"]] == ["demo"]


def test_a_port_another_module_already_uses_is_an_input_error(demo: Module, tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "site"
    registry.write_example_site(root)
    taken = registry.host_ports(registry.load_site(root))["haproxy-01"][0][1].number  # a port of haproxy servers
    monkeypatch.setattr(type(demo), "ports", lambda self, site: [Port(taken, "haproxy", "demo on haproxy")])
    with pytest.raises(InputErrors, match=rf"haproxy-01: tcp port {taken} is wanted by \w+ .* and demo"):
        registry.load_site(root)
