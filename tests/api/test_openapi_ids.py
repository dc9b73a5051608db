"""The OpenAPI schema names every operation once (FastAPI logs a duplicate at startup otherwise)."""

from __future__ import annotations

import warnings
from collections import Counter

from api.main import create_app


def test_operation_ids_are_unique_and_no_duplicate_is_reported() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schema = create_app().openapi()
    ids = Counter(op["operationId"] for ops in schema["paths"].values() for op in ops.values())
    assert [i for i, n in ids.items() if n > 1] == []
    assert [str(w.message) for w in caught if "Operation ID" in str(w.message)] == []
    # the loader's redirect still answers GET and HEAD at the same path
    assert set(schema["paths"]["/loader.js"]) == {"get", "head"}
