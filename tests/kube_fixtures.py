"""Pytest fixtures for tests against the Kubernetes emulator (eksops_dev.kube)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eksops_dev.kube import EksopsEmulator, serve


@pytest.fixture
def kube() -> Iterator[tuple[str, EksopsEmulator]]:
    """A fresh emulator served over HTTP for one test: (base URL, emulator)."""
    with serve() as (url, emulator):
        yield url, emulator
