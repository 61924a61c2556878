"""The module's lint rules: the way clients reach Galera, the image, and durability."""

from __future__ import annotations

from collections.abc import Iterable

from keybuzz.contract import Hit, LintInput, Rule
from keybuzz.modules.mariadb import layout
from keybuzz.modules.mariadb.settings import MariadbSettings


def check_maria_without_proxysql(data: LintInput) -> Iterable[Hit]:
    maria = layout.nodes(data.site)
    if maria and not data.site.with_role("proxysql"):
        vips = [str(lb.vip) for lb in data.site.config.load_balancers if lb.target_role == "proxysql"]
        behind = f" behind {', '.join(vips)}" if vips else ""
        yield "servers.tsv", f"{len(maria)} maria servers but no proxysql server", \
            f"clients reach Galera through ProxySQL{behind} (definitive design A); add 2 proxysql servers"


def check_bitnami_image(data: LintInput) -> Iterable[Hit]:
    image = data.site.versions.images.get(layout.MODULE, "")
    if "bitnami/" in image:
        yield f"versions.yaml images.{layout.MODULE}", f"{image} no longer pulls (Bitnami moved its images in 2025)", \
            "use the official image, which ships Galera 4: `mariadb: mariadb:10.11.10`"


def check_flush_log(data: LintInput) -> Iterable[Hit]:
    if data.site.settings(MariadbSettings).innodb_flush_log_at_trx_commit == 2:
        yield "keybuzz.yaml mariadb.innodb_flush_log_at_trx_commit", (
            "2 syncs the redo log once a second: Jepsen (2026) lost committed transactions on Galera "
            "multi-node crashes with it"), "keep 1 unless losing the last second of commits is acceptable"


RULES = (
    Rule("KB009", "warning", "MariaDB reached through ProxySQL", check_maria_without_proxysql),
    Rule("KB014", "error", "the Bitnami Galera image no longer pulls", check_bitnami_image),
    Rule("KB015", "warning", "Galera commits synced to disk at every commit", check_flush_log),
)
