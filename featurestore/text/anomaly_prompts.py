"""Prompts for zero-shot anomaly detection: state phrases ("flawless {}", "damaged {}") times
templates ("a photo of a {}."), filled with an object name (the compositional prompt ensemble of
WinCLIP, Jeong et al., CVPR 2023). The default lists are featurestore/data/anomaly_states.json; a
user's file with the same keys replaces them."""
from __future__ import annotations

import json
from pathlib import Path

from featurestore.errors import SourceError

DEFAULT_STATES = Path(__file__).parents[1] / "data" / "anomaly_states.json"
KEYS = ("normal", "anomalous", "templates")


def read_states(path: str | Path | None = None) -> dict[str, list[str]]:
    """The "normal" and "anomalous" state phrases and the "templates" of a states file (the
    default one when ``path`` is None). Every phrase and template holds exactly one ``{}``."""
    path = Path(path) if path is not None else DEFAULT_STATES
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(spec, dict):
        raise SourceError(f"{path}: expected an object with lists {', '.join(KEYS)}")
    out = {}
    for key in KEYS:
        values = spec.get(key)
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise SourceError(f"{path}: {key!r} must be a non-empty list of strings")
        bad = [v for v in values if "{}" not in v or v.count("{") != 1 or v.count("}") != 1]
        if bad:
            raise SourceError(f"{path}: {key} entry {bad[0]!r} must hold exactly one {{}} and no other braces")
        out[key] = list(values)
    return out


def compose_prompts(states: dict[str, list[str]], object_name: str) -> dict[str, list[str]]:
    """{"normal": [...], "anomalous": [...]}: every template filled with every state phrase of
    that kind, filled with ``object_name``."""
    name = object_name.strip()
    if not name:
        raise SourceError("give an object name (--object), e.g. 'bottle'")
    return {kind: [template.format(state.format(name)) for state in states[kind] for template in states["templates"]]
            for kind in ("normal", "anomalous")}
