"""Fixtures for the tierline test suite (helpers and case loading are in helpers.py).

Expected values never come from running tierline: they come from the reference files in
../shared/reference/ (cited in each case's ``source``) or from hand arithmetic written out in the
case itself ("1979 x 8"). Case tables a non-programmer can read live in tests/cases/*.yaml.
"""

from __future__ import annotations

from typing import Any

import pytest

from helpers import AS_OF
from tierline.classification import _lines
from tierline.policy import Context


@pytest.fixture(autouse=True)
def _bundled_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests read the bundled policy data unless a test points elsewhere."""
    monkeypatch.delenv("TIERLINE_POLICY_DIR", raising=False)


@pytest.fixture(scope="session")
def ctx() -> Context:
    """AI Diffusion vintage, as of 1 June 2025."""
    return Context.make(vintage="ai-diffusion", as_of=AS_OF)


@pytest.fixture(scope="session")
def lines(ctx: Context) -> Any:
    """The 3A090 lines in force for `ctx`."""
    return _lines(ctx)
