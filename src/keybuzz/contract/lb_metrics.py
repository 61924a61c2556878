"""The metrics and alerts of a module's HAProxy (keybuzz.haproxy): its built-in Prometheus
exporter on the module's stats port, and the backend rules every module with a load balancer shares."""

from __future__ import annotations

from keybuzz.contract.declare import AlertRule, MetricsEndpoint


def metrics_endpoint(module: str, port: int) -> MetricsEndpoint:
    """HAProxy's built-in Prometheus exporter, served on the module's stats port."""
    return MetricsEndpoint(f"haproxy-{module}", "haproxy", port)


def backend_alerts(module: str, backends: tuple[str, ...], single_writer: tuple[str, ...] = ()) -> list[AlertRule]:
    """No UP server in a backend clients use; more than one UP in a backend that must send every
    write to one primary (its `one_up_rule` then refuses connections: writes stop). Both wait
    down_for_s: a restarted HAProxy counts every server UP until its first checks."""
    job = f"haproxy-{module}"
    rules = [AlertRule(f"HAProxyBackendDown{_camel(b)}",
                       f'haproxy_backend_active_servers{{job="{job}",proxy="{b}"}} < 1',
                       f"{{{{ $labels.hostname }}}}: HAProxy backend {b} has no UP server: clients of {module} fail",
                       f"the {module} servers behind it are all down or failing their checks: "
                       f"`keybuzz validate {module}`")
             for b in backends]
    rules += [AlertRule(f"HAProxyTwoWriters{_camel(b)}",
                        f'haproxy_backend_active_servers{{job="{job}",proxy="{b}"}} > 1',
                        f"{{{{ $labels.hostname }}}}: HAProxy backend {b} counts {{{{ $value }}}} UP servers "
                        "where one primary is expected: connections are refused",
                        f"two servers claim to be the primary: `keybuzz validate {module}`, then stop the stale one")
              for b in single_writer]
    return rules


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))
