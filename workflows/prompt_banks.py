"""Reading descriptor and context banks from a store for `fs solve` (``Solver.store_inputs``).

The store is duck-typed (``text_banks``, ``text_bank``, ``encoders``), so solvers/ does not import
featurestore. Problems a user can cause are ValueErrors with one clear line each.
"""
from __future__ import annotations

from typing import Any


def read_prompt_bank(store: Any, encoder: str, name: str | None, kind: str,
                     param: str = "bank") -> tuple[str, dict[str, Any]]:
    """(name, contents) of the text bank ``name`` of ``encoder``, which must be of ``kind``.

    Without a name, the encoder's only bank of that kind is used. A bank that exists only under
    another encoder is refused: its embeddings live in another space.
    """
    banks = store.text_banks(encoder)
    if name is None:
        matches = [b for b in banks if store.text_bank(encoder, b).get("kind") == kind]
        if len(matches) != 1:
            found = f"found: {', '.join(matches)}" if matches else "none found; run fs descriptors --kind " + kind
            raise ValueError(f"give --param {param}=NAME, a {kind} bank of encoder {encoder!r} ({found})")
        name = matches[0]
    if name not in banks:
        others = [e for e in store.encoders() if e != encoder and name in store.text_banks(e)]
        if others:
            raise ValueError(f"text bank {name!r} was encoded by encoder {others[0]!r}, not {encoder!r}; "
                             f"encode it again with fs descriptors --encoder {encoder}")
        raise ValueError(f"no text bank {name!r} for encoder {encoder!r} (it has: {', '.join(banks) or 'none'})")
    bank = store.text_bank(encoder, name)
    if bank.get("kind") != kind:
        raise ValueError(f"text bank {name!r} is a {bank.get('kind')!r} bank, not a {kind!r} bank; "
                         f"encode one with fs descriptors --kind {kind}")
    return name, bank
