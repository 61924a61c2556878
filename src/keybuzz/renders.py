"""Each module's plans rendered once per command.

A render is pure and a site does not change within one command, yet lint, the pre-checks, the
volumes and the deploy each need the plans: rendering the monitoring module alone costs ~0.2 s of
CPU, paid four times per `install` before this memo.
"""

from __future__ import annotations

from keybuzz.contract import Module
from keybuzz.render import Plans
from keybuzz.site import Site


class Renders:
    """`renders(module)` -> the module's plans for this site; a render that raised raises again."""

    def __init__(self, site: Site):
        self.site = site
        self._done: dict[str, Plans | Exception] = {}

    def __call__(self, module: Module) -> Plans:
        if module.name not in self._done:
            try:
                self._done[module.name] = module.render(self.site)
            except Exception as exc:  # kept to raise for every reader, as a fresh render would
                self._done[module.name] = exc
        done = self._done[module.name]
        if isinstance(done, Exception):
            raise done
        return done
