"""The one converter between the frozen result dataclasses and JSON-plain data (``cattrs``).

A result document is its class's fields, in declaration order, by their names: nested results as
objects, tuples as lists, mappings as objects, datetimes as ISO 8601, ``None`` as null. Reading is
the inverse, typed by the class's annotations (tuples, optionals, nested classes, ``Literal`` values
checked); a key the class does not have is ignored and a missing one takes the field's default, so a
newer chatbench reads an older document. ``to_plain``/``from_plain`` do both for every class; the
few documents that differ from their fields say how next to their class with ``register``: keys
written for readers that do not recompute them (``derived``, e.g. ``SampleStats.unstable``), keys
written first (``first``), a whole document shape (``write``), or an older shape brought up to date
before reading (``read``).

Why cattrs rather than a walk of our own: it covers every shape these classes use (frozen
dataclasses, ``X | None``, ``tuple[X, ...]``, ``Mapping[str, X]``, ``Literal``) with per-class hooks,
and names the failing field's path when a document does not read. Its import (27-30 ms with ``attrs``,
best of 12 ``python -X importtime`` runs here) is paid only by the modules that hold results, which import
numpy anyway; ``chatbench --version`` imports neither.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn
from cattrs.strategies import configure_union_passthrough
from cattrs.v import format_exception

T = TypeVar("T")

_converter = cattrs.Converter(unstruct_collection_overrides={Sequence: list, tuple: list, Mapping: dict})
configure_union_passthrough(int | str | float | bool | None, _converter)  # e.g. a key that is int or uuid text
_converter.register_unstructure_hook(datetime, datetime.isoformat)
_converter.register_structure_hook(datetime, lambda value, _: datetime.fromisoformat(value))


def _text(value: Any, _: Any) -> str:
    """Text reads only from text: cattrs's default ``str(value)`` would read a null as the string "None"."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


_converter.register_structure_hook(str, _text)


class DocumentError(ValueError):
    """A document that does not read as its class; the message names the field's path and what is wrong."""


def to_plain(obj: Any) -> Any:
    """``obj`` (a result dataclass, or any value holding them) as JSON-plain data: its document."""
    return _converter.unstructure(obj)


def from_plain(cls: type[T], data: Any) -> T:
    """The ``cls`` a document describes; ``DocumentError`` (one line, naming the field) when it does not."""
    try:
        return _converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        problems = cattrs.transform_error(exc, path=cls.__name__, format_exception=_reason)
        raise DocumentError("; ".join(problems)) from None


def fields_plain(obj: Any) -> dict[str, Any]:
    """``obj``'s fields as plain data, in declaration order, without its class's ``register`` shape."""
    return _fields_writer(type(obj))(obj)


def register(
    cls: type[T],
    *,
    derived: Sequence[str] = (),
    first: Sequence[str] = (),
    write: Callable[[T], Any] | None = None,
    read: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> None:
    """Declare how ``cls``'s document differs from its fields.

    ``derived``: properties written after the fields (ignored when read back: the class recomputes them);
    ``first``: keys (fields or derived) written before the others, in this order; ``write``: the whole
    document of one object instead (a rendering: verdicts and lines computed for a report's readers);
    ``read``: turns a document, possibly of an older shape, into the fields ``cls`` reads.
    """
    def shaped(obj: T) -> dict[str, Any]:
        data = fields_plain(obj) | {name: to_plain(getattr(obj, name)) for name in derived}
        return {name: data[name] for name in first} | data

    writer = write if write is not None else shaped if derived or first else None
    if writer is not None:
        _converter.register_unstructure_hook(cls, writer)
    if read is not None:
        upgrade = read

        def structure(data: Any, _: Any) -> T:
            return _fields_reader(cls)(upgrade(data), cls)

        _converter.register_structure_hook(cls, structure)


def _reason(exc: BaseException, type_: Any) -> str:
    """What is wrong with one value; cattrs's own checks (a value outside a ``Literal``) raise a bare Exception."""
    return f"invalid value ({exc})" if type(exc) is Exception else format_exception(exc, type_)


_writers: dict[type, Callable[[Any], dict[str, Any]]] = {}
_readers: dict[type, Callable[[Mapping[str, Any], Any], Any]] = {}


def _fields_writer(cls: type) -> Callable[[Any], dict[str, Any]]:
    """The generated field-by-field writer of ``cls`` (made on first use: at import it would cost every command)."""
    if cls not in _writers:
        _writers[cls] = make_dict_unstructure_fn(cls, _converter)
    return _writers[cls]


def _fields_reader(cls: type) -> Callable[[Mapping[str, Any], Any], Any]:
    if cls not in _readers:
        _readers[cls] = make_dict_structure_fn(cls, _converter)
    return _readers[cls]
