"""Loading a config: YAML read within bounds, paths resolved against the file naming them,
`base:` chains and presets, `--set` overrides, then the typed sections (config_checks.py)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from mt_cli.core.config import Config
from mt_cli.core.config_checks import describe, from_dict
from mt_cli.core.errors import ConfigError, clip, show_value
from mt_cli.core.packaged import find_preset, preset_names
from mt_cli.core.yaml_text import AliasBomb, load_yaml_text


def _load_yaml(path: Path, shown: Path) -> dict[str, Any]:
    """The YAML mapping in `path`, every problem one error naming `shown` (the path as given:
    a symlink's target is not what the user named)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{shown}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot read config ({exc})") from None
    try:
        raw = load_yaml_text(text)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f"{shown}:{mark.line + 1}" if mark else str(shown)
        raise ConfigError(
            f"{where}: {exc.problem}; only plain YAML values are accepted (no !!python tags)"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark else str(shown)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}") from None
    except AliasBomb as exc:
        raise ConfigError(f"{shown}: {exc}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"{shown}: nested too deeply to read (thousands of levels of brackets or "
                          "indentation); a config is a few levels of sections") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: expected a mapping of sections at the top, got {type(raw).__name__}")
    return raw


def _absolute(base_dir: Path, value: str, where: str) -> str:
    """`value` resolved against `base_dir`; a NUL byte (no file system allows one) is a
    config error naming `where`, not a ValueError from the OS layer."""
    if "\x00" in value:
        raise ConfigError(f"{where}: {show_value(value)} is not a usable path (it contains a NUL byte)")
    return str((base_dir / value).resolve())


def _section_type(cls: type, name: str) -> type | None:
    """The dataclass a field of `cls` holds (directly, optionally, or as a tuple of them)."""
    hint = typing.get_type_hints(cls).get(name)
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate):
            return candidate  # type: ignore[return-value]
    return None


def _path_fields(cls: type, raw: Any, fix: Callable[[str], str]) -> Any:
    """`raw` (a section, or a list of them) with every `path=True` field's value passed to `fix`."""
    if isinstance(raw, list):
        return [_path_fields(cls, item, fix) for item in raw]
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for fld in dataclasses.fields(cls):
        if fld.name not in out:
            continue
        section = _section_type(cls, fld.name)
        if section is not None:
            out[fld.name] = _path_fields(section, out[fld.name], fix)
        elif fld.metadata.get("path") and isinstance(out[fld.name], str):
            out[fld.name] = fix(out[fld.name])
    return out


def _relative_path(value: str) -> bool:
    return bool(value) and value != "-" and not Path(value).is_absolute()


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Make file paths absolute against the directory of the YAML file naming them."""

    def fix(value: str) -> str:
        return _absolute(base_dir, value, f"a path in {base_dir}") if _relative_path(value) else value

    return _path_fields(Config, raw, fix)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def find_config(given: str, relative_to: Path, where: str) -> Path:
    """The file a config name stands for: a path (relative to `relative_to`) where one exists,
    else the preset of that name shipped in the package; a missing preset-like name (no
    directory, no suffix) is one line listing the presets."""
    candidate = Path(_absolute(relative_to, given, where))
    if candidate.exists():
        return candidate
    preset = find_preset(given)
    if preset is not None:
        return preset
    if len(Path(given).parts) == 1 and not Path(given).suffix:
        raise ConfigError(f"{candidate}: config file not found, and {given!r} is not a preset "
                          f"({', '.join(preset_names())})")
    return candidate


def _load_tree(shown: Path, seen: tuple[Path, ...] = (), bases: bool = True) -> dict[str, Any]:
    """The config at `shown` merged over its `base` chain (`bases=False`: a complete config,
    such as a model directory's, whose `base` would read a file outside it)."""
    path = shown.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(f"{shown}: 'base' inheritance loops ({chain})")
    raw = _resolve_paths(_load_yaml(path, shown), path.parent)
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not bases:
        raise ConfigError(f"{shown}: base: a model directory's config is complete and names no base, "
                          f"got {show_value(base)}; re-export the model")
    if not isinstance(base, str):
        raise ConfigError(f"base: expected a file name, got {describe(base)} ({shown})")
    return _merge(_load_tree(find_config(base, path.parent, "base"), (*seen, path)), raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `key.path=value`; the value is parsed as YAML (so 100 is an int)."""
    if "=" not in text:
        raise ConfigError(f"--set {show_value(text)}: expected key.path=value, e.g. train.max_steps=1000")
    key, _, value = text.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {show_value(text)}: missing key before '='")
    if value.strip().lower() in ("yes", "no", "on", "off", "y", "n"):
        return parts, value.strip()  # YAML 1.1 would turn these into booleans (no = Norwegian)
    try:
        parsed = load_yaml_text(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    except AliasBomb as exc:
        raise ConfigError(f"--set {clip(key.strip())}: the value cannot be used: {exc}") from None
    except RecursionError:
        raise ConfigError(f"--set {clip(key.strip())}: the value is nested too deeply to read") from None
    return parts, parsed


def _is_path_key(parts: list[str]) -> bool:
    """Whether dotted key `parts` (list indices included) names a `path=True` field."""
    cls: type | None = Config
    for part in parts:
        if cls is None:
            return False
        if part.isdigit():
            continue
        fld = next((f for f in dataclasses.fields(cls) if f.name == part), None)
        if fld is None:
            return False
        if fld.metadata.get("path"):
            return part == parts[-1]
        cls = _section_type(cls, part)
    return False


class Override(NamedTuple):
    """One `--set key.path=value`, parsed once: as typed, its key's parts, its YAML value."""

    text: str
    parts: list[str]
    value: Any


def parse_overrides(overrides: list[str]) -> list[Override]:
    return [Override(text, *parse_override(text)) for text in overrides]


def decode_keys(overrides: list[Override]) -> frozenset[str]:
    """The decode fields the overrides name (decode.beam_size=2 -> beam_size)."""
    return frozenset(o.parts[1] for o in overrides if len(o.parts) == 2 and o.parts[0] == "decode")


def apply_overrides(raw: dict[str, Any], overrides: list[Override]) -> dict[str, Any]:
    """Apply dotted overrides (`data.train.0.source=x` indexes lists); paths resolve against cwd."""
    import copy

    raw = copy.deepcopy(raw)
    for text, parts, value in overrides:
        if _is_path_key(parts) and isinstance(value, str) and _relative_path(value):
            value = _absolute(Path.cwd(), value, f"--set {show_value(text)}")
        node: Any = raw
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) > len(node):
                    raise ConfigError(f"--set {show_value(text)}: {clip('.'.join(parts[:depth]))} is a list of "
                                      f"{len(node)}; use an index 0..{len(node)}")
                index = int(part)
                if index == len(node):
                    node.append({})
                if last:
                    node[index] = value
                else:
                    if not isinstance(node[index], (dict, list)):
                        node[index] = [] if parts[depth + 1].isdigit() else {}
                    node = node[index]
            else:
                if not isinstance(node, dict):
                    raise ConfigError(f"--set {show_value(text)}: {clip('.'.join(parts[:depth]))} is not a section")
                if last:
                    node[part] = value
                else:
                    if not isinstance(node.get(part), (dict, list)):
                        node[part] = [] if parts[depth + 1].isdigit() else {}
                    node = node[part]
    return raw


def load_config(path: str | Path | None, overrides: list[str] | None = None,
                decode_flags: Mapping[str, Any] | None = None, bases: bool = True) -> Config:
    """Load a YAML config (with its bases), apply `--set` overrides, then the decode flags.

    `decode_flags` are the values Typer parsed (field name -> value), kept typed: no YAML
    round trip, and a bad one is reported under the flag the user typed (`--beam-size: ...`).
    """
    raw: dict[str, Any] = {}
    origin = "<defaults>"
    if path is not None:
        found = find_config(str(path), Path.cwd(), "config")  # a file, or a preset's name
        raw, origin = _load_tree(found, bases=bases), str(path) if Path(path).exists() else str(found)
    parsed = parse_overrides(list(overrides or []))  # the one parse of --set
    raw = apply_overrides(raw, parsed)
    if overrides:
        origin += " + --set"
    return from_dict(raw, origin, decode_flags, decode_keys(parsed))
