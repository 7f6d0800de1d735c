"""The layer ships what the code needs, and nothing heavy is imported at a handler's cold start."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["kubernetes", "dulwich", "ruamel", "semver", "moto", "yaml", "eksops_dev", "werkzeug", "flask"]


def _requirements() -> set[str]:
    lines = (ROOT / "layers/eksops/requirements.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_layer_requirements_match_the_package_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirements() == set(project["dependencies"])


def test_layer_requirements_are_pinned_or_floored() -> None:
    for requirement in _requirements():
        assert re.search(r"(==|>=)", requirement), requirement


def test_handlers_import_no_heavy_library_at_cold_start() -> None:
    code = f"""
import importlib.util, json, os, sys
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                  POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_SERVICE_NAME="t",
                  IDEMPOTENCY_TABLE="eksops-idempotency", CONFIG_REPO_URL="codecommit://eksops-config")
loaded = {{}}
for app in sorted((__import__("pathlib").Path({str(ROOT)!r}) / "functions").glob("*/app.py")):
    spec = importlib.util.spec_from_file_location("fn_" + app.parent.name, app)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in {HEAVY!r}))))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize(
    ("function", "own", "foreign"),
    [
        ("log_retention", "eksops.logs.retention", ["eksops.logs.error_alarms", "eksops.logs.error_alarms_config"]),
        ("error_alarms", "eksops.logs.error_alarms", ["eksops.logs.retention", "eksops.logs.retention_config"]),
        (
            "notifier",
            "eksops.notify.notifier",
            ["eksops.logs.retention", "eksops.logs.error_alarms", "eksops.notify.publish", "eksops.events"],
        ),
    ],
)
def test_a_light_function_loads_only_its_own_capability(function: str, own: str, foreign: list[str]) -> None:
    """Cold start (issue 9): eksops.logs loads its modules on first use, so each function pays for its own; and no
    light function imports boto3 (with s3transfer and multiprocessing, about 35 ms of CPU: eksops' clients come from
    botocore, and the notifier keeps its idempotency records and reads its secrets without Powertools' boto3 stores)."""
    code = f"""
import importlib.util, json, os, sys
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                  POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_SERVICE_NAME="t", IDEMPOTENCY_TABLE="eksops-idempotency")
app = __import__("pathlib").Path({str(ROOT)!r}) / "functions" / {function!r} / "app.py"
spec = importlib.util.spec_from_file_location("fn", app)
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("eksops.", "boto3", "s3transfer")))))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert own in loaded
    assert loaded.isdisjoint(foreign)
    assert {m for m in loaded if not m.startswith("eksops.")} == set()


@pytest.mark.parametrize("package", ["eksops.logs", "eksops.notify"])
def test_a_lazy_package_names_what_it_exports(package: str) -> None:
    import importlib

    lazy = importlib.import_module(package)
    assert sorted(lazy.__all__) == sorted(lazy._MODULE_OF)
    for name in lazy.__all__:
        assert getattr(lazy, name).__module__.startswith(f"{package}.")
        assert name in dir(lazy)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        lazy.Nope  # noqa: B018


def test_function_requirements_pin_what_the_tests_run_against() -> None:
    """A library only one function needs is in that function's requirements.txt, and the kubernetes client in the
    kubernetes layer's, pinned as in pyproject's dev extra, so the deployed functions run the versions the tests
    ran."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = {re.split(r"[=<>\[]", r)[0]: r for r in project["optional-dependencies"]["dev"]}
    found = 0
    kubernetes = ROOT / "layers/kubernetes/requirements.txt"
    assert "kubernetes==" in kubernetes.read_text()
    for requirements in [*sorted((ROOT / "functions").glob("*/requirements.txt")), kubernetes]:
        for raw in requirements.read_text().splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                found += 1
                assert dev.get(re.split(r"[=<>\[]", line)[0]) == line, f"{requirements}: {line}"
    assert found


def test_make_build_compiles_what_sam_build_left_and_deploy_ships_it() -> None:
    """`sam build` writes no .pyc: `make build` compiles right after it (the check then fails on a module without
    bytecode), and `make deploy` builds first, so `sam deploy` packages the compiled .aws-sam/build."""
    makefile = (ROOT / "Makefile").read_text()
    recipes = {
        match.group(1): [line.strip() for line in match.group(2).splitlines()]
        for match in re.finditer(r"^([a-z]+):[^\n]*\n((?:\t[^\n]*\n)*)", makefile, flags=re.MULTILINE)
    }
    build = recipes["build"]
    sam_build = next(i for i, line in enumerate(build) if "sam build" in line)
    check = [line.split() for line in build[sam_build + 1 :] if "eksops_dev.buildcheck" in line]
    assert check and {"--compile", "--trim-botocore"} <= set(check[0]), build  # trimmed, then compiled and checked
    assert re.search(r"^deploy:.*\bbuild\b", makefile, flags=re.MULTILINE)


def test_the_version_is_the_package_s_in_pyproject_and_the_cli(capsys: Any) -> None:
    import importlib.metadata

    from eksops import __version__
    from eksops_dev.cli import main

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]  # written once
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "eksops.__version__"}
    assert importlib.metadata.version("eksops") == __version__
    try:
        main(["--version"])
    except SystemExit as done:
        assert done.code == 0
    assert capsys.readouterr().out.strip() == f"eksops {__version__}"
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_no_stale_text_and_a_changelog() -> None:
    """What issue 13 found stale stays fixed: the capabilities named where a user reads them first."""
    template = (ROOT / "template.yaml").read_text()
    demo = (ROOT / "dev" / "eksops_dev" / "demo.py").read_text()
    assert "first capability" not in template and "first capability" not in demo
    description = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["description"]
    for capability in ("bootstrap", "retention", "error alarms", "node scaling", "image updates", "compliance"):
        assert capability in description, capability
    changelog = (ROOT / "CHANGELOG.md").read_text()
    from eksops import __version__

    assert f"## {__version__}" in changelog
