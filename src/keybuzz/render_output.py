"""Render the site's modules and write the result to a folder for review (`keybuzz render`)."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from keybuzz import registry
from keybuzz.containers import ContainerCli
from keybuzz.contract import Module, NotImplementedInThisVersion
from keybuzz.render import FilledAtDeploy, HostPlan, Plans, merge_plans
from keybuzz.renders import Renders
from keybuzz.secrets import redact
from keybuzz.site import Site

MARKER = ".keybuzz-render"


@dataclass
class RenderSummary:
    hosts: int = 0
    files: int = 0
    containers: int = 0
    pending: list[str] = field(default_factory=list)


def render_modules(site: Site, modules: list[Module] | None = None,
                   renders: Renders | None = None) -> tuple[Plans, list[str]]:
    """Render the implemented modules; the others are listed by name instead of rendering nothing silently."""
    render = renders or Renders(site)
    plan_sets, pending = [], []
    for module in registry.MODULES if modules is None else modules:
        if not module.hosts(site):
            continue
        try:
            plan_sets.append(render(module))
        except NotImplementedInThisVersion as exc:
            pending.append(str(exc))
    return merge_plans(*plan_sets), pending


def images_per_host(site: Site) -> dict[str, set[str]]:
    """Host -> the image references its containers run, over every module that renders."""
    plans, _ = render_modules(site)
    return {host: {str(c.image) for c in plan.containers} for host, plan in plans.items() if plan.containers}


class RenderRefused(Exception):
    """The output folder holds something that is not an earlier render: never replace it."""


def write_render(site: Site, out: Path, modules: list[Module] | None = None) -> RenderSummary:
    """Replace `out` as a whole (only if it is empty or an earlier render); secret values redacted.

    Every server of the chosen modules gets a folder with a manifest.json naming the modules it
    gets (and those this version does not implement), so 49 servers always show 49 folders.
    """
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise RenderRefused(f"{out} is not empty and is not an earlier render output; "
                            "pass a new or empty folder (keybuzz render only replaces its own output)")
    chosen = registry.MODULES if modules is None else modules
    plans, pending = render_modules(site, chosen)
    summary = RenderSummary(pending=pending)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / MARKER).write_text("written by keybuzz render; safe to delete\n")
        roles = {s.hostname: s.roles for s in site.servers}
        hosts = [s.hostname for s in site.servers if any(s.has(r) for m in chosen for r in m.roles)]
        for host in [*hosts, *sorted(set(plans) - set(hosts))]:
            mods = [m for m in chosen if set(m.roles) & set(roles.get(host, ()))]
            plan = plans.get(host, HostPlan(host))
            summary.hosts += 1
            summary.files += len(plan.files)
            summary.containers += len(plan.containers)
            _write_host(staging / host, plan, ContainerCli(site.config.container_cli), {
                "hostname": host, "roles": list(roles.get(host, ())),
                "modules": [f"{m.number} {m.name}" for m in mods if m.implemented],
                "not_in_this_version": [f"{m.number} {m.name}" for m in mods if not m.implemented],
            })
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _write_host(host_dir: Path, plan: HostPlan, cli: ContainerCli, header: dict[str, Any]) -> None:
    """files/<absolute path> for review (every content redacted, secret files 0600) + manifest.json.
    A file filled at deploy is in the manifest with what it will hold; its folder entry says so too."""
    host_dir.mkdir(parents=True)
    manifest: dict[str, Any] = {**header, "directories": [], "files": [], "containers": [], "services": []}
    for directory in plan.directories:
        manifest["directories"].append({**asdict(directory), "mode": f"{directory.mode:04o}",
                                        "owner": str(directory.owner)})
    for spec in plan.files:
        if ".." in PurePosixPath(spec.path).parts:  # a module bug must not write outside the output folder
            raise ValueError(f"{host_dir.name}: file path {spec.path} contains '..'")
        target = host_dir / "files" / spec.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        content = spec.content
        deferred = content.what if isinstance(content, FilledAtDeploy) else None
        target.write_text(f"# filled at deploy: {deferred}\n" if deferred else redact(str(content)))
        target.chmod(0o600 if spec.secret else 0o644)
        manifest["files"].append({"path": spec.path, "mode": f"{spec.mode:04o}", "owner": str(spec.owner),
                                  "secret": spec.secret, "create_only": spec.create_only, "filled_at_deploy": deferred,
                                  # an unsalted hash of a secret file would let weak passwords be guessed
                                  "sha256": None if spec.secret or deferred else spec.sha256})
    for container in plan.containers:
        manifest["containers"].append({"name": container.name, "image": container.image, "module": container.module,
                                       "argv": cli.run(container, "<spec-hash>")})
    for service in plan.services:
        manifest["services"].append({"name": service.name, "module": service.module, "binary": service.binary,
                                     "sha256": service.sha256, "unit": service.unit,
                                     "restart_on": list(service.restart_on)})
    (host_dir / "manifest.json").write_text(redact(json.dumps(manifest, indent=2)) + "\n")
