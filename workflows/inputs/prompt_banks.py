"""Reading descriptor, differential and context banks from a store for the description
solvers. Problems a user can cause are ``featurestore.errors.NotFoundError`` with one line each.
"""
from __future__ import annotations

from typing import Any

from featurestore.errors import NotFoundError


def read_prompt_bank(store: Any, encoder: str, name: str | None, kind: str,
                     input_name: str = "bank") -> tuple[str, dict[str, Any]]:
    """(name, contents) of the text bank ``name`` of ``encoder``, which must be of ``kind``.

    Without a name, the encoder's only bank of that kind is used. A bank that exists only under
    another encoder is refused: its embeddings live in another space.
    """
    banks = store.text_banks(encoder)
    if name is None:
        matches = [b for b in banks if store.text_bank_kind(encoder, b) == kind]
        if len(matches) != 1:
            found = f"found: {', '.join(matches)}" if matches else "none found; run fs descriptors --kind " + kind
            raise NotFoundError(f"give --input {input_name}=NAME, a {kind} bank of encoder {encoder!r} ({found})")
        name = matches[0]
    if name not in banks:
        others = [e for e in store.encoders() if e != encoder and name in store.text_banks(e)]
        if others:
            raise NotFoundError(f"text bank {name!r} was encoded by encoder {others[0]!r}, not {encoder!r}; "
                             f"encode it again with fs descriptors --encoder {encoder}")
        raise NotFoundError(f"no text bank {name!r} for encoder {encoder!r} (it has: {', '.join(banks) or 'none'})")
    found = store.text_bank_kind(encoder, name)
    if found != kind:
        raise NotFoundError(f"text bank {name!r} is a {found!r} bank, not a {kind!r} bank; "
                            f"encode one with fs descriptors --kind {kind}")
    return name, store.text_bank(encoder, name)
