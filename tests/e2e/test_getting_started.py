"""docs/getting-started.md, step by step: every `$ eksops ...` line of its console blocks runs through the entry point
(`main(argv)`) on the sandbox, exits 0, prints each output line the page shows, and has the effect the page says.

The commands come from the page itself, so the page and this test cannot drift: a new step is run, a changed output
fails here until the page says what the command prints. ``...`` in a shown line stands for any text; a line that is
only ``...`` marks lines left out.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from eksops_dev.cli import main
from eksops_dev.template import Template

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "getting-started.md"
# Steps of the page that are not eksops commands: the demo (tests/e2e/test_demo.py runs it) and the venv.
NOT_EKSOPS = {"make demo", "source .venv/bin/activate"}
ELIDED = "..."


@dataclass
class Step:
    command: str  # as written after "$ "
    shown: list[str] = field(default_factory=list)  # the output lines the page shows for it

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command)[1:]


def steps(text: str) -> list[Step]:
    """The commands of the page's console blocks, in order, each with the output the page shows under it."""
    found: list[Step] = []
    for block in re.findall(r"^```console\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append(Step(line[2:].strip()))
            elif found and line.strip() and line.strip() != ELIDED:
                found[-1].shown.append(line.strip())
    return found


STEPS = steps(PAGE.read_text(encoding="utf-8"))
EKSOPS_STEPS = [s for s in STEPS if s.command not in NOT_EKSOPS]


def shown_in(shown: str, printed: list[str]) -> bool:
    """Whether a line the page shows is one the command printed (``...`` matches any text)."""
    pattern = re.compile(".*".join(re.escape(part) for part in shown.split(ELIDED)))
    return any(pattern.fullmatch(line) for line in printed)


@pytest.fixture(autouse=True)
def in_a_fresh_clone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template: Template) -> None:
    """The project folder as the working directory, a sandbox folder of this test's own (other tests run sandboxes
    at the same time), and none of the functions' variables from the environment (as in a new shell)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("EKSOPS_SANDBOX_DIR", str(tmp_path / "sandbox"))
    for fn in template.functions.values():
        for variable in fn.environment:
            monkeypatch.delenv(variable, raising=False)
    for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)


def test_the_page_runs_every_function_and_nothing_unchecked(template: Template) -> None:
    commands = [s.command for s in STEPS]
    assert commands[:2] == ["make demo", "source .venv/bin/activate"]
    unknown = [s.command for s in STEPS if s.command not in NOT_EKSOPS and not s.command.startswith("eksops ")]
    assert unknown == [], "a step this test does not run"
    invoked = {s.argv[1] for s in EKSOPS_STEPS if s.argv[0] == "invoke"}
    assert invoked == set(template.functions), "the walk-through invokes each function once"
    order = [s.argv[0] for s in EKSOPS_STEPS]
    assert order[0] == "validate" and order[-4:] == ["sweep", "status", "uninstall", "uninstall"]
    for step in EKSOPS_STEPS:
        if step.argv[0] == "invoke":  # each on a sample that acts, not on one of the samples the rules never match
            event = Path(step.argv[step.argv.index("--event") + 1])
            assert event.parent == Path("events") / step.argv[1] and (ROOT / event).is_file()


@pytest.mark.e2e
@pytest.mark.parametrize("step", EKSOPS_STEPS, ids=[s.command for s in EKSOPS_STEPS])
def test_step(step: Step, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(step.argv)
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    printed = [line.strip() for line in (out + err).splitlines()]
    missing = [line for line in step.shown if not shown_in(line, printed)]
    assert missing == [], f"shown on the page, not printed:\n{err[-3000:]}"
    assert "Traceback" not in err
    EFFECTS[step.argv[0]](step, out, err)


# -- the effect of each command ------------------------------------------------------------------------------------


def _invoked(step: Step, out: str, err: str) -> None:
    """The sandbox was seeded with what the event names, the function acted on it, and Slack received its report."""
    payload: dict[str, Any] = json.loads(out)  # stdout holds the JSON result alone
    assert payload["ok"] is True and payload["function"] == step.argv[1]
    assert "failed_follow_ups" not in payload
    result = payload["result"]
    assert result.get("dry_run") in (None, False)  # the sandbox acts
    clusters = result.get("clusters")
    bootstrapped = isinstance(clusters, dict) and any(c["aws"] or c["changed_objects"] for c in clusters.values())
    acted = bool(result.get("changed") or result.get("dispatched") or result.get("posted") or bootstrapped)
    assert acted, f"{step.command} changed nothing: {json.dumps(result)[:1000]}"
    posted = re.search(r"^eksops invoke: Slack: (\d+) message\(s\) posted", err, flags=re.MULTILINE)
    assert posted is not None and int(posted.group(1)) >= 1, "nothing reached the local Slack webhook"
    if step.argv[1] != "notifier":  # the notifier's own sample names nothing to seed
        assert re.search(r"^eksops invoke: sandbox: seeded (?!Slack)", err, flags=re.MULTILINE)


def _validated(step: Step, out: str, err: str) -> None:
    assert "parameters valid" in out and err == ""


def _swept(step: Step, out: str, err: str) -> None:
    assert re.search(r"^\s+\d+ open finding\(s\)", out, flags=re.MULTILINE)


def _status(step: Step, out: str, err: str) -> None:
    rows = {line.split()[0] for line in out.splitlines()[2:] if line.strip()}
    assert {"log_retention", "error_alarms", "cluster_bootstrap", "compliance_sweep", "notifier"} <= rows


def _uninstalled(step: Step, out: str, err: str) -> None:
    payload = json.loads(out)
    if "--dry-run" in step.argv:
        assert payload["dry_run"] is True and payload["would_remove"]
    else:  # everything of eksops' removed, and the sandbox scanned again holds none
        assert payload["dry_run"] is False and payload["removed"] and payload["remaining"] == []
    assert payload["errors"] == []


EFFECTS = {
    "invoke": _invoked,
    "validate": _validated,
    "sweep": _swept,
    "status": _status,
    "uninstall": _uninstalled,
}
