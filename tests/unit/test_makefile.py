"""The Makefile's own behaviour (issue 13): a venv of the wrong Python is refused with what to do, and `make deploy`
deploys the samconfig environment and region it is given (it used to build for REGION and deploy to samconfig's)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml", "samconfig.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "layers/eksops").mkdir(parents=True)
    shutil.copy(ROOT / "layers/eksops/requirements.txt", tmp_path / "layers/eksops/requirements.txt")
    return tmp_path


def test_a_venv_of_another_python_is_refused_with_what_to_do(project: Path) -> None:
    fake = project / ".venv/bin/python"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\nif [ "$1" = "-V" ]; then echo "Python 3.12.1"; exit 0; fi\nexit 1\n')
    fake.chmod(0o755)
    done = make(project, ".venv/.installed")
    assert done.returncode != 0
    assert "was made with Python 3.12.1, not Python 3.11: run 'make clean'" in done.stderr


def test_a_missing_or_wrong_python_is_named(project: Path) -> None:
    done = make(project, ".venv/.installed", "PYTHON=/bin/false")
    assert done.returncode != 0
    assert "/bin/false is not Python 3.11" in done.stderr
    assert not (project / ".venv").exists()


def test_deploy_uses_the_environment_and_region_given(project: Path) -> None:
    (project / ".venv/bin").mkdir(parents=True)
    (project / ".venv/.installed").touch()
    done = make(project, "-n", "deploy", "ENV=prod", "REGION=eu-west-1")
    assert done.returncode == 0, done.stderr
    assert "sam build --parallel --region eu-west-1" in done.stdout
    assert "--config-env prod" in done.stdout and "--region eu-west-1" in done.stdout.split("sam deploy", 1)[1]
    # without REGION, the environment's own region (samconfig.toml) is not overridden
    done = make(project, "-n", "deploy")
    deploys = [line for line in done.stdout.splitlines() if "sam deploy" in line]
    assert deploys and all("--region" not in line for line in deploys)
    assert any("--guided --config-env default --stack-name eksops" in line for line in deploys)


def test_deploy_leaves_the_caller_s_region_alone(project: Path) -> None:
    """The tests' default region (us-east-1) must not override a profile's region in `sam deploy`; a region the
    caller set is kept."""
    (project / ".venv/bin").mkdir(parents=True)
    (project / ".venv/.installed").touch()
    env = {k: v for k, v in os.environ.items() if k != "AWS_DEFAULT_REGION"}
    done = make(project, "-n", "deploy", env=env)
    deploys = [line for line in done.stdout.splitlines() if "sam deploy" in line]
    assert deploys and all("env -u AWS_DEFAULT_REGION" in line for line in deploys)
    done = make(project, "-n", "deploy", env={**env, "AWS_DEFAULT_REGION": "ap-southeast-2"})
    deploys = [line for line in done.stdout.splitlines() if "sam deploy" in line]
    assert deploys and all("env -u" not in line for line in deploys)


def test_make_alone_shows_help_listing_the_targets(project: Path) -> None:
    done = make(project)
    assert done.returncode == 0, done.stderr
    for target in ("demo", "test", "unit | integration | e2e", "lint", "build", "deploy", "invoke", "clean"):
        assert f"make {target}" in done.stdout, target
    assert make(project, "help").stdout == done.stdout


@pytest.mark.parametrize(
    ("target", "tests"), [("unit", "tests/unit"), ("integration", "tests/integration"), ("e2e", "tests/e2e")]
)
def test_each_tier_target_runs_its_tests(project: Path, target: str, tests: str) -> None:
    (project / ".venv/bin").mkdir(parents=True)
    (project / ".venv/.installed").touch()  # installed: the recipe alone is shown
    done = make(project, "-n", target)
    assert done.returncode == 0, done.stderr
    assert "-m pytest" in done.stdout and done.stdout.rstrip().endswith(tests), done.stdout


def test_make_invoke_without_fn_or_event_says_what_it_needs(project: Path) -> None:
    (project / ".venv/bin").mkdir(parents=True)
    (project / ".venv/.installed").touch()
    done = make(project, "invoke", "FN=log_retention")
    assert done.returncode == 2
    assert "make invoke needs FN and EVENT, e.g. make invoke FN=log_retention EVENT=" in done.stderr
