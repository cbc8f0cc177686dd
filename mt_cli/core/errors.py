"""User-facing errors: the CLI turns each into one line on stderr and exit code 1."""


class MtError(Exception):
    """An error caused by input the user can fix; its message is the whole story."""


class ConfigError(MtError):
    """Invalid YAML config, override or option value; `key` names the option at fault where
    one does (a dotted key, a flag or a request field), so a server can point at it."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class DataError(MtError):
    """Unreadable, misaligned or otherwise unusable text data."""


class CheckpointError(MtError):
    """Missing, corrupted or incompatible checkpoint or model directory."""


class ConstraintError(DataError):
    """A line's terminology constraints cannot be met (the caller names the file)."""
