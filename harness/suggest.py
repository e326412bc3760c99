"""'Did you mean ...?' for unknown names and parameters: one wording for every registry
(activations, optimizers and schedules, models, datasets)."""
from __future__ import annotations

import difflib
from typing import Iterable


def close_matches(word: object, valid: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` entries of `valid` spelled like `word`, closest first."""
    return difflib.get_close_matches(str(word), list(valid), n=n, cutoff=0.6)


def unknown_name_message(kind: str, name: object, valid: Iterable[str], match: str | None = None) -> str:
    """"Unknown <kind> 'x'. Did you mean 'y'? Valid <kind>s: a, b, c." `match`: the spelling to
    compare when lookups normalise names (e.g. lower case); default `name`."""
    valid = sorted(valid)
    close = close_matches(name if match is None else match, valid)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}."


def describe_unknown_keys(keys: Iterable[str], valid: Iterable[str]) -> str:
    """"'lrr' (did you mean 'lr'?), 'zeta'": each unknown key with its closest valid spelling."""
    valid = list(valid)
    parts = []
    for key in keys:
        close = close_matches(key, valid, n=1)
        parts.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    return ", ".join(parts)
