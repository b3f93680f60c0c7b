"""``fs solve gda --incremental sessions.json``: the FSCIL protocol (``solvers.few_shot.class_incremental``)
on a store's splits, with sessions named by class.

sessions.json::

    {"base": ["airplane", "automobile", ...],          # base session: every training row
     "sessions": [["cat", "deer"], ["dog", "frog"]],   # N-way sessions, K rows per class
     "shots": 5,                                       # K (optional; --shots overrides; default 5)
     "base_shots": null}                               # optional: K rows per base class too

The sampling seed is ``fs solve --seed``.

Classes are names of the training split's class list (or integer indices into it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from featurestore.errors import SourceError

DEFAULT_SHOTS = 5


def _class_id(value: Any, class_names: list[str] | None, where: str) -> int:
    if isinstance(value, bool):
        raise SourceError(f"{where}: {value!r} is not a class")
    if isinstance(value, int):
        if class_names is not None and not 0 <= value < len(class_names):
            raise SourceError(f"{where}: class index {value} is outside [0, {len(class_names)})")
        return value
    if isinstance(value, str) and class_names is not None:
        if value not in class_names:
            raise SourceError(f"{where}: class {value!r} is not in the training split's classes "
                              f"({', '.join(class_names[:8])}{' ...' if len(class_names) > 8 else ''})")
        return class_names.index(value)
    raise SourceError(f"{where}: {value!r} is not a class name or index")


def read_sessions(path: str | Path, class_names: list[str] | None) -> dict[str, Any]:
    """{"sessions": [[class ids]], "shots", "base_shots"} from a sessions file."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not (isinstance(spec, dict) and isinstance(spec.get("base"), list) and isinstance(spec.get("sessions"), list)):
        raise SourceError(f"{path}: expected an object with lists \"base\" and \"sessions\"")
    groups = [spec["base"]] + spec["sessions"]
    if any(not isinstance(g, list) or not g for g in groups):
        raise SourceError(f"{path}: every session is a non-empty list of classes")
    sessions = [[_class_id(c, class_names, f"{path} session {i}") for c in g] for i, g in enumerate(groups)]
    out: dict[str, Any] = {"sessions": sessions}
    unknown = set(spec) - {"base", "sessions", "shots", "base_shots"}
    if unknown:
        raise SourceError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} "
                          "(it takes base, sessions, shots, base_shots)")
    for key, default in (("shots", DEFAULT_SHOTS), ("base_shots", None)):
        value = spec.get(key, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SourceError(f"{path}: {key} must be a whole number >= 1, got {value!r}")
        out[key] = value
    return out
