"""Fixtures for the image_updater's integration tests: a Git server over smart HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eksops_dev.gitserver import GitServer


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    """eksops_dev.gitserver serving the bare repositories under tmp_path/"served" (``create`` makes one)."""
    with GitServer(tmp_path / "served") as server:
        yield server
