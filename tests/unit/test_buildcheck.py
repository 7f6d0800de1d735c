"""The build check finds libraries a function imports (lazily too) that `sam build` did not put beside it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from eksops_dev.buildcheck import dev_code, missing_imports


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    function, layer = tmp_path / "fn", tmp_path / "layer" / "python"
    app = _write(function / "app.py", "import json\nfrom eksops.service import run\n")
    _write(layer / "eksops" / "__init__.py", "import boto3\n")
    _write(layer / "boto3" / "__init__.py", "")
    _write(
        layer / "eksops" / "service.py",
        """
        from typing import TYPE_CHECKING
        from .helpers import shape
        if TYPE_CHECKING:
            from mypy_boto3_logs import CloudWatchLogsClient
        def run():
            import kubernetes.client  # lazily, on the first real event
        """,
    )
    _write(layer / "eksops" / "helpers.py", "from eksops_dev import sandbox\ndef shape(): import dulwich\n")
    return app, function, layer


def test_a_lazy_import_of_a_library_built_nowhere_is_found(tmp_path: Path) -> None:
    app, function, layer = _layout(tmp_path)
    # kubernetes (lazy, two modules down), dulwich (through a relative import) and eksops_dev (development code,
    # never built) are missing; typing-only imports, the standard library and what the layer holds are not
    assert missing_imports(app, [function, layer]) == {"kubernetes", "dulwich", "eksops_dev"}


def test_nothing_is_missing_once_the_function_ships_the_libraries(tmp_path: Path) -> None:
    app, function, layer = _layout(tmp_path)
    _write(function / "kubernetes" / "__init__.py", "")
    _write(function / "dulwich.py", "")
    (layer / "eksops" / "helpers.py").write_text("def shape(): import dulwich\n")  # the eksops_dev import removed
    assert missing_imports(app, [function, layer]) == set()


@pytest.mark.parametrize("relative", ["eksops_dev/sandbox.py", "eksops/local/__init__.py", "eksops/cli.py"])
def test_development_code_in_a_built_artifact_is_rejected(tmp_path: Path, relative: str) -> None:
    _, _, layer = _layout(tmp_path)
    assert dev_code(layer) == []
    _write(layer / relative, "")
    assert [relative.split("/", maxsplit=1)[0] in message for message in dev_code(layer)] == [True]
