"""Options of a custom op as one JSON string, written so that Dynamo traces it to a constant.

A custom op takes tensors, numbers, bools and strings, not dicts; tsgu's ops that carry a
solver's or a function's options take them as JSON. Dynamo cannot trace :func:`json.dumps`,
so this writes the same text with operations it folds to a constant string.
"""

import math

__all__ = ["encode_options"]


def encode_options(value: object) -> str:
    """Options as JSON, written out so that Dynamo traces it to a constant string (it
    cannot trace :func:`json.dumps`): dicts with str keys, lists and tuples (as lists),
    str, bool, int, float, None."""
    if isinstance(value, dict):
        items = [
            f"{encode_options(str(key))}: {encode_options(value[key])}" for key in sorted(value)
        ]
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(encode_options(item) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return repr(value)  # int, float: JSON numbers
