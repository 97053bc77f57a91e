"""Turn TOML tables into frozen attrs classes, checking every key, type and range.

A deliberately strict converter: an integer is never silently truncated, a string is never
parsed as a number, and every failure names the file, the dotted key path, what was
expected and what was found.
"""

from __future__ import annotations

import math
import re
import string
import types
import typing
import urllib.parse
from typing import Any, Literal, Union

import attrs

from genkit.components import ComponentRef
from genkit.errors import PluginError, RecipeError
from genkit.registry import get_registry


def structure(cls: type, data: Any, *, path: str, file: str | None) -> Any:
    """Build ``cls`` (an attrs class) from the mapping ``data``."""
    if not isinstance(data, dict):
        raise RecipeError(file, path, f"a table of {cls.__name__} settings", data)
    fields = {f.name: f for f in attrs.fields(cls) if settable(f)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise RecipeError(file, _join(path, key), f"one of the known keys ({known})", None, note=" (unknown key)")
    kwargs = {}
    for name, field in fields.items():
        kind = field.metadata.get("plugin_kind")
        if kind is not None and name in data:
            kwargs[name] = structure_component(kind, data[name], path=_join(path, name), file=file)
        elif name in data:
            kwargs[name] = convert(hints[name], data[name], path=_join(path, name), file=file)
        elif field.default is attrs.NOTHING:
            wanted = f"a {kind} plugin's name" if kind is not None else f"a value ({_type_name(hints[name])})"
            raise RecipeError(file, _join(path, name), wanted, None, note=" (missing)")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        key = getattr(exc, "key", None)
        if key is None:
            raise RecipeError(file, path, str(exc)) from None
        raise RecipeError(
            file, _join(path, key), getattr(exc, "expected", str(exc)), getattr(exc, "found", None)
        ) from None


def convert(tp: Any, value: Any, *, path: str, file: str | None) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it in that type."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if attrs.has(tp):
        return structure(tp, value, path=path, file=file)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return convert(option, value, path=path, file=file)
            except RecipeError:
                continue
        raise RecipeError(file, path, _type_name(tp), value)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) in {type(c) for c in choices}:
            return value
        raise RecipeError(file, path, "one of " + ", ".join(repr(c) for c in choices), value)
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise RecipeError(file, path, _type_name(tp), value)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [convert(args[0], v, path=f"{path}[{i}]", file=file) for i, v in enumerate(value)]
        elif origin is tuple and args:
            if len(args) != len(value):
                raise RecipeError(file, path, f"an array of {len(args)} values", value)
            items = [convert(a, v, path=f"{path}[{i}]", file=file) for i, (a, v) in enumerate(zip(args, value))]
        else:
            inner = args[0] if args else Any
            items = [convert(inner, v, path=f"{path}[{i}]", file=file) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(file, path, "a table", value)
        _, vt = typing.get_args(tp) or (str, Any)
        return {k: convert(vt, v, path=_join(path, k), file=file) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise RecipeError(file, path, "true or false", value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT64[0] <= value <= INT64[1]:  # TOML's integers are 64-bit; so are torch's sizes and seeds
                raise RecipeError(file, path, f"an integer from {INT64[0]} to {INT64[1]}", value)
            return value
        raise RecipeError(file, path, "an integer", value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # TOML reads inf and nan; one update with either makes every weight NaN
                raise RecipeError(file, path, "a finite number", value)
            return float(value)
        raise RecipeError(file, path, "a number", value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise RecipeError(file, path, "a string", value)
    raise TypeError(f"genkit.schema cannot convert to {tp!r} (at {path})")


INT64 = (-(2**63), 2**63 - 1)
#: a distribution's name as packaging allows it (PEP 508): what ``pip install`` is then suggested with
DISTRIBUTION = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
#: the seeds numpy, scikit-learn and torch all accept
SEEDS = (0, 2**32 - 1)


def settable(field: attrs.Attribute) -> bool:
    """Whether a recipe may set ``field``: not when it is computed, or marked ``metadata={"internal": True}``."""
    return field.init and not field.metadata.get("internal", False)


def seed_field(default: int = 0):
    """An attrs field holding a random seed, 0 … 2**32 − 1."""
    return attrs.field(default=default, validator=in_range(*SEEDS))


def unstructure(obj: Any) -> Any:
    """The inverse of :func:`structure`: plain dicts, lists and scalars, ``None`` values dropped (TOML has no null)."""
    if isinstance(obj, ComponentRef):
        return unstructure_component(obj)
    if attrs.has(type(obj)):
        out = {}
        for field in attrs.fields(type(obj)):
            value = getattr(obj, field.name)
            if value is not None and settable(field):
                out[field.name] = unstructure(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [unstructure(v) for v in obj]
    if isinstance(obj, dict):
        return {k: unstructure(v) for k, v in obj.items() if v is not None}
    return obj


# --- references to plugins ----------------------------------------------------------------------


def structure_component(kind: str, value: Any, *, path: str, file: str | None) -> ComponentRef:
    """Validate a recipe's reference to a plugin: a bare name, or a table with ``name``, optional ``provider`` and
    settings."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise RecipeError(file, path, f"a {kind} plugin name or a table with 'name'", value)
    value = dict(value)
    name = value.pop("name", None)
    if not isinstance(name, str):
        raise RecipeError(file, f"{path}.name", f"the name of a {kind} plugin (a string)", name)
    provider = value.pop("provider", None)
    if provider is not None and (not isinstance(provider, str) or not DISTRIBUTION.fullmatch(provider)):
        raise RecipeError(file, f"{path}.provider", "a distribution name (letters, digits, '.', '_', '-')", provider)
    try:
        spec = get_registry().get(kind, name, provider=provider)
    except PluginError as exc:
        raise PluginError.at(file, f"{path}.name", str(exc)) from None
    settings = structure(spec.config, value, path=path, file=file)
    return ComponentRef(name, settings, spec.provider)


def unstructure_component(ref: ComponentRef) -> dict:
    out = {"name": ref.name}
    if ref.provider:
        out["provider"] = ref.provider
    if ref.settings is not None:
        out.update(unstructure(ref.settings))
    return out


def check(condition: bool, key: str, expected: str, found: Any = None) -> None:
    """Raise a ``ValueError`` that :func:`structure` reports at ``key`` (for ``__attrs_post_init__`` checks)."""
    if not condition:
        exc = ValueError(f"{key}: expected {expected}, found {found!r}")
        exc.key, exc.expected, exc.found = key, expected, found  # type: ignore[attr-defined]
        raise exc


def in_range(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False):
    """An attrs validator: ``low <= value <= high`` (``<`` where open); ``None`` values pass."""
    lo_op, hi_op = (">" if low_open else ">="), ("<" if high_open else "<=")
    parts = [f"{lo_op} {low}" if low is not None else "", f"{hi_op} {high}" if high is not None else ""]
    expected = "a value " + " and ".join(p for p in parts if p)

    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            return
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            ok_low = low is None or (v > low if low_open else v >= low)
            ok_high = high is None or (v < high if high_open else v <= high)
            check(ok_low and ok_high, attribute.name, expected, value)

    return validate


# --- values with a format, checked when the recipe resolves (before anything is read or fetched) ---------------


def checksum_field(default: str, *, algorithm: str, digits: int):
    """An attrs field holding the hexadecimal ``algorithm`` checksum of a file, ``digits`` digits in either case (kept
    in lower case, as ``hashlib`` writes it), or ``""`` for none."""

    def validate(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        ok = value == "" or (len(value) == digits and all(c in string.hexdigits for c in value))
        check(ok, attribute.name, f'an {algorithm} checksum of {digits} hexadecimal digits, or "" for none', value)

    return attrs.field(default=default, converter=_lower, validator=validate)


def url_field(default: str, *, schemes: tuple[str, ...] = ("https", "http")):
    """An attrs field holding the URL of a file to fetch: one of ``schemes``, a host, a valid port, no spaces."""
    wanted = " or ".join(f"{scheme}://" for scheme in schemes)

    def validate(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        parts = urllib.parse.urlsplit(value) if value.isprintable() and not any(c.isspace() for c in value) else None
        try:
            ok = parts is not None and parts.scheme in schemes and bool(parts.hostname) and (parts.port or 1) > 0
        except ValueError:  # a port that is not a number from 0 to 65535
            ok = False
        check(ok, attribute.name, f"a {wanted} URL with a host and no spaces (https://example.org/file.tar.gz)", value)

    return attrs.field(default=default, validator=validate)


def hub_repo_field():
    """An attrs field holding a Hugging Face Hub repo id (``namespace/name``), or ``""`` for none."""

    def validate(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        if value == "":
            return
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(value)
            ok = True
        except HFValidationError:
            ok = False
        check(ok, attribute.name, "a Hub repo id 'namespace/name' (letters, digits, '-', '_', '.'), or \"\"", value)

    return attrs.field(default="", validator=validate)


def revision_field():
    """An attrs field holding a git revision of a Hub repo (a branch, tag or commit), or ``""`` for its main branch."""

    def validate(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        ok = value == "" or (REVISION.fullmatch(value) is not None and ".." not in value and value[0] != "-")
        check(ok, attribute.name, 'a branch, tag or commit name (no spaces, "..", or leading "-"), or ""', value)

    return attrs.field(default="", validator=validate)


#: what git allows in a ref name: no control characters, spaces, ~ ^ : ? * [ or backslash
REVISION = re.compile(r"[^\x00-\x20\x7f~^:?*\[\\]+")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        return f"an array of {_type_name(args[0]) if args else 'values'}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )
