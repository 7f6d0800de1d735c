"""The fault test's checks on image_updater's sweep (eksops_dev.faultruns.ImageUpdaterSweep) can fail: commits that a
correct reconcile never makes, planted by another writer on the config repository, are each reported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eksops_dev.faultruns import ImageUpdaterSweep, seeded
from eksops_dev.faults import VirtualClock, virtual_time
from eksops_dev.template import Template


class SmallSweep(ImageUpdaterSweep):
    entries = 3


@pytest.fixture
def sweep(aws: str, template: Template, tmp_path: Path) -> Iterator[ImageUpdaterSweep]:
    clock = VirtualClock()
    with (
        virtual_time(clock),
        seeded(SmallSweep, aws, tmp_path, template, clock=clock, sleep=clock.sleep) as target,
    ):
        assert isinstance(target, ImageUpdaterSweep)
        yield target


def test_wrong_commits_are_half_applied(sweep: ImageUpdaterSweep) -> None:
    assert len(sweep.not_converged()) == sweep.entries and sweep.half_applied() == []
    first, second = sweep.names[:2]
    git, path = sweep.git, sweep._path
    git.commit(sweep.repo, {path(first): sweep._file(first, sweep.newer).encode()})
    git.commit(sweep.repo, {path(first): sweep._file(first, sweep.newest).encode()})  # a second commit for it
    both = {path(n): sweep._file(n, sweep.newest).encode() for n in (second, sweep.names[2])}
    git.commit(sweep.repo, both)  # two entries in one commit
    git.commit(sweep.repo, {path(second): b"images:\n  - name: other\n    newTag: 1.2.0\n"})  # more than the tag
    sweep.committed.append({"commit": "0" * 40})  # reported, never made
    wrong = sweep.half_applied()
    assert any("is not on the branch" in w for w in wrong)
    assert any(f"{first}: 2 commits" in w for w in wrong)
    assert any("not one entry's file" in w for w in wrong)
    assert any(f"changes more than {second}'s tag" in w for w in wrong)
    assert len(wrong) == 4, wrong
