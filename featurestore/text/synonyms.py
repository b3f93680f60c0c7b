"""Per-class synonym lists, as REAL (Parashar et al., CVPR 2024) uses them to count concept
frequency and to rename classes. The user supplies them (no language model is called) as a
JSON object ``{class name: [synonym, ...]}``; ``featurestore/data/synonyms-example.json`` is a
small example."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from featurestore.corpus.frequency import words
from featurestore.errors import SourceError


def read_synonyms(path: str | os.PathLike, classes: Sequence[str] | None = None,
                  include_class_name: bool = True) -> dict[str, list[str]]:
    """The synonym lists of a JSON file, in ``classes`` order when given.

    With ``include_class_name`` the class name itself is the first candidate of its list (so
    REAL keeps the original name when it is the most frequent). Classes the file does not name
    get their name alone. Refused with SourceError: a file that is not such an object, a class
    the class list does not have, an empty list, a synonym with no word characters.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"synonym file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"synonym file {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(s, str) for s in v)
                                             for v in data.values()):
        raise SourceError(f"synonym file {path} must be a JSON object {{class: [synonyms]}}")
    if not data:
        raise SourceError(f"synonym file {path} names no class")
    for name, values in data.items():
        if not values:
            raise SourceError(f"class {name!r} has an empty synonym list in {path}")
        bad = [s for s in values if not words(s)]
        if bad:
            raise SourceError(f"synonym {bad[0]!r} of class {name!r} in {path} has no word characters")
    if classes is not None:
        unknown = [name for name in data if name not in set(classes)]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise SourceError(f"synonym file {path} names {len(unknown)} class(es) not in the class list: {shown}")
    order = list(classes) if classes is not None else list(data)
    out: dict[str, list[str]] = {}
    for name in order:
        candidates = ([name] if include_class_name else []) + list(data.get(name, [] if include_class_name else [name]))
        out[name] = list(dict.fromkeys(s.strip() for s in candidates if s.strip()))
    return out
