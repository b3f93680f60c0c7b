"""Hyper-parameters given by name (``--param key=value``, ``--input key=value``, a notebook's dict)
checked against a solver's constructor before anything is read or fitted, the same way for
``fs solve`` and ``fs benchmark``: an unknown name, a parameter that carries store data, or text
where the constructor takes numbers is one InputError naming the parameter."""
from __future__ import annotations

import inspect
import json
import math
from collections.abc import Iterable
from typing import Any

from solvers.errors import InputError


def parse_pairs(pairs: Iterable[str], option: str) -> dict[str, Any]:
    """``key=value`` strings as a dict, values parsed as JSON where they are JSON."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{option} takes key=value, got {pair!r}")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def parse_method_pairs(pairs: Iterable[str], option: str = "--param") -> dict[str, dict[str, Any]]:
    """``method.key=value`` pairs (``fs benchmark --param/--input``) by method, values as ``parse_pairs``."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        method, dot, key = name.partition(".")
        if not sep or not dot or not method.strip() or not key.strip():
            raise InputError(f"{option} takes method.key=value (e.g. gda.covariance=oas), got {pair!r}")
        out.setdefault(method.strip(), {}).update(parse_pairs([f"{key}={value}"], option))
    return out


def check_params(name: str, cls: type, params: dict[str, Any]) -> None:
    """Refuse hyper-parameters solver ``name`` does not have, data parameters (read from the store,
    not given by hand) and values that do not fit the constructor's annotation."""
    from workflows.inputs.arrays import INPUTS

    data = set(getattr(cls, "_data_params", ()))
    signature = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    offered = [p for p in signature if p != "self" and p not in data]
    inputs = {spec.name for spec in INPUTS.get(name, ())}
    for key, value in params.items():
        if key in inputs:
            raise InputError(f"{key} names store contents: give --input {key}=..., not --param")
        if key in data:
            raise InputError(f"{key} is read from the store (--bank, --input), not given as --param")
        if key not in offered:
            raise InputError(f"{name} has no parameter {key!r} (it has: {', '.join(offered)}; see fs solve --list)")
        annotation = signature[key].annotation
        if annotation is not inspect.Parameter.empty and not matches(value, str(annotation)):
            shown = value if isinstance(value, str) else json.dumps(value)
            raise InputError(f"--param {key}={shown}: {key} takes {annotation}")


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char == "["
        depth -= char == "]"
        if char == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return parts + [text[start:].strip()]


_SCALARS = ("None", "bool", "int", "float", "str")


def matches(value: Any, annotation: str) -> bool:
    """Whether a JSON value fits a constructor annotation such as ``float | None``,
    ``tuple[float, ...]`` or ``str | tuple[float, float]`` (unknown annotations accept anything)."""
    for option in _split_top(annotation, "|"):
        if option == "None" and value is None:
            return True
        if option == "bool" and isinstance(value, bool):
            return True
        if option == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option == "float" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return True
        if option == "str" and isinstance(value, str):
            return True
        sequence = option.startswith(("tuple[", "list["))
        if sequence and isinstance(value, list):
            inner = _split_top(option[option.index("[") + 1:-1], ",")
            if inner[-1] == "...":
                if value and all(matches(v, inner[0]) for v in value):
                    return True
            elif len(inner) == len(value) and all(matches(v, t) for v, t in zip(value, inner)):
                return True
        if option not in _SCALARS and not sequence:
            return True
    return False
