"""The build check finds libraries a function imports (lazily too) that `sam build` did not put beside it."""

from __future__ import annotations

import textwrap
from pathlib import Path

from eksops.local.buildcheck import missing_imports


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
    _write(layer / "eksops" / "helpers.py", "from eksops.local import sandbox\ndef shape(): import dulwich\n")
    return app, function, layer


def test_a_lazy_import_of_a_library_built_nowhere_is_found(tmp_path: Path) -> None:
    app, function, layer = _layout(tmp_path)
    # kubernetes (lazy, two modules down) and dulwich (through a relative import) are missing; typing-only
    # imports, the standard library, eksops.local and what the layer holds are not
    assert missing_imports(app, [function, layer]) == {"kubernetes", "dulwich"}


def test_nothing_is_missing_once_the_function_ships_the_libraries(tmp_path: Path) -> None:
    app, function, layer = _layout(tmp_path)
    _write(function / "kubernetes" / "__init__.py", "")
    _write(function / "dulwich.py", "")
    assert missing_imports(app, [function, layer]) == set()
