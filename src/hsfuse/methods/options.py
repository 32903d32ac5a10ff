"""Typed method options: each method's keyword options as one frozen dataclass, documented field by field.

A method ``fuse_<name>(y, physics, *, a=..., b=...)`` declares its options once, as a frozen dataclass whose
fields are exactly its keyword options, with the paper's or the original code's defaults and a help text::

    @dataclass(frozen=True)
    class GsaOptions(MethodOptions):
        degrade: Literal["physics", "block_mean"] = option("physics", "how the MSI is brought to the HSI grid")

The registry (:mod:`hsfuse.methods.registry`) stores the class in the method's ``MethodSpec``; the command line
builds an instance from ``--option key=value`` pairs with :func:`parse_options` (types checked against the
annotations, unknown keys refused with the list of valid ones) and ``hsfuse methods NAME`` prints
:func:`describe_options`. Runtime arguments that are not options of the algorithm (``progress``, ``device``,
``weights``) are passed separately.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

from ..errors import InputError

__all__ = ["MethodOptions", "option", "border_option", "pad_option", "parse_options", "parse_value", "describe_options",
           "options_from"]

#: keyword arguments of method functions that are not algorithm options (given by the caller at run time:
#: a progress callback, the device, trained weights, a no-data mask)
RUNTIME_ARGUMENTS = ("progress", "device", "weights", "valid")


@dataclass(frozen=True)
class MethodOptions:
    """Base class of every method's options (a frozen dataclass; fields = the method's keyword options)."""

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of the method's function (shallow: arrays are not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """``{name: help text}`` for every option."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def option(default: Any, help: str, *, cli: bool = True, gt: float | None = None, ge: float | None = None,
           le: float | None = None) -> Any:
    """A dataclass field with a default and a help text. ``cli=False`` marks an option that only Python callers
    can give (an array, e.g. a subspace basis): the command line refuses it with a message. ``gt``/``ge``/``le``
    bound a numeric value (each element of a tuple); :func:`options_from` refuses a value outside them when the
    options are made, before any image is read."""
    bounds = {k: v for k, v in (("gt", gt), ("ge", ge), ("le", le)) if v is not None}
    return dataclasses.field(default=default, metadata={"help": help, "cli": cli, "bounds": bounds})


_BOUND_TEXT = {"gt": ">", "ge": ">=", "le": "<="}
_BOUND_TEST = {"gt": lambda v, b: v > b, "ge": lambda v, b: v >= b, "le": lambda v, b: v <= b}


def _range_text(bounds: Mapping[str, float]) -> str:
    return " and ".join(f"{_BOUND_TEXT[k]} {b:g}" for k, b in bounds.items())


def _out_of_range(value: Any, bounds: Mapping[str, float]) -> bool:
    """Whether a number (or any number in a tuple/list) breaks one of ``bounds``; other values never do."""
    if isinstance(value, (tuple, list)):
        return any(_out_of_range(v, bounds) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not all(_BOUND_TEST[k](value, b) for k, b in bounds.items())


def border_option() -> Any:
    """The ``border`` option of the FFT solvers (FUSE, HySure, LTMR, CSTF): ``"circular"`` or ``"pad"``."""
    return option("circular", "image borders: circular (the periodic model, exact for circular physics) or pad "
                  "(zero-filled borders renormalised, smooth periodic extension by a margin, solve, crop: for real, "
                  "non-periodic borders; accepts physics with boundary zero or reflect)")


def pad_option() -> Any:
    """The ``pad`` option that goes with :func:`border_option`: the margin in LR pixels, or ``None`` (default)."""
    return option(None, "margin of border=pad in LR pixels (HR: r * pad); none = 3 PSF widths, at least 2 LR pixels", ge=0)


def _hints(cls: type) -> dict[str, Any]:
    import sys

    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, globalns=vars(module) if module else None)


def _is_none_type(t: Any) -> bool:
    return t is type(None)


def _describe_type(t: Any) -> str:
    origin = typing.get_origin(t)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(t))
    if origin in (Union, types.UnionType):
        return " | ".join(_describe_type(a) for a in typing.get_args(t))
    if origin in (tuple, list, Sequence):
        args = [a for a in typing.get_args(t) if a is not Ellipsis]
        return f"list of {_describe_type(args[0])}" if args else "list"
    if _is_none_type(t):
        return "none"
    return getattr(t, "__name__", str(t))


def parse_value(text: str, annotation: Any, *, name: str) -> Any:
    """Convert command-line text to a value of ``annotation`` (``int``, ``float``, ``bool``, ``str``,
    ``Literal[...]``, ``X | None`` with ``none``, tuples/lists of those as comma-separated text); else
    :class:`InputError` saying what was expected."""
    origin = typing.get_origin(annotation)
    expected = _describe_type(annotation)
    bad = InputError(f"option {name}={text!r}: expected {expected}")
    if origin in (Union, types.UnionType):
        args = typing.get_args(annotation)
        if any(_is_none_type(a) for a in args) and text.strip().lower() in ("none", "null", ""):
            return None
        for arg in args:
            if _is_none_type(arg):
                continue
            try:
                return parse_value(text, arg, name=name)
            except InputError:
                continue
        raise bad
    if origin is Literal:
        for choice in typing.get_args(annotation):
            if str(choice) == text.strip():
                return choice
        raise bad
    if origin in (tuple, list, Sequence):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        items = [s for s in text.split(",") if s.strip()]
        values = [parse_value(s, args[0] if args else str, name=name) for s in items]
        return tuple(values) if origin is tuple else values
    if annotation is bool:
        low = text.strip().lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise bad
    if annotation is int:
        try:
            number = float(text)
        except ValueError:
            raise bad from None
        if not math.isfinite(number) or number != int(number):
            raise bad
        return int(number)
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise bad from None
    if annotation is str:
        return text
    raise InputError(f"option {name} ({expected}) cannot be given on the command line; set it from Python")


def _check_type(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits ``annotation`` (the subset of types options use; arrays/tensors pass ``Any``)."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_check_type(value, a) for a in typing.get_args(annotation))
    if origin is Literal:
        return value in typing.get_args(annotation)
    if origin in (tuple, list, Sequence):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return isinstance(value, (tuple, list)) and all(_check_type(v, args[0]) for v in value) if args else True
    if _is_none_type(annotation):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def options_from(cls: type[MethodOptions], values: Mapping[str, Any] | MethodOptions | None, *,
                 method: str) -> MethodOptions:
    """An instance of ``cls`` from a mapping of Python values (or an instance, returned as is): unknown keys
    and values of the wrong type are refused with one :class:`InputError` naming the valid keys/types."""
    if isinstance(values, cls):
        return values
    if isinstance(values, MethodOptions):
        raise InputError(f"method {method!r} takes {cls.__name__}, got {type(values).__name__}")
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(f"method {method!r} has no option(s) {', '.join(unknown)}; its options are: "
                         f"{', '.join(fields) if fields else '(none)'} (see 'hsfuse methods {method}')")
    hints = _hints(cls)
    for key, value in values.items():
        if not _check_type(value, hints[key]):
            raise InputError(f"option {key} of method {method!r} must be {_describe_type(hints[key])}, got "
                             f"{value!r}")
        # no option means anything by NaN or infinity, nor outside its declared range: refused here, before any
        # work (checks that need the images, e.g. a subspace no larger than the band count, are the method's own)
        if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, (tuple, list))
                                                                       else (value,))):
            raise InputError(f"option {key} of method {method!r} must be a finite number, got {value!r}")
        bounds = fields[key].metadata.get("bounds", {})
        if _out_of_range(value, bounds):
            raise InputError(f"option {key} of method {method!r} must be {_range_text(bounds)}, got {value!r} "
                             f"(see 'hsfuse methods {method}')")
    return cls(**values)


def parse_options(cls: type[MethodOptions], pairs: Sequence[str], *, method: str) -> MethodOptions:
    """An instance of ``cls`` from command-line ``key=value`` texts (``--option`` repeated)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InputError(f"--option {pair!r} must look like KEY=VALUE (see 'hsfuse methods {method}')")
        if key not in fields:
            raise InputError(f"method {method!r} has no option {key!r}; its options are: "
                             f"{', '.join(fields) if fields else '(none)'} (see 'hsfuse methods {method}')")
        if not fields[key].metadata.get("cli", True):
            raise InputError(f"option {key} of method {method!r} takes an array; set it from Python "
                             f"(hsfuse.fuse(..., {key}=...))")
        if key in values:
            raise InputError(f"option {key} is given twice")
        values[key] = parse_value(text, hints[key], name=key)
    return options_from(cls, values, method=method)


def format_value(value: Any) -> str:
    """An option value as command-line text (the inverse of :func:`parse_value` for the supported types)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def describe_options(cls: type[MethodOptions]) -> list[dict[str, str]]:
    """One row per option: ``name``, ``type``, ``default`` (command-line text), ``help``."""
    hints = _hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        bounds = f.metadata.get("bounds", {})
        rows.append({"name": f.name, "type": _describe_type(hints[f.name])
                     + (f" ({_range_text(bounds)})" if bounds else ""),
                     "default": format_value(default), "help": f.metadata.get("help", "")
                     + ("" if f.metadata.get("cli", True) else " (Python only)")})
    return rows
