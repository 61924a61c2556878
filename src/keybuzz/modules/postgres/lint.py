"""The module's lint rules: Patroni 4's timing rules and its deprecated RAFT DCS."""

from __future__ import annotations

from collections.abc import Iterable

from keybuzz.contract import Hit, LintInput, Rule
from keybuzz.modules.postgres.settings import PatroniTuning


def check_patroni_timings(data: LintInput) -> Iterable[Hit]:
    tuning = data.site.settings(PatroniTuning)
    if tuning.ttl < 20:
        yield "keybuzz.yaml tuning.patroni.ttl", f"ttl {tuning.ttl} is below Patroni 4's minimum of 20", \
            "Patroni would silently use 20; set ttl: 20 or more"
    if tuning.loop_wait + 2 * tuning.retry_timeout > tuning.ttl:
        yield "keybuzz.yaml tuning.patroni", (
            f"loop_wait {tuning.loop_wait} + 2 x retry_timeout {tuning.retry_timeout} > ttl {tuning.ttl}"), \
            "Patroni 4 would silently rewrite these; e.g. ttl 20, loop_wait 2, retry_timeout 4"
    if tuning.loop_wait < 1 or tuning.retry_timeout < 1:
        yield "keybuzz.yaml tuning.patroni", "loop_wait and retry_timeout must be at least 1", "use whole seconds >= 1"


def check_patroni_raft(data: LintInput) -> Iterable[Hit]:
    if data.site.with_role("db") and data.site.settings(PatroniTuning).dcs == "raft":
        yield "keybuzz.yaml tuning.patroni.dcs", "Patroni's RAFT DCS is deprecated upstream since Patroni 3.0", \
            "set tuning.patroni.dcs: etcd for a supported DCS (3 etcd members on the db servers)"


def check_asynchronous(data: LintInput) -> Iterable[Hit]:
    if data.site.with_role("db") and not data.site.settings(PatroniTuning).synchronous_mode:
        yield "keybuzz.yaml tuning.patroni.synchronous_mode", (
            "asynchronous replication: a leader cut from its replicas while clients still reach it keeps "
            "acknowledging commits that the failover then loses (measured: thousands in seconds)"), \
            "keep synchronous_mode: true (one synchronous standby) unless losing acknowledged writes is acceptable"


RULES = (
    Rule("KB005", "error", "Patroni timings valid for Patroni 4", check_patroni_timings),
    Rule("KB006", "warning", "Patroni RAFT DCS deprecated upstream", check_patroni_raft),
    Rule("KB011", "warning", "PostgreSQL replication synchronous", check_asynchronous),
)
