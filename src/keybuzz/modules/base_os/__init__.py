"""Module 2, base OS & security: least-privilege firewall per role, SSH hardening, DNS, sysctls."""

from keybuzz.modules.base_os.module import MODULE, BaseOsModule

__all__ = ["MODULE", "BaseOsModule"]
