"""Module 7, MariaDB Galera: 3 synchronous nodes, one writer at a time, automatic cold start."""

from keybuzz.modules.mariadb.module import MODULE, MariadbModule

__all__ = ["MODULE", "MariadbModule"]
