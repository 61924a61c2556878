"""What the proxies do, asked through them with PyMySQL as the application user: which Galera
node a connection lands on, and through which proxy (MariaDB sees the proxy as the client)."""

from __future__ import annotations

import asyncio

from keybuzz.modules.mariadb import client
from keybuzz.modules.proxysql import layout
from keybuzz.site import Site

WHO_SQL = "SELECT @@wsrep_node_name, SUBSTRING_INDEX(USER(), '@', -1)"


def who(site: Site, host: str, port: int = layout.CLIENT_PORT) -> tuple[str, str]:
    """(Galera node name, the proxy's hostname or address) of one new connection through `host`."""
    node, client_ip = client.query(site, host, WHO_SQL, port=port)[0]
    return str(node), proxy_name(site, str(client_ip))


def proxy_name(site: Site, address: str) -> str:
    """The proxysql server with this address (the address itself when none has it)."""
    return next((s.hostname for s in layout.proxies(site) if str(s.private_ip) == address), address)


async def writers_through(site: Site, host: str, connections: int, port: int = layout.CLIENT_PORT) -> set[str]:
    """The Galera nodes that `connections` new connections through `host` landed on."""
    found = await asyncio.gather(*(asyncio.to_thread(who, site, host, port) for _ in range(connections)))
    return {node for node, _ in found}
