"""CLI flags derived from DecodeConfig: one `--flag` per field, none written by hand.

Why: a decode option written by hand in several places drifts apart. Each DecodeConfig field
becomes a Typer option (its flags, type and help from the field), and the values given
come back typed, as a `{field name: value}` dict apart from the `--set` strings, so that
load_config checks them by the field's rule and names the flag the user typed.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from mt_cli.core.config import DecodeConfig, decode_fields, decode_flag

FLAGS_PARAM = "decode_flags"


def _flag_type(name: str) -> Any:
    """The field's scalar type (int, float, str), Optional stripped."""
    hint = typing.get_type_hints(DecodeConfig)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _parameter(field: dataclasses.Field) -> inspect.Parameter:
    flags = field.metadata["flags"] or (decode_flag(field.name),)
    option = typer.Option(*flags, help=field.metadata["doc"], show_default=False)
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[_flag_type(field.name) | None, option])


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
