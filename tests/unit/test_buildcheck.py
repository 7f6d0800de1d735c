"""The build check finds libraries a function imports (lazily too) that `sam build` did not put beside it, development
code built into an artifact, and modules without bytecode the runtime's Python loads as it is."""

from __future__ import annotations

import importlib.util
import marshal
import py_compile
import textwrap
from pathlib import Path

import pytest

from eksops_dev.buildcheck import bytecode_problems, compile_artifacts, dev_code, main, missing_imports


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
    (layer / "eksops" / "helpers.py").write_text("def shape(): import dulwich\n")  # the layout's eksops_dev import
    assert dev_code(layer) == []
    _write(layer / relative, "")
    assert [relative.split("/", maxsplit=1)[0] in message for message in dev_code(layer)] == [True]


# -- bytecode: every module of an artifact ships a .pyc the runtime's Python loads as it is -----------------------

_TEMPLATE = """
Globals:
  Function:
    Runtime: {runtime}
Resources:
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties: {{ContentUri: Layer, CompatibleRuntimes: [{runtime}]}}
  Fn:
    Type: AWS::Serverless::Function
    Properties: {{CodeUri: Fn, Handler: app.handler}}
"""


def _build(tmp_path: Path, runtime: str = "python3.11") -> Path:
    """A build directory as `sam build` leaves it: a template, a layer and a function, no bytecode."""
    build = tmp_path / "build"
    _write(build / "template.yaml", _TEMPLATE.format(runtime=runtime))
    _write(build / "Layer" / "python" / "eksops" / "__init__.py", "VALUE = 1\n")
    _write(build / "Layer" / "python" / "eksops" / "core.py", "def f():\n    return 2\n")
    _write(build / "Fn" / "app.py", "from eksops import core\ndef handler(event, context):\n    return core.f()\n")
    return build


def _pyc(source: Path) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"


def test_compiled_artifacts_pass_the_bytecode_check(tmp_path: Path) -> None:
    build = _build(tmp_path)
    assert bytecode_problems(build / "Fn", "python3.11") == ["1 module(s) with no cpython-311 bytecode, e.g. app.py"]
    assert compile_artifacts(build) == []
    for artifact in (build / "Layer", build / "Fn"):
        assert bytecode_problems(artifact, "python3.11") == []
    header = _pyc(build / "Fn" / "app.py").read_bytes()[:16]
    assert header[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, unchecked: zip dates do not matter
    code = marshal.loads(_pyc(build / "Layer" / "python" / "eksops" / "core.py").read_bytes()[16:])
    assert code.co_filename == "/opt/python/eksops/core.py"  # where Lambda unpacks the layer, not this checkout


def test_a_module_without_bytecode_fails(tmp_path: Path) -> None:
    build = _build(tmp_path)
    compile_artifacts(build)
    _pyc(build / "Layer" / "python" / "eksops" / "core.py").unlink()
    assert bytecode_problems(build / "Layer", "python3.11") == [
        "1 module(s) with no cpython-311 bytecode, e.g. python/eksops/core.py"
    ]


def test_bytecode_of_another_python_fails(tmp_path: Path) -> None:
    build = _build(tmp_path)
    compile_artifacts(build)
    pyc = _pyc(build / "Fn" / "app.py")
    # compiled by Python 3.12: its own file name, and nothing for 3.11 ...
    pyc.rename(pyc.with_name("app.cpython-312.pyc"))
    assert bytecode_problems(build / "Fn", "python3.11") == ["1 module(s) with no cpython-311 bytecode, e.g. app.py"]
    # ... or renamed to 3.11's name: the magic number in its header gives it away
    data = bytearray(pyc.with_name("app.cpython-312.pyc").read_bytes())
    data[:2] = (3531).to_bytes(2, "little")
    pyc.write_bytes(bytes(data))
    assert bytecode_problems(build / "Fn", "python3.11") == [
        "1 module(s) with bytecode of another Python (magic 3531, the runtime's is 3495), e.g. app.py"
    ]


def test_timestamp_based_and_stale_bytecode_fail(tmp_path: Path) -> None:
    build = _build(tmp_path)
    compile_artifacts(build)
    app = build / "Fn" / "app.py"
    py_compile.compile(str(app), str(_pyc(app)), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    assert "timestamp-based" in bytecode_problems(build / "Fn", "python3.11")[0]
    compile_artifacts(build)
    app.write_text(app.read_text() + "# edited after the build\n")
    assert bytecode_problems(build / "Fn", "python3.11") == [
        "1 module(s) with stale bytecode (the source changed after it was compiled), e.g. app.py"
    ]


def test_only_the_runtimes_python_compiles_and_an_unknown_runtime_fails(tmp_path: Path) -> None:
    build = _build(tmp_path, runtime="python3.12")
    found = compile_artifacts(build)
    assert len(found) == 2
    assert all("runs on python3.12 but this is Python 3.11" in message for message in found)
    assert not (build / "Fn" / "__pycache__").exists()
    assert bytecode_problems(build / "Fn", "python3.12") == [
        "no bytecode known for runtime python3.12; add its cache tag and magic number to BYTECODE"
    ]


def test_the_build_check_reports_missing_bytecode_and_passes_once_compiled(tmp_path: Path) -> None:
    build = _build(tmp_path)
    assert main([str(build)]) == 1  # sam build's output as it is
    assert main(["--compile", str(build)]) == 0


def test_development_code_under_another_name_is_rejected(tmp_path: Path) -> None:
    """The sandbox copied into the runtime package as eksops/sandbox.py (or the filter-pattern evaluator into a
    function) is found by what it imports, not by its path."""
    _, function, layer = _layout(tmp_path)
    (layer / "eksops" / "helpers.py").write_text("def shape(): import dulwich\n")  # the layout's eksops_dev import
    assert dev_code(layer) == [] and dev_code(function) == []
    _write(layer / "eksops" / "sandbox.py", "import boto3\nfrom eksops_dev.template import Template\n")
    _write(function / "patterns.py", "import re\nimport yaml\n")
    assert dev_code(layer) == ["eksops/sandbox.py imports eksops_dev: development code in Lambda"]
    assert dev_code(function) == ["patterns.py imports yaml: development code in Lambda"]
