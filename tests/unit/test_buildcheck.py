"""The build check finds libraries a function imports (lazily too) that `sam build` did not put beside it, development
code built into an artifact, and modules without bytecode the runtime's Python loads as it is; it trims the layer's
AWS SDK data to the services eksops declares and fails when that changes an endpoint or leaves other services."""

from __future__ import annotations

import importlib.util
import json
import marshal
import py_compile
import shutil
import textwrap
from pathlib import Path
from typing import Any

import botocore
import pytest
from botocore.loaders import Loader

from eksops_dev import buildcheck
from eksops_dev.buildcheck import (
    bytecode_problems,
    compile_artifacts,
    dev_code,
    layer_conflicts,
    main,
    missing_imports,
    sdk_data_problems,
    trim_sdk_data,
)


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
    Layers: [!Ref Layer]
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


def test_each_function_is_checked_against_its_own_layers(tmp_path: Path, capsys: Any) -> None:
    """A function's Layers are appended to Globals' (SAM): a library in a second layer counts for the functions
    that list that layer, and only for them."""
    build = _build(tmp_path)
    template = (build / "template.yaml").read_text()
    template += textwrap.indent(
        textwrap.dedent(
            """
            Kube:
              Type: AWS::Serverless::LayerVersion
              Properties: {ContentUri: Kube, CompatibleRuntimes: [python3.11]}
            WithKube:
              Type: AWS::Serverless::Function
              Properties: {CodeUri: WithKube, Handler: app.handler, Layers: [!Ref Kube]}
            """
        ),
        "  ",
    )
    (build / "template.yaml").write_text(template)
    _write(build / "Kube" / "python" / "kubernetes" / "__init__.py", "")
    lazy = "from eksops import core\ndef handler(event, context):\n    import kubernetes\n    return core.f()\n"
    _write(build / "WithKube" / "app.py", lazy)
    assert main(["--compile", str(build)]) == 0, capsys.readouterr().err  # eksops from Globals', kubernetes its own
    _write(build / "Fn" / "app.py", lazy)  # Fn has only Globals' layer
    assert main(["--compile", str(build)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "build check: Fn: imports 'kubernetes', which is in neither the function nor a layer"
    ]


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


def test_a_copy_of_development_code_that_imports_only_the_standard_library_is_rejected(tmp_path: Path) -> None:
    """Issue 9 review: the filter-pattern evaluator imports the standard library only; copied under another name into
    the runtime package or a function, it is found by its content (whitespace aside)."""
    import eksops_dev.filter_pattern

    _, function, layer = _layout(tmp_path)
    (layer / "eksops" / "helpers.py").write_text("def shape(): import dulwich\n")  # the layout's eksops_dev import
    source = Path(eksops_dev.filter_pattern.__file__).read_text()
    assert "eksops_dev" not in source and "yaml" not in source  # nothing else would find it
    _write(layer / "eksops" / "filterpat.py", source)
    _write(function / "filter_pattern.py", source.replace("    ", "\t"))  # reindented: the same code
    _write(function / "__init__.py", "")  # a small module matches nothing
    assert dev_code(layer) == [
        "eksops/filterpat.py is a copy of eksops_dev/filter_pattern.py: development code in Lambda"
    ]
    assert dev_code(function) == [
        "filter_pattern.py is a copy of eksops_dev/filter_pattern.py: development code in Lambda"
    ]


def test_a_development_library_or_module_anywhere_in_an_artifact_is_rejected(tmp_path: Path) -> None:
    """Issue 9 review: moto copied into the layer, and the sandbox's shims under another top-level package."""
    import eksops_dev.shims

    _, function, layer = _layout(tmp_path)
    (layer / "eksops" / "helpers.py").write_text("def shape(): import dulwich\n")  # the layout's eksops_dev import
    _write(layer / "moto" / "__init__.py", "")
    _write(layer / "yaml" / "__init__.py", "")  # PyYAML, which the kubernetes client needs: allowed
    _write(layer / "lib" / "python3.11" / "site-packages" / "pytest" / "__init__.py", "")  # also on Lambda's path
    _write(function / "vendor" / "helpers" / "shims.py", "# vendored\n" + Path(eksops_dev.shims.__file__).read_text())
    assert dev_code(layer) == [
        "moto is a development-only library; it must not be built into Lambda",
        "lib/python3.11/site-packages/pytest is a development-only library; it must not be built into Lambda",
    ]
    assert dev_code(function) == [
        "vendor/helpers/shims.py is a copy of eksops_dev/shims.py: development code in Lambda"
    ]


# -- the AWS SDK's data: only the services eksops has clients for, with endpoints unchanged -----------------------

_SITE = Path(botocore.__file__).resolve().parents[1]  # the venv's untrimmed botocore and boto3
_FIXTURE_SERVICES = ("iam", "lambda", "sns", "sqs", "sts")
# the services kept, with the operations declared for each
_KEPT = {
    "iam": frozenset({"AttachRolePolicy", "ListAttachedRolePolicies"}),
    "sns": frozenset({"Publish"}),
    "sts": frozenset({"GetCallerIdentity"}),
}


def _link_package(source: Path, target: Path, data: Path | None = None, services: tuple[str, ...] = ()) -> None:
    """``target``: the package at ``source`` by symbolic links, except its data folder: the top-level files and
    the folders of ``services`` copied (so trimming deletes and rewrites copies, never the venv)."""
    target.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name != "data":
            (target / entry.name).symlink_to(entry)
    if data is not None:
        (target / "data").mkdir()
        for entry in data.iterdir():
            if entry.is_file():
                shutil.copy(entry, target / "data" / entry.name)
            elif entry.name in services:
                shutil.copytree(entry, target / "data" / entry.name)


@pytest.fixture
def sdk_layer(tmp_path: Path) -> Path:
    """A layer's python/ as `sam build` leaves it, small: the venv's botocore and boto3 with the data of five
    services only (and every partition's endpoints), and the libraries botocore imports."""
    python = tmp_path / "layer" / "python"
    for package in ("botocore", "boto3"):
        source = _SITE / package
        _link_package(source, python / package, source / "data", _FIXTURE_SERVICES)
    python.mkdir(exist_ok=True)
    for library in ("dateutil", "jmespath", "urllib3", "s3transfer", "six.py"):
        (python / library).symlink_to(_SITE / library)
    return python


def _endpoints(python: Path) -> dict[str, Any]:
    return dict(json.loads((python / "botocore" / "data" / "endpoints.json").read_bytes()))


def test_trimming_keeps_exactly_the_declared_services_and_their_endpoints(sdk_layer: Path) -> None:
    before = _endpoints(sdk_layer)
    assert trim_sdk_data(sdk_layer, _KEPT) == []
    data = sdk_layer / "botocore" / "data"
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == ["iam", "sns", "sts"]
    files = {"_retry.json", "endpoints.json", "partitions.json", "sdk-default-configuration.json"}
    assert files <= {p.name for p in data.iterdir() if p.is_file()}
    assert sorted(p.name for p in (sdk_layer / "boto3" / "data").iterdir()) == ["iam", "sns"]
    after = _endpoints(sdk_layer)
    # every partition stays, with all it says besides services; each keeps exactly the kept services' entries
    assert [p["partition"] for p in after["partitions"]] == [p["partition"] for p in before["partitions"]]
    for old, new in zip(before["partitions"], after["partitions"], strict=True):
        assert {k: v for k, v in new.items() if k != "services"} == {k: v for k, v in old.items() if k != "services"}
        assert new["services"] == {name: v for name, v in old["services"].items() if name in _KEPT}
    assert set(after["partitions"][0]["services"]) == set(_KEPT) and len(before["partitions"][0]["services"]) > 300
    # each kept service's model: the latest version alone, cut to the declared operations, extras merged in
    for service, operations in _KEPT.items():
        (version,) = (data / service).iterdir()
        assert version.name == Loader().determine_latest_version(service, "service-2")
        assert sorted(p.name for p in version.iterdir() if p.name.startswith(("service-2", "examples"))) == [
            "service-2.json"
        ]
        model = json.loads((version / "service-2.json").read_bytes())
        assert set(model["operations"]) == operations
        assert "documentation" not in json.dumps(model)
        # and its paginators and waiters, for those operations only
        pages = json.loads((version / "paginators-1.json").read_bytes())["pagination"]
        assert set(pages) <= operations
        if (version / "waiters-2.json").is_file():
            waiters = json.loads((version / "waiters-2.json").read_bytes())["waiters"]
            assert {waiter["operation"] for waiter in waiters.values()} <= operations
    paginated = json.loads(next((data / "iam").glob("*/paginators-1.json")).read_bytes())["pagination"]
    assert set(paginated) == {"ListAttachedRolePolicies"}
    # and the trimmed botocore resolves what the untrimmed one does, with the same models cut
    assert sdk_data_problems(sdk_layer, _KEPT) == []


def test_a_model_other_than_the_cut_one_fails_the_check(sdk_layer: Path) -> None:
    # a layer built when sns declared one more operation (a stale build)
    assert trim_sdk_data(sdk_layer, {**_KEPT, "sns": frozenset({"Publish", "CreateTopic"})}) == []
    assert sdk_data_problems(sdk_layer, _KEPT) == [
        "sns: the layer's service-2 is not the untrimmed one cut to the declared operations (rebuild)"
    ]
    # the reverse: one declared since the build is missing from the layer's model
    assert trim_sdk_data(sdk_layer, _KEPT) == []
    assert sdk_data_problems(sdk_layer, {**_KEPT, "sns": frozenset({"Publish", "CreateTopic"})}) == [
        "sns: the layer's model lacks an operation declared since it was built: UnknownOperations: sns has no "
        "operation CreateTopic (eksops.aws.clients.OPERATIONS) (rebuild)"
    ]
    (model_file,) = (sdk_layer / "botocore" / "data" / "sns").glob("*/service-2.json")
    # or a shape differs from the untrimmed model's
    model = json.loads(model_file.read_bytes())
    model["shapes"]["PublishInput"]["required"] = ["Message", "Subject"]
    model_file.write_text(json.dumps(model))
    assert sdk_data_problems(sdk_layer, _KEPT) == [
        "sns: the layer's service-2 is not the untrimmed one cut to the declared operations (rebuild)"
    ]


def test_a_paginator_other_than_the_cut_one_fails_the_check(sdk_layer: Path) -> None:
    assert trim_sdk_data(sdk_layer, _KEPT) == []
    (pages_file,) = (sdk_layer / "botocore" / "data" / "iam").glob("*/paginators-1.json")
    pages = json.loads(pages_file.read_bytes())
    pages["pagination"]["ListAttachedRolePolicies"]["result_key"] = "Policies"
    pages_file.write_text(json.dumps(pages))
    assert sdk_data_problems(sdk_layer, _KEPT) == [
        "iam: the layer's paginators-1 is not the untrimmed one cut to the declared operations (rebuild)"
    ]


def test_an_operation_the_model_lacks_is_reported_not_cut(sdk_layer: Path) -> None:
    assert trim_sdk_data(sdk_layer, {**_KEPT, "sts": frozenset({"GetCallerIdentity", "GetCallerIdentityy"})}) == [
        "sts has no operation GetCallerIdentityy (eksops.aws.clients.OPERATIONS)"
    ]
    # the other services are cut all the same
    (model_file,) = (sdk_layer / "botocore" / "data" / "sns").glob("*/service-2.json")
    assert set(json.loads(model_file.read_bytes())["operations"]) == {"Publish"}


def test_an_untrimmed_layer_fails_the_check(sdk_layer: Path) -> None:
    found = sdk_data_problems(sdk_layer, _KEPT)
    assert "botocore data for 2 service(s) not in SERVICES, e.g. lambda, sqs (not trimmed)" in found
    assert "boto3 resource data for 1 service(s) not in SERVICES, e.g. sqs (not trimmed)" in found
    assert "lambda (not in SERVICES) still loads" in found


def test_a_declared_service_missing_from_the_layer_fails_the_check(sdk_layer: Path) -> None:
    assert trim_sdk_data(sdk_layer, _KEPT) == []
    shutil.rmtree(sdk_layer / "botocore" / "data" / "sns")
    found = sdk_data_problems(sdk_layer, _KEPT)
    assert found[0] == "botocore data missing for sns (in SERVICES)"
    assert any(message.startswith("sns: UnknownServiceError") for message in found)
    # a service botocore does not know at all is not trimmed for: the layer is left whole
    assert trim_sdk_data(sdk_layer, {"sts": frozenset(), "no-such-service": frozenset()}) == [
        "botocore has no data for no-such-service (in SERVICES): nothing trimmed"
    ]
    assert (sdk_layer / "botocore" / "data" / "iam").is_dir()


@pytest.mark.parametrize(
    ("removed", "expected"),
    [
        # IAM is global: without its entry the client would call and sign for a regional endpoint that does not exist
        (
            "iam",
            "iam client in us-east-1: endpoint_url 'https://iam.us-east-1.amazonaws.com', untrimmed 'https://iam.amazonaws.com'",
        ),
        # STS's entry changes no client in the probe regions, but the endpoint data differs (its FIPS endpoints)
        ("sts", "sts in "),
    ],
)
def test_a_broken_endpoints_json_fails_the_check(sdk_layer: Path, removed: str, expected: str) -> None:
    assert trim_sdk_data(sdk_layer, _KEPT) == []
    endpoints = _endpoints(sdk_layer)
    for partition in endpoints["partitions"]:
        partition["services"].pop(removed, None)
    (sdk_layer / "botocore" / "data" / "endpoints.json").write_text(json.dumps(endpoints))
    found = sdk_data_problems(sdk_layer, _KEPT)
    assert any(message.startswith(expected) for message in found), found
    assert all(message.startswith((f"{removed} ", f"{removed}-")) or "more endpoint" in message for message in found)


def test_the_build_check_trims_the_layer_then_passes(
    tmp_path: Path, sdk_layer: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make build`'s step on a build whose layer holds botocore: untrimmed it fails; --trim-botocore trims it to
    the declared services before compiling, and the check passes."""
    build = _build(tmp_path)
    layer = build / "Layer" / "python"
    (layer / "eksops").rename(sdk_layer / "eksops")
    layer.rmdir()
    sdk_layer.rename(layer)
    monkeypatch.setattr(buildcheck, "_declared_operations", lambda: _KEPT)
    assert main(["--compile", str(build)]) == 1
    assert "build check: Layer: lambda (not in SERVICES) still loads\n" in capsys.readouterr().err
    assert main(["--trim-botocore", "--compile", str(build)]) == 0
    assert sorted(p.name for p in (layer / "botocore" / "data").iterdir() if p.is_dir()) == ["iam", "sns", "sts"]


# -- layers a function lists together agree on what they both hold -------------------------------------------------


def _layer(root: Path, name: str, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        path = root / name / "python" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root / name


def test_layers_that_disagree_on_a_library_fail_the_check(tmp_path: Path) -> None:
    """Lambda unpacks a function's layers into one /opt/python, each over the previous: a library in two at two
    versions leaves the function a mix of both (the kubernetes layer once brought python-dateutil 4 over 2.9)."""
    eksops = _layer(
        tmp_path,
        "EksopsLayer",
        {
            "dateutil/__init__.py": "v2",
            "dateutil/tz.py": "tz",
            "python_dateutil-2.9.0.post0.dist-info/METADATA": "m",
            "urllib3/__init__.py": "same",
            "requirements.txt": "boto3",
        },
    )
    kubernetes = _layer(
        tmp_path,
        "KubernetesLayer",
        {
            "dateutil/__init__.py": "v4",
            "python_dateutil-4.0.0.dist-info/METADATA": "m",
            "urllib3/__init__.py": "same",
            "requirements.txt": "kubernetes",  # sam build's copy of each layer's own: not a conflict
        },
    )
    assert layer_conflicts([eksops, kubernetes]) == [
        "python_dateutil 2.9.0.post0 (EksopsLayer) and 4.0.0 (KubernetesLayer) in /opt/python: the later layer's "
        "files replace the earlier's",
        "dateutil/__init__.py differs in EksopsLayer and KubernetesLayer",
    ]
    (kubernetes / "python" / "dateutil" / "__init__.py").write_text("v2")
    (kubernetes / "python" / "python_dateutil-4.0.0.dist-info").rename(
        kubernetes / "python" / "python_dateutil-2.9.0.post0.dist-info"
    )
    assert layer_conflicts([eksops, kubernetes]) == []
