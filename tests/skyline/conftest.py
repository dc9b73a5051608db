"""The fast layer: pure domain tests, no servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from skyline.confseq import bounds


@pytest.fixture(autouse=True)
def _fresh_bounds_cache() -> Iterator[None]:
    # `bounds` is memoised: a test must compute what it asserts, not read what an earlier
    # test (or the process a mutation-testing worker was forked from) left in the cache.
    bounds.cache_clear()
    yield
