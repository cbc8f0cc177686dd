"""Optional capabilities come as pip extras; a command that needs one says which to install."""

from __future__ import annotations

import importlib.util

from mt_cli.core.errors import ConfigError


def installed(module: str) -> bool:
    """Whether an optional package can be imported (nothing is imported to find out)."""
    return importlib.util.find_spec(module) is not None


def require(module: str, extra: str, purpose: str) -> None:
    """Fail with one line naming the extra unless `module` can be imported."""
    if not installed(module):
        raise ConfigError(f"{purpose} needs the '{extra}' extra: pip install 'mt-cli[{extra}]' "
                          f"(the package {module} is not installed)")
