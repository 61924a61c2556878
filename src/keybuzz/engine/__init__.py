"""The engine: DeployContext over SSH and the install / validate / cleanup orchestration."""

from keybuzz.engine.context import ConvergeFailed, Engine, Stats
from keybuzz.engine.install import (
    InstallFailed,
    ModuleResult,
    PrecheckFailed,
    cleanup_module,
    install_modules,
    resume_command,
    select_modules,
    validate_module,
)

__all__ = [
    "ConvergeFailed",
    "Engine",
    "InstallFailed",
    "ModuleResult",
    "PrecheckFailed",
    "Stats",
    "cleanup_module",
    "install_modules",
    "resume_command",
    "select_modules",
    "validate_module",
]
