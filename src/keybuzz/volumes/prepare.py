"""Volumes on the servers: probe, prepare (format a blank device, fstab by UUID, mount) and check.

Prepare runs in its own phase before the module's deploy: every volume of the module is probed
once, first, and one refusal anywhere stops the run before any volume is touched (a probe tool
that failed is a refusal). Then, per volume: mkfs only on a blank device, probed again right before,
by its stable path, with the data path's label (and without -f: mkfs refuses an existing filesystem
by itself), the fstab line by UUID, the mount point made 0000 root (what a service finds when the
volume is missing at boot), the mount; an adopted XFS of an earlier keybuzz gets its label. Converge
then gives the mounted folder the module's owner and mode.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence

from keybuzz.contract import CheckResult, Module
from keybuzz.engine.context import Engine
from keybuzz.errors import OperationFailed
from keybuzz.remote.probe import owner_matches
from keybuzz.volumes import device, plan
from keybuzz.volumes.plan import Volume

TOOLS = ("blkid", "wipefs", "lsblk", "findmnt", "mkfs.xfs", "xfs_io")
TOOLS_FIX = "install util-linux and xfsprogs on the server (`apt-get install xfsprogs`)"


def tools_script() -> str:
    return "".join(f"command -v {t} >/dev/null 2>&1 || echo {t}\n" for t in TOOLS) + "exit 0\n"


async def probe(engine: Engine, volume: Volume) -> device.DeviceState:
    result = await engine.host(volume.host).shell(device.probe_script(volume), timeout=60)
    return device.parse_probe(result.stdout)


Assessed = tuple[Volume, device.DeviceState, device.Decision]


async def assess(engine: Engine, volumes: Sequence[Volume]) -> tuple[dict[str, list[Assessed]],
                                                                     list[tuple[Volume, str]]]:
    """Per host, each volume probed once and what may be done with it; second, every one keybuzz may not
    touch, with why (missing tools first: nothing can be probed then)."""
    by_host: dict[str, list[Volume]] = {}
    for volume in volumes:
        by_host.setdefault(volume.host, []).append(volume)

    async def one_host(host: str, host_volumes: list[Volume]) -> tuple[list[Assessed], list[tuple[Volume, str]]]:
        missing = (await engine.host(host).shell(tools_script(), timeout=30)).stdout.split()
        if missing:
            return [], [(host_volumes[0], f"{host}: {', '.join(missing)} not found ({TOOLS_FIX})")]
        states = await asyncio.gather(*(probe(engine, volume) for volume in host_volumes))
        assessed = [(v, state, device.decide(v, state)) for v, state in zip(host_volumes, states, strict=True)]
        return assessed, [(v, d.refusal) for v, _, d in assessed if d.refusal]

    answers = await asyncio.gather(*(one_host(h, vs) for h, vs in by_host.items()))
    found = {h: assessed for h, (assessed, _) in zip(by_host, answers, strict=True)}
    engine.assessed_volumes.update({item[0]: item for items in found.values() for item in items})
    return found, [item for _, why in answers for item in why]


async def _assessed(engine: Engine, volumes: Sequence[Volume]) -> tuple[dict[str, list[Assessed]],
                                                                        list[tuple[Volume, str]]]:
    """What the pre-checks of this run found, when they assessed every one of these volumes (nothing but
    their module touches them, and it has not run yet); else a fresh assessment. Used once: prepare
    changes them."""
    if not all(v in engine.assessed_volumes for v in volumes):
        return await assess(engine, volumes)
    found: dict[str, list[Assessed]] = {}
    for volume in volumes:
        found.setdefault(volume.host, []).append(engine.assessed_volumes.pop(volume))
    return found, [(v, d.refusal) for items in found.values() for v, _, d in items if d.refusal]


async def refusals(engine: Engine, volumes: Sequence[Volume]) -> list[tuple[Volume, str]]:
    """Every volume keybuzz may not touch, with why (the pre-checks)."""
    return (await assess(engine, volumes))[1]


async def prepare(engine: Engine, module: Module) -> None:
    """The module's volumes formatted (blank devices only), in fstab and mounted, before its deploy."""
    per_host = plan.for_module(engine.site, module)
    if not per_host:
        return
    volumes = [v for vs in per_host.values() for v in vs]
    async with engine.phase(f"volumes ({len(volumes)} on {len(per_host)} server(s))"):
        assessed, refused = await _assessed(engine, volumes)
        if refused:
            raise OperationFailed("refusing to touch " + "; ".join(why for _, why in refused),
                                  host=",".join(sorted({v.host for v, _ in refused})), module=module.name,
                                  step="volumes")
        await asyncio.gather(*(_prepare_host(engine, items) for items in assessed.values()))


async def _prepare_host(engine: Engine, items: list[Assessed]) -> None:
    for volume, state, decision in items:  # one after the other on a host: fstab is one file
        await _prepare_one(engine, volume, state, decision)


async def _prepare_one(engine: Engine, volume: Volume, state: device.DeviceState, decision: device.Decision) -> None:
    host = engine.host(volume.host)
    uuid = state.uuid
    if decision.format:
        engine.changed(volume.host, f"format {volume.device} ({state.real}) {volume.filesystem} labelled "
                       f"{volume.label}: a blank device")
        if engine.dry_run:
            engine.changed(volume.host, f"{plan.FSTAB}: mount the new filesystem at {volume.path} by its UUID")
            engine.changed(volume.host, f"mount {volume.device} at {volume.path}")
            return
        uuid = await _format(engine, volume, state)
    await engine.ensure_line(volume.host, plan.FSTAB, plan.fstab_line(volume, uuid), match=plan.fstab_match(volume))
    path = shlex.quote(volume.path)
    if decision.mount:
        engine.changed(volume.host, f"mount {volume.device} (UUID {uuid}) at {volume.path}")
        if not engine.dry_run:
            await host.shell(f"mkdir -p {path} && chown root:root {path} && chmod 0000 {path} && mount {path}",
                             timeout=120)
    elif decision.remount_options:
        options = ",".join(decision.remount_options)
        engine.changed(volume.host, f"remount {volume.path} with {options}")
        if not engine.dry_run:
            await host.run(["mount", "-o", f"remount,{options}", volume.path], timeout=60)
    if decision.label:
        engine.changed(volume.host, f"label {volume.device} {volume.label}: an unlabelled XFS that keybuzz's "
                       f"{plan.FSTAB} line names")
        if not engine.dry_run:
            await host.shell(device.label_script(volume, state.real), timeout=60)


async def _format(engine: Engine, volume: Volume, probed: device.DeviceState) -> str:
    """mkfs once a new probe finds the same device node still blank; the new filesystem's UUID."""
    problem = device.recheck(volume, probed, await probe(engine, volume))
    if problem:
        raise OperationFailed(problem, host=volume.host, step="volumes")
    await engine.host(volume.host).run(device.format_argv(volume), timeout=600)
    made = await probe(engine, volume)
    if (made.fs_type, made.label, made.failures) != (volume.filesystem, volume.label, ()) or not made.uuid:
        raise OperationFailed(f"{volume.device} ({made.real}) holds {made.found} after mkfs.xfs, not "
                              f"{volume.filesystem} labelled {volume.label}"
                              + "".join(f"; {failure}" for failure in made.failures), host=volume.host,
                              step="volumes")
    return made.uuid


# -- checks ---------------------------------------------------------------------------------------

def _check(volume: Volume, state: device.DeviceState, free: str, owner: str) -> CheckResult:
    """`free`: df's size and available KiB, then stat's uid:gid and user:group of the mounted folder;
    `owner`: what the module's render wants there (chown syntax)."""
    name = f"volume {volume.use} on {volume.host}"
    problems = [f"probe failed: {failure}" for failure in state.failures]
    if not state.mounted_here:
        problems.append(f"{volume.device} is not mounted at {volume.path}"
                        + (f" ({state.path_source} is)" if state.path_source else ""))
    elif state.path_fstype != volume.filesystem:
        problems.append(f"{volume.path} is {state.path_fstype}, not {volume.filesystem}")
    missing = [o for o in volume.options if o not in state.path_options]
    if state.mounted_here and missing:
        problems.append(f"mounted without {', '.join(missing)}")
    if not state.in_fstab:
        problems.append(f"no {plan.FSTAB} line mounts UUID {state.uuid or '?'} there (a reboot would lose it)")
    fields = free.split()
    if len(fields) == 4 and fields[0].isdigit() and fields[1].isdigit():
        size_k, avail_k, ids, names = int(fields[0]), int(fields[1]), fields[2], fields[3]
        percent = 100 * avail_k / size_k if size_k else 0.0
        figures = f"{avail_k / 1048576:.1f} GiB free of {size_k / 1048576:.1f} GiB ({percent:.0f} %), owner {ids}"
        if percent < volume.min_free_percent:
            problems.append(f"only {percent:.0f} % free, under min_free_percent {volume.min_free_percent}")
        if not owner_matches(owner, names, ids):
            problems.append(f"owned by {names} ({ids}), not {owner}")
    else:
        figures = "free space unknown"
        if state.mounted_here:
            problems.append("df gave nothing")
    if problems:
        return CheckResult(name, False, "; ".join(problems) + f" ({figures})")
    return CheckResult(name, True, f"{volume.device} {volume.filesystem} {state.label or 'unlabelled'} at "
                       f"{volume.path}, {figures}")


async def checks(engine: Engine, module: Module) -> list[CheckResult]:
    """Per volume: mounted at its path from its device, filesystem, options, fstab line, owner, free space."""
    volumes = [v for vs in plan.for_module(engine.site, module).values() for v in vs]
    if not volumes:
        return []
    plans = await engine.with_owners(engine.renders(module))
    owners = {(host, d.path): str(d.owner) for host, p in plans.items() for d in p.directories}

    async def one(volume: Volume) -> CheckResult:
        try:
            state = await probe(engine, volume)
            path = shlex.quote(volume.path)
            free = (await engine.host(volume.host).shell(
                f"df -Pk {path} | awk 'NR==2 {{print $2, $4}}' | tr '\\n' ' '; stat -c '%u:%g %U:%G' {path}",
                timeout=30)).stdout
        except OperationFailed as exc:
            return CheckResult(f"volume {volume.use} on {volume.host}", False, str(exc))
        return _check(volume, state, free, owners.get((volume.host, volume.path), "root"))

    return list(await asyncio.gather(*(one(v) for v in volumes)))
