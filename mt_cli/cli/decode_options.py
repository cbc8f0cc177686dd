"""CLI flags derived from dataclass fields: one `--flag` per field, none written by hand.

Why: a decode option written by hand in several places drifts apart. Each DecodeConfig field
becomes a Typer option (its flags, type and help from the field), and the values given
come back typed, as a `{field name: value}` dict apart from the `--set` strings, so that
load_config checks them by the field's rule and names the flag the user typed. `mt-cli
serve`'s flags come from ServeSettings the same way (`with_settings_options`): each field's
default, doc and flag, the command receiving the settings built from them.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from mt_cli.core.config import DecodeConfig, decode_fields, decode_flags

FLAGS_PARAM = "decode_flags"


def _flag_type(cls: type, name: str) -> Any:
    """The field's scalar type (int, float, str), Optional stripped; a tuple of strings is
    given as one comma-separated string."""
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) is tuple:
        return str
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _parameter(field: dataclasses.Field) -> inspect.Parameter:
    option = typer.Option(*decode_flags(field.name), help=field.metadata["doc"], show_default=False)
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[_flag_type(DecodeConfig, field.name) | None, option])


def given_flags(values: dict[str, Any]) -> dict[str, Any]:
    """The flags given (None = not given), by field name, with the values Typer parsed."""
    return {name: value for name, value in values.items() if value is not None}


def with_decode_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command one option per DecodeConfig field; it receives the ones given as a
    typed `{field name: value}` dict in its `decode_flags` parameter."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != FLAGS_PARAM]
    names = [f.name for f in decode_fields()]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        given = {name: kwargs.pop(name) for name in names}
        command(**kwargs, **{FLAGS_PARAM: given_flags(given)})

    parameters = own + [_parameter(f) for f in decode_fields()]
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


def _setting_parameter(cls: type, field: dataclasses.Field, flag: Callable[[str], str]) -> inspect.Parameter:
    default = field.default_factory() if field.default is dataclasses.MISSING else field.default
    kind = _flag_type(cls, field.name)
    if kind is str and isinstance(default, tuple):
        default = ",".join(default)
    option = typer.Option(flag(field.name), help=field.metadata["doc"])
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, option])


def _setting_value(cls: type, name: str, value: Any) -> Any:
    """A flag's value as the field holds it: a comma-separated string as a tuple of its names."""
    if typing.get_origin(typing.get_type_hints(cls)[name]) is tuple:
        return tuple(part for part in str(value).split(",") if part.strip())
    return value


def with_settings_options(cls: type, param: str, flag: Callable[[str], str]) -> Callable[..., Any]:
    """Give a command one option per field of dataclass `cls` (`flag(name)`, the field's default
    and doc); it receives the instance they make in its `param` parameter (unchecked: the
    dataclass's own `check` says what is wrong, naming the flag)."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != param]
        fields = dataclasses.fields(cls)

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> None:
            values = {f.name: _setting_value(cls, f.name, kwargs.pop(f.name)) for f in fields}
            command(**kwargs, **{param: cls(**values)})

        parameters = own + [_setting_parameter(cls, f, flag) for f in fields]
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
