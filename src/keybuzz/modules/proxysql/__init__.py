"""Module 8, ProxySQL in front of Galera: one writer, behind the lb-mariadb load balancer."""

from keybuzz.modules.proxysql.module import MODULE, ProxysqlModule

__all__ = ["MODULE", "ProxysqlModule"]
