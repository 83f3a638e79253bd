"""Command-line flags generated from `FitConfig`'s fields: one description per setting.

`add_setting(parser, "dropout")` adds `--dropout` with the field's description as
its help, its default, its choices (a `Literal`) and a converter for its type; for
an "auto" field the help ends with what auto picks (training.defaults.auto_help).
`fit` gets every field this way, and the other commands the few they share
(`--precision`, `--engine`, ...), so no help text is written twice. No TensorFlow.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from pydantic.fields import FieldInfo

from training.config import FitConfig
from training.defaults import auto_help

ON_OFF: dict[str, bool] = {"on": True, "off": False, "true": True, "false": False}


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def setting_help(name: str) -> str:
    """The field's description, then what "auto" means for it when that depends on data."""
    info = FitConfig.model_fields[name]
    auto = auto_help(name)
    return f"{info.description}; {auto}" if auto else str(info.description)


def _parts(annotation: Any) -> tuple[set[type], list[str]]:
    """`int | Literal["auto"] | None` -> ({int, NoneType}, ["auto"])."""
    types_: set[type] = set()
    words: list[str] = []
    origin = typing.get_origin(annotation)
    members = (
        typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    )
    for member in members:
        if typing.get_origin(member) is Literal:
            words += [str(v) for v in typing.get_args(member)]
        else:
            types_.add(member)
    return types_, words


def _number_or_words(kind: type, words: list[str]) -> Callable[[str], Any]:
    """A converter: a number of `kind`, or one of `words` ("auto")."""
    noun = "a whole number" if kind is int else "a number"

    def convert(text: str) -> Any:
        if text in words:
            return text
        try:
            return kind(text)
        except ValueError:
            extra = f" or {' or '.join(words)}" if words else ""
            raise argparse.ArgumentTypeError(f"expected {noun}{extra}, got {text!r}") from None

    convert.__name__ = kind.__name__  # argparse names the type in its own messages
    return convert


def _on_off_auto(text: str) -> bool | str:
    if text.lower() == "auto":
        return "auto"
    if text.lower() not in ON_OFF:
        raise argparse.ArgumentTypeError(f"expected auto, on or off, got {text!r}")
    return ON_OFF[text.lower()]


def add_setting(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the flag of FitConfig field `name`, described by the field alone."""
    info: FieldInfo = FitConfig.model_fields[name]
    kinds, words = _parts(info.annotation)
    kinds.discard(type(None))
    flag, text, default = flag_name(name), setting_help(name), info.default
    if kinds == {bool} and words:  # --flag [auto|on|off]; the flag alone means on
        parser.add_argument(
            flag,
            type=_on_off_auto,
            nargs="?",
            const=True,
            default=default,
            metavar="{auto,on,off}",
            help=f"{text}; the flag alone: on",
        )
    elif kinds == {bool}:
        parser.add_argument(flag, action="store_true", default=default, help=text)
    elif not kinds:  # only words: a choice
        parser.add_argument(flag, choices=words, default=default, help=text)
    elif kinds <= {int, float}:
        kind = float if float in kinds else int
        parser.add_argument(flag, type=_number_or_words(kind, words), default=default, help=text)
    else:  # free text (paths, addresses, layer and weight names): FitConfig checks it
        parser.add_argument(flag, default=default, help=text)


def add_settings(parser: argparse.ArgumentParser, names: list[str] | None = None) -> None:
    """Flags for `names` (default: every FitConfig field, in the class's order)."""
    for name in names or list(FitConfig.model_fields):
        add_setting(parser, name)
