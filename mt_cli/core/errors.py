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


MAX_SHOWN = 200  # characters of a value an error message quotes


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """`text` cut to `limit` characters: a message names a value, it does not reproduce it (a
    10 MB string, or an alias-expanded list, once made a 351 MB error line)."""
    return text if len(text) <= limit else f"{text[:limit - 3]}... ({len(text)} characters)"


def show_value(value: object, limit: int = MAX_SHOWN) -> str:
    """The one way an error message quotes a value: its repr, built only as far as it is shown
    (reprlib stops at a few items per level), then clipped to `limit` characters."""
    import reprlib

    shortened = reprlib.Repr()
    shortened.maxlevel, shortened.maxlist, shortened.maxtuple, shortened.maxdict = 3, 8, 8, 8
    shortened.maxset = shortened.maxfrozenset = shortened.maxdeque = shortened.maxarray = 8
    shortened.maxstring = shortened.maxother = limit
    text = shortened.repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."
