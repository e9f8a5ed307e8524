"""Shared fixtures: each test gets its own data dir; seeded RNGs."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def artdb_home(tmp_path, monkeypatch):
    """A private ARTDB_HOME (non-ASCII on purpose, as real users' paths are)."""
    home = tmp_path / "données-artdb"
    home.mkdir()
    monkeypatch.setenv("ARTDB_HOME", str(home))
    monkeypatch.delenv("ARTDB_DATABASE_URL", raising=False)
    return home


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
