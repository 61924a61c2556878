"""The local multi-host lab: `from keybuzz.lab import Lab`."""

from keybuzz.lab.errors import LabError
from keybuzz.lab.lab import DEFAULT_DIR, HostStatus, Lab, LabHost, UpReport
from keybuzz.lab.topology import DEFAULT_SUBNET

__all__ = ["DEFAULT_DIR", "DEFAULT_SUBNET", "HostStatus", "Lab", "LabError", "LabHost", "UpReport"]
