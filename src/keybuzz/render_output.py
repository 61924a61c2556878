"""Render the site's modules and write the result to a folder for review (`keybuzz render`)."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from keybuzz.modules import MODULES, Module, NotLanded
from keybuzz.render import Plans, merge_plans
from keybuzz.secrets import redact
from keybuzz.site import Site

MARKER = ".keybuzz-render"


@dataclass
class RenderSummary:
    hosts: int = 0
    files: int = 0
    containers: int = 0
    pending: list[str] = field(default_factory=list)


def render_modules(site: Site, modules: list[Module] | None = None) -> tuple[Plans, list[str]]:
    """Render landed modules; pending ones are listed by name instead of rendering nothing silently."""
    plan_sets, pending = [], []
    for module in modules or MODULES:
        if not module.hosts(site):
            continue
        try:
            plan_sets.append(module.render(site))
        except NotLanded as exc:
            pending.append(str(exc))
    return merge_plans(*plan_sets), pending


def write_render(site: Site, out: Path, modules: list[Module] | None = None) -> RenderSummary:
    """Replace `out` as a whole (only if it is empty or an earlier render); secret values redacted."""
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise FileExistsError(f"{out} is not empty and is not an earlier render output")
    plans, pending = render_modules(site, modules)
    summary = RenderSummary(pending=pending)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / MARKER).write_text("written by keybuzz render; safe to delete\n")
        for host, plan in sorted(plans.items()):
            summary.hosts += 1
            host_dir = staging / host
            manifest: dict[str, list] = {"directories": [], "files": [], "containers": []}
            for directory in plan.directories:
                manifest["directories"].append({**asdict(directory), "mode": f"{directory.mode:04o}"})
            for spec in plan.files:
                target = host_dir / "files" / spec.path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(redact(spec.content) if spec.secret else spec.content)
                target.chmod(0o600 if spec.secret else 0o644)
                manifest["files"].append({"path": spec.path, "mode": f"{spec.mode:04o}", "owner": spec.owner,
                                          "secret": spec.secret, "create_only": spec.create_only,
                                          "sha256": spec.sha256})
                summary.files += 1
            for container in plan.containers:
                manifest["containers"].append({
                    "name": container.name, "image": container.image, "module": container.module,
                    "argv": container.run_argv(site.config.container_cli, "<spec-hash>"),
                })
                summary.containers += 1
            host_dir.mkdir(parents=True, exist_ok=True)
            (host_dir / "manifest.json").write_text(redact(json.dumps(manifest, indent=2)) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary
