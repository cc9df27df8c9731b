"""Shared test fixtures: the real reference data beside the checkout, and quiet TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: CI checks the repository out with ``shared/`` beside it; tests read real data only from there.
SHARED_DATA = Path(os.environ.get("SURVEY_MASS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data folder, or skip with the reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA} (set SURVEY_MASS_SHARED_DATA)")
    return SHARED_DATA
