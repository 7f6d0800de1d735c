"""Checks what `sam build` produced: the package lands under python/ in the layer, handlers are in place, and
every library a function's code imports (at start-up or lazily, inside a function) was built into the
function or the layer, so a deployed function does not fail with ImportError on its first real event.
It also compiles the artifacts to the runtime's bytecode (`sam build` writes no .pyc, and Lambda's /var/task
and /opt are read-only, so without it every cold start compiles boto3, Powertools and eksops again) and checks
that every module has up-to-date bytecode for the runtime's Python. With --trim-botocore it first removes from the
layer the botocore (and boto3) data of every AWS service eksops has no client for (eksops.aws.clients.SERVICES):
18 MB of the layer's 36, and about half the CPU time of the first client of a cold start (botocore decodes all of
endpoints.json and lists every service folder); and it cuts each declared service's model to the operations eksops
calls (eksops.aws.clients.OPERATIONS), without documentation (eksops_dev.sdkmodels). The check then proves the trim
safe: the declared services' models, loaded from the layer in fresh interpreters, are exactly the untrimmed ones
cut the same way, and their clients resolve the same endpoints and signing scopes as an untrimmed botocore, offline.

Run as `python -m eksops_dev.buildcheck --trim-botocore --compile .aws-sam/build` right after `sam build` (part of
`make build`); without the options it only checks.
"""

from __future__ import annotations

import argparse
import ast
import compileall
import functools
import gzip
import hashlib
import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
from collections.abc import Mapping
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

from eksops_dev import sdkmodels
from eksops_dev.template import Template

UNZIPPED_LIMIT = 250 * 1000 * 1000  # a function and all its layers, unzipped
# Development code (sandbox, demo, CLI, emulators) lives in eksops_dev and must never reach a Lambda artifact;
# the old paths are listed too, so a file moved back into the runtime package is caught.
DEV_PATHS = ("eksops_dev", "eksops/local", "eksops/cli.py", "eksops/logs/filter_pattern.py")
# What a Lambda runtime's interpreter accepts as bytecode: the cache tag in a .pyc's name and the magic number
# at the start of its header (importlib.util.MAGIC_NUMBER; it changes with every minor version of Python).
# A runtime missing here fails the check until its line is added.
BYTECODE = {"python3.11": ("cpython-311", 3495)}
# Where Lambda unpacks each kind of artifact (a layer's python/ becomes /opt/python on sys.path).
FUNCTION_ROOT, LAYER_ROOT = "/var/task", "/opt"
_HASH_BASED = 0b01  # .pyc header flags (PEP 552)


def problems(build_dir: Path, operations: Mapping[str, frozenset[str]] | None = None) -> list[str]:
    """Everything wrong with the build; ``operations``: the AWS services eksops has clients for, with the operations
    it calls on each (its OPERATIONS)."""
    template = Template(build_dir / "template.yaml")
    layers = [build_dir / logical_id for logical_id in template.of_type("AWS::Serverless::LayerVersion")]
    found = []
    if not any((layer / "python" / "eksops" / "__init__.py").is_file() for layer in layers):
        found.append("no built layer holds eksops under python/")
    for layer in layers:
        found += [f"{layer.name}: {message}" for message in _x86_libraries(layer)]
        found += [f"{layer.name}: {message}" for message in dev_code(layer / "python")]
        if (layer / "python" / "botocore" / "data").is_dir():
            declared = _declared_operations() if operations is None else operations
            found += [f"{layer.name}: {message}" for message in sdk_data_problems(layer / "python", declared)]
    for fn in template.functions.values():
        own = [build_dir / logical_id for logical_id in function_layers(template, fn.logical_id)]
        found += [f"{fn.logical_id}: {message}" for message in _function_problems(fn.code_dir, fn.handler, own)]
        found += [f"{fn.logical_id}: {message}" for message in layer_conflicts(own)]
    for artifact, runtime, _ in artifacts(build_dir):
        found += [f"{artifact.name}: {message}" for message in bytecode_problems(artifact, runtime)]
    return found


def function_layers(template: Template, logical_id: str) -> list[str]:
    """The template's layers (logical IDs) a function runs with: Globals' list, then its own (SAM appends them)."""
    listed = [
        *template.doc.get("Globals", {}).get("Function", {}).get("Layers", []),
        *template.resources[logical_id].get("Properties", {}).get("Layers", []),
    ]
    return [layer["Ref"] for layer in listed if isinstance(layer, dict) and layer.get("Ref") in template.resources]


def artifacts(build_dir: Path) -> list[tuple[Path, str, str]]:
    """Each built layer and function: its directory, its runtime, and where Lambda unpacks it."""
    template = Template(build_dir / "template.yaml")
    found = []
    for logical_id, layer in template.of_type("AWS::Serverless::LayerVersion").items():
        runtimes = layer.get("Properties", {}).get("CompatibleRuntimes") or ["(none declared)"]
        # bytecode is compiled for one Python: a layer offered to several runtimes would recompile on the others
        found.append((build_dir / logical_id, ",".join(runtimes), LAYER_ROOT))
    found += [(fn.code_dir, str(fn.properties.get("Runtime")), FUNCTION_ROOT) for fn in template.functions.values()]
    return found


def compile_artifacts(build_dir: Path) -> list[str]:
    """Compile every .py of the built layers and functions to bytecode for their runtime, in __pycache__.

    Hash-based, unchecked bytecode: `sam deploy` zips files with the date 1980-01-01, so a timestamp-based .pyc
    never matches its source in Lambda and is recompiled, in memory, at every cold start (the directories are
    read-only, nothing is saved). A checked-hash .pyc would work but makes every cold start read and hash each
    source file it imports. The artifact is immutable once built (nothing edits /var/task or /opt), and
    :func:`bytecode_problems` compares every .pyc's hash with its source at build time, so unchecked is safe.
    """
    found = []
    for artifact, runtime, root in artifacts(build_dir):
        tag = BYTECODE.get(runtime, ("?", 0))[0]
        if tag != sys.implementation.cache_tag:
            found.append(
                f"{artifact.name}: runs on {runtime} but this is Python {sys.version.split()[0]} "
                f"({sys.implementation.cache_tag}); compile with the runtime's Python (the project's .venv)"
            )
            continue
        ok = compileall.compile_dir(
            artifact,
            ddir=root,  # paths as Lambda unpacks them, so the bytes do not depend on where the build ran
            force=True,
            quiet=1,
            workers=0,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        if not ok:
            found.append(f"{artifact.name}: some modules do not compile (listed above)")
    return found


def bytecode_problems(directory: Path, runtime: str, *, examples: int = 5) -> list[str]:
    """Modules under ``directory`` without hash-based bytecode for ``runtime`` whose hash matches the source
    (missing, compiled by another Python, timestamp-based, or stale). A few examples are named per kind."""
    if runtime not in BYTECODE:
        return [f"no bytecode known for runtime {runtime}; add its cache tag and magic number to BYTECODE"]
    tag, magic = BYTECODE[runtime]
    kinds: dict[str, list[str]] = {}
    for source in sorted(directory.rglob("*.py")):
        pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        kind = _pyc_problem(source, pyc, magic) if pyc.is_file() else f"no {tag} bytecode"
        if kind:
            kinds.setdefault(kind, []).append(str(source.relative_to(directory)))
    return [f"{len(paths)} module(s) with {kind}, e.g. {', '.join(paths[:examples])}" for kind, paths in kinds.items()]


def _pyc_problem(source: Path, pyc: Path, magic: int) -> str | None:
    with pyc.open("rb") as file:
        header = file.read(16)
    if len(header) < 16 or header[2:4] != b"\r\n":
        return "a truncated or unreadable .pyc"
    found = int.from_bytes(header[:2], "little")
    if found != magic:
        return f"bytecode of another Python (magic {found}, the runtime's is {magic})"
    if not int.from_bytes(header[4:8], "little") & _HASH_BASED:
        return "timestamp-based bytecode (the deploy zip resets file times, so Lambda would recompile)"
    if importlib.util.MAGIC_NUMBER[:2] != magic.to_bytes(2, "little"):
        return "bytecode whose source hash this Python cannot verify (run the check with the runtime's Python)"
    if header[8:16] != importlib.util.source_hash(source.read_bytes()):
        return "stale bytecode (the source changed after it was compiled)"
    return None


_COPY = "requirements.txt"  # sam build copies each layer's own requirements.txt to its root: never imported


def layer_conflicts(layers: list[Path]) -> list[str]:
    """What the ``layers`` of one function (in the order Lambda extracts them into /opt, a later one replacing an
    earlier one's files) disagree on: a distribution at two versions (the function would run a mix of both, and
    not the version the tests ran), or a file at the same path with other content."""
    versions: dict[str, dict[str, str]] = {}
    files: dict[str, tuple[str, bytes]] = {}
    found = []
    for layer in layers:
        python = layer / "python"
        for info in sorted(python.glob("*.dist-info")):
            name, _, version = info.name.removesuffix(".dist-info").partition("-")
            versions.setdefault(name.lower(), {})[version] = layer.name
        for path in sorted(python.rglob("*")):
            relative = str(path.relative_to(python))
            if not path.is_file() or "__pycache__" in path.parts or ".dist-info" in relative or relative == _COPY:
                continue
            digest = hashlib.sha256(path.read_bytes()).digest()
            if relative in files and files[relative][1] != digest:
                found.append(f"{relative} differs in {files[relative][0]} and {layer.name}")
            files.setdefault(relative, (layer.name, digest))
    for name, seen in sorted(versions.items()):
        if len(seen) > 1:
            listed = " and ".join(f"{version} ({layer})" for version, layer in seen.items())
            found.insert(0, f"{name} {listed} in /opt/python: the later layer's files replace the earlier's")
    return found[:_SHOWN] + ([f"{len(found) - _SHOWN} more"] if len(found) > _SHOWN else [])


def _function_problems(code_dir: Path, handler: str, layers: list[Path]) -> list[str]:
    found = []
    module = code_dir / (handler.rsplit(".", 1)[0] + ".py")
    if not module.is_file():
        found.append(f"handler module {module} missing from the build")
    if (code_dir / "eksops").exists():
        found.append("the package was copied into the function; it belongs in the layer")
    found += _x86_libraries(code_dir)
    found += dev_code(code_dir)
    unzipped = _size(code_dir) + sum(_size(layer) for layer in layers)
    if unzipped > UNZIPPED_LIMIT:
        found.append(f"{unzipped / 2**20:.0f} MiB with its layers, over Lambda's 250 MB unzipped")
    if module.is_file():
        for name in sorted(missing_imports(module, [code_dir, *(layer / "python" for layer in layers)])):
            found.append(f"imports {name!r}, which is in neither the function nor a layer")
    return found


# Libraries only development code imports: an eksops or handler module that imports one is development code,
# whatever its name (a sandbox module copied into the runtime package under another name, say).
DEV_LIBRARIES = frozenset({"eksops_dev", "moto", "kmock", "pytest", "hypothesis", "matplotlib", "yaml", "werkzeug"})
# Of those, the ones no artifact may hold at all (PyYAML is in the kubernetes layer: the kubernetes client needs it).
DEV_PACKAGES = DEV_LIBRARIES - {"eksops_dev", "yaml"} | {"_pytest", "flask"}


def dev_code(directory: Path) -> list[str]:
    """Development-only code that was built into a Lambda artifact: the known paths, and any eksops or handler
    module (the artifact's own top-level .py files and the eksops package; third-party libraries are not read)
    that imports a development-only library."""
    found = [
        f"{relative} is development code (eksops_dev); it must not be built into Lambda"
        for relative in DEV_PATHS
        if (directory / relative).exists()
    ]
    roots = [directory, *directory.glob("lib/python3*/site-packages")]  # what Lambda puts on sys.path from here
    found += [
        f"{(root / name).relative_to(directory)} is a development-only library; it must not be built into Lambda"
        for root in roots
        for name in sorted(DEV_PACKAGES)
        if (root / name).is_dir() or (root / f"{name}.py").is_file()
    ]
    own = [*directory.glob("*.py"), *(directory / "eksops").rglob("*.py")]
    for module in sorted(own):
        dev = sorted({name.split(".")[0] for name in _imports(module)} & DEV_LIBRARIES)
        if dev:
            found.append(f"{module.relative_to(directory)} imports {', '.join(dev)}: development code in Lambda")
    copies = _dev_fingerprints()
    installed = _installed_files(directory)
    for module in sorted(directory.rglob("*.py")):  # every module but other distributions', under whatever name
        relative = str(module.relative_to(directory))
        if relative in installed or relative.startswith("eksops_dev/"):
            continue
        original = copies.get(_fingerprint(module.read_bytes()))
        if original is not None:
            found.append(f"{relative} is a copy of {original}: development code in Lambda")
    return found


def _installed_files(directory: Path) -> set[str]:
    """The files pip installed for distributions other than eksops (their dist-info RECORDs), relative to
    ``directory``: libraries are not read for copies of eksops_dev (the kubernetes layer alone has 5,000 modules)."""
    files: set[str] = set()
    for record in directory.rglob("*.dist-info/RECORD"):
        if record.parent.name.lower().startswith("eksops-"):
            continue
        base = record.parent.parent
        for line in record.read_text(errors="replace").splitlines():
            path = os.path.normpath(base / line.split(",", 1)[0])
            if path.startswith(str(directory)):
                files.add(os.path.relpath(path, directory))
    return files


# A module this small (its syntax tree, dumped) is no evidence of a copy: an empty __init__.py, a re-export.
FINGERPRINT_MIN_BYTES = 400


@functools.cache
def _dev_fingerprints() -> dict[str, str]:
    """Each eksops_dev module's fingerprint -> its name: a copy under any name, even one importing only the standard
    library (the filter-pattern evaluator), is development code all the same."""
    package = Path(__file__).resolve().parent
    prints = {
        _fingerprint(module.read_bytes()): f"eksops_dev/{module.relative_to(package)}"
        for module in package.rglob("*.py")
    }
    prints.pop("", None)
    return prints


def _fingerprint(source: bytes) -> str:
    """The module's syntax tree, hashed: a copy reformatted or with comments changed is still a copy; "" for a
    small module, or one that does not parse (no Python 3 code)."""
    try:
        tree = ast.dump(ast.parse(source))
    except (SyntaxError, ValueError):
        return ""
    return hashlib.sha256(tree.encode()).hexdigest() if len(tree) >= FINGERPRINT_MIN_BYTES else ""


def _x86_libraries(directory: Path) -> list[str]:
    return [
        f"{so.name} is built for x86_64, the functions run on arm64"
        for so in directory.rglob("*.so")
        if "x86_64" in so.name
    ]


def _size(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def missing_imports(module: Path, path: list[Path]) -> set[str]:
    """Top-level libraries imported by ``module`` and the eksops modules it reaches (found on ``path``) that
    are neither in the standard library nor on ``path``. Imports under ``if TYPE_CHECKING:`` are typing only.
    eksops_dev is never built, so a deployed module that imports it is reported like any missing library."""
    dirs = [str(p) for p in path]
    seen: set[str] = set()
    libraries: set[str] = set()
    todo = [module]
    while todo:
        source = todo.pop()
        for name in _imports(source):
            top = name.split(".")[0]
            if top != "eksops":
                libraries.add(top)
                continue
            for candidate in _module_files(name, path):
                if str(candidate) not in seen:
                    seen.add(str(candidate))
                    todo.append(candidate)
    return {lib for lib in libraries if lib not in sys.stdlib_module_names and PathFinder.find_spec(lib, dirs) is None}


def _imports(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(), str(source))
    typing_only = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for stmt in branch.body
        for node in ast.walk(stmt)
    }
    names: set[str] = set()
    package = (
        ".".join(source.with_suffix("").parts[source.with_suffix("").parts.index("eksops") :])
        if "eksops" in source.parts
        else ""
    )
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = package.rsplit(".", node.level)[0] if package else ""
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)  # `from eksops import kube`
    return {n for n in names if n}


def _module_files(name: str, path: list[Path]) -> list[Path]:
    """The files of eksops module ``name`` and of the packages above it (their __init__ runs first)."""
    files = []
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        relative = Path(*parts[:depth])
        for root in path:
            for candidate in (root / relative / "__init__.py", root / relative.with_suffix(".py")):
                if candidate.is_file():
                    files.append(candidate)
    return files


# -- the AWS SDK's data: only the services eksops has clients for -------------------------------------------------

# Regions the trimmed layer's clients are compared in: two of the commercial partition, China and GovCloud
# (partitions with endpoints of their own); botocore resolves them all offline. The endpoint data itself is compared
# in every region of every partition.
PROBE_REGIONS = ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1")
_MODEL_FILES = ("service-2.json", "service-2.json.gz")
_SHOWN = 10  # differences listed by the check; the rest are counted
_UNLISTED = ("lambda", "s3", "ec2")  # services every botocore has: one that eksops does not declare must not load
# Run in a fresh `python -S` with PYTHONPATH = one botocore (the trimmed layer's, or the venv's untrimmed one),
# then eksops_dev (for sdkmodels alone). "models": per service, the digest of the model as loaded and of the model cut
# to the declared operations. "clients": per service and probe region, the client's endpoint and signing region and
# name, then the URL and credential scope of a real signed request (the first declared operation, its required
# parameters filled in; a before-send hook takes it and stops it before it leaves). "endpoints": what endpoints.json
# resolves for the service's endpoint prefix in every region, plain and FIPS. Nothing is sent: the credentials are
# fake and no request reaches the network.
_PROBE = """
import datetime, json, re, sys
import botocore, botocore.session
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import UnknownServiceError
from botocore.regions import EndpointResolver
from botocore.exceptions import DataNotFoundError
from eksops_dev.sdkmodels import CUTS, digest

class Sent(Exception):
    pass

def stop(request, **_):
    raise Sent(request.url, request.headers.get("Authorization", b""))

def filled(shape):
    kind = shape.type_name
    if kind == "structure":
        return {name: filled(shape.members[name]) for name in shape.required_members}
    if kind == "string":
        return shape.enum[0] if shape.enum else "x" * max(1, shape.metadata.get("min", 1))
    return {"list": [], "map": {}, "boolean": False, "float": 1.0, "double": 1.0, "blob": b"x",
            "timestamp": datetime.datetime(2026, 1, 1)}.get(kind, max(1, shape.metadata.get("min", 1)))

def signed_request(client, operations):
    model = client.meta.service_model
    operation = operations[0]
    input_shape = model.operation_model(operation).input_shape
    client.meta.events.register("before-send", stop)
    try:
        getattr(client, xform_name(operation))(**(filled(input_shape) if input_shape else {}))
    except Sent as sent:
        url, authorization = sent.args
    else:
        raise RuntimeError(operation + " was sent")
    authorization = authorization.decode() if isinstance(authorization, bytes) else authorization
    credential = re.search(r"Credential=[^/]+/[0-9]{8}/([^,]+)", authorization)
    signer = client._request_signer  # its public properties: the signing region and name
    return {
        "endpoint_url": client.meta.endpoint_url, "signing_region": signer.region_name,
        "signing_name": signer.signing_name, "request": operation + " " + url,
        "credential_scope": authorization.split(" ", 1)[0] + " " + (credential.group(1) if credential else ""),
    }

ask = json.loads(sys.argv[1])
session = botocore.session.get_session()
found = {"version": botocore.__version__, "available": session.get_available_services(), "clients": {},
         "endpoints": {}, "models": {}, "errors": {}, "unlisted_loaded": []}
try:
    import boto3.session
    found["resources"] = boto3.session.Session().get_available_resources()
except ImportError:
    found["resources"] = None
resolver = EndpointResolver(session.get_data("endpoints"), uses_builtin_data=True)
config = Config(retries={"total_max_attempts": 1}, parameter_validation=False)
keys = {"aws_access_key_id": "AKIDBUILDCHECK", "aws_secret_access_key": "build-check"}
for service, operations in sorted(ask["operations"].items()):
    try:
        prefix = session.get_service_model(service).endpoint_prefix
        loader = session.get_component("data_loader")
        version = loader.determine_latest_version(service, "service-2")
        for kind, cut in CUTS.items():
            try:
                loaded = loader.load_service_model(service, kind, version)
            except DataNotFoundError:
                continue
            found["models"][service + " " + kind] = {"loaded": digest(loaded),
                                                     "cut": digest(cut(loaded, service, operations))}
        for region in ask["all_regions"]:
            for fips in (False, True):
                where = service + " in " + region + (" (FIPS)" if fips else "")
                found["endpoints"][where] = resolver.construct_endpoint(prefix, region, use_fips_endpoint=fips)
        for region in ask["regions"]:
            client = session.create_client(service, region_name=region, config=config, **keys)
            found["clients"][service + " client in " + region] = signed_request(client, operations)
    except Exception as exc:
        found["errors"][service] = type(exc).__name__ + ": " + str(exc)
for service in ask["unlisted"]:
    try:
        session.get_service_model(service)
        found["unlisted_loaded"].append(service)
    except UnknownServiceError:
        pass
print(json.dumps(found))
"""


def trim_layers(build_dir: Path, operations: Mapping[str, frozenset[str]]) -> list[str]:
    """:func:`trim_sdk_data` on every built layer that holds botocore."""
    found = []
    for logical_id in Template(build_dir / "template.yaml").of_type("AWS::Serverless::LayerVersion"):
        python_dir = build_dir / logical_id / "python"
        if (python_dir / "botocore" / "data").is_dir():
            found += [f"{logical_id}: {message}" for message in trim_sdk_data(python_dir, operations)]
    return found


def _declared_operations() -> Mapping[str, frozenset[str]]:
    from eksops.aws.clients import OPERATIONS

    return OPERATIONS


def trim_sdk_data(python_dir: Path, operations: Mapping[str, frozenset[str]]) -> list[str]:
    """Keep in ``python_dir``'s botocore/data (and boto3/data) only the folders of the services in ``operations``
    and the top-level files, and in botocore's endpoints.json only the kept services' entries (by endpoint prefix)
    in every partition; then cut each kept service's model to its operations (:func:`cut_models`). Returns
    problems; a service botocore does not know leaves the data untouched."""
    services = frozenset(operations)
    data = python_dir / "botocore" / "data"
    unknown = sorted(service for service in services if not (data / service).is_dir())
    if unknown:
        return [f"botocore has no data for {', '.join(unknown)} (in SERVICES): nothing trimmed"]
    prefixes = set().union(*(endpoint_prefixes(data / service) for service in services))
    for directory in (data, python_dir / "boto3" / "data"):
        for folder in directory.iterdir() if directory.is_dir() else ():
            if folder.is_dir() and folder.name not in services:
                shutil.rmtree(folder)
    endpoints = json.loads((data / "endpoints.json").read_bytes())
    for partition in endpoints["partitions"]:
        partition["services"] = {name: v for name, v in partition["services"].items() if name in prefixes}
    (data / "endpoints.json").write_text(json.dumps(endpoints, separators=(",", ":")))
    return cut_models(data, operations)


def cut_models(data: Path, operations: Mapping[str, frozenset[str]]) -> list[str]:
    """In botocore's ``data`` folder, each service's model, paginators and waiters as botocore loads them (the
    latest API version, SDK extras merged) replaced by ones cut to the service's ``operations``
    (:data:`eksops_dev.sdkmodels.CUTS`): the older API versions (botocore loads the latest unless told a version;
    eksops never does), the SDK extras (merged in) and the examples (documentation) go. Returns problems (an
    operation the model lacks)."""
    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import Loader

    loader = Loader(extra_search_paths=[str(data)], include_default_search_paths=False)
    found = []
    for service, wanted in sorted(operations.items()):
        latest = loader.determine_latest_version(service, "service-2")
        cuts = {}
        try:
            for kind, cut in sdkmodels.CUTS.items():
                try:
                    cuts[kind] = cut(loader.load_service_model(service, kind, latest), service, wanted)
                except DataNotFoundError:  # a service without paginators or waiters
                    continue
        except sdkmodels.UnknownOperations as exc:
            found.append(str(exc))
            continue
        for version in (data / service).iterdir():
            if version.name != latest:
                shutil.rmtree(version)
        folder = data / service / latest
        for kind in (*sdkmodels.CUTS, "examples-1"):
            for name in (f"{kind}.json", f"{kind}.json.gz", f"{kind}.sdk-extras.json"):
                (folder / name).unlink(missing_ok=True)
        for kind, content in cuts.items():
            (folder / f"{kind}.json").write_text(json.dumps(content, separators=(",", ":")))
    return found


def endpoint_prefixes(service_dir: Path) -> set[str]:
    """The endpoint prefixes (endpoints.json's service keys) of every API version of a botocore service."""
    prefixes = set()
    for model in (version / name for version in service_dir.iterdir() for name in _MODEL_FILES):
        if model.is_file():
            text = gzip.decompress(model.read_bytes()) if model.suffix == ".gz" else model.read_bytes()
            prefixes.add(json.loads(text)["metadata"]["endpointPrefix"])
    return prefixes


def sdk_data_problems(python_dir: Path, operations: Mapping[str, frozenset[str]]) -> list[str]:
    """How the botocore in ``python_dir`` differs from the venv's untrimmed one for eksops: services it holds
    besides those of ``operations`` or lacks (an unlisted one that still loads), boto3 resources likewise, a
    declared service whose client fails, a model other than the untrimmed one cut to the declared operations, and
    any difference in a declared service's endpoints: its clients' endpoint, signing scope and signed request in
    :data:`PROBE_REGIONS`, its endpoint data in every region. Offline: nothing is sent."""
    import botocore

    services = frozenset(operations)
    reference = Path(botocore.__file__).resolve().parent
    unlisted = [service for service in _UNLISTED if service not in services]
    partitions = json.loads((reference / "data" / "endpoints.json").read_bytes())["partitions"]
    ask = {
        "operations": {service: sorted(wanted) for service, wanted in operations.items()},
        "regions": PROBE_REGIONS,
        "all_regions": [region for partition in partitions for region in partition["regions"]],
        "unlisted": unlisted,
    }
    trimmed, untrimmed = _probe([python_dir, reference.parent], json.dumps(ask))
    if "failed" in trimmed or "failed" in untrimmed:
        return [f"the endpoint probe failed: {(trimmed if 'failed' in trimmed else untrimmed)['failed']}"]
    if trimmed["version"] != untrimmed["version"]:
        return [
            f"botocore {trimmed['version']} here, {untrimmed['version']} in the venv: the endpoints are compared "
            "with the same version (reinstall the venv or rebuild)"
        ]
    found = _set_problems("botocore data", trimmed["available"], services)
    if trimmed["resources"] is not None and untrimmed["resources"] is not None:
        found += _set_problems(
            "boto3 resource data", trimmed["resources"], services.intersection(untrimmed["resources"])
        )
    found += [f"{service} (not in SERVICES) still loads" for service in trimmed["unlisted_loaded"]]
    found += [f"{service}: {error} (untrimmed botocore)" for service, error in untrimmed["errors"].items()]
    found += [
        f"{service}: {error}"
        if "UnknownOperations" not in error or service in untrimmed["errors"]
        else f"{service}: the layer's model lacks an operation declared since it was built: {error} (rebuild)"
        for service, error in trimmed["errors"].items()
    ]
    found += [
        f"{where.split()[0]}: the layer's {where.split()[1]} is not the untrimmed one cut to the declared operations "
        "(rebuild)"
        for where, digests in sorted(untrimmed["models"].items())
        if where.split()[0] not in trimmed["errors"]
        and trimmed["models"].get(where, {}).get("loaded") != digests["cut"]
    ]
    differences = [
        f"{where}: {_difference(trimmed[kind][where], expected)}"
        for kind in ("clients", "endpoints")
        for where, expected in untrimmed[kind].items()
        if where in trimmed[kind] and trimmed[kind][where] != expected
    ]
    found += differences[:_SHOWN]
    if len(differences) > _SHOWN:
        found.append(f"{len(differences) - _SHOWN} more endpoint difference(s)")
    return found


def _difference(got: Any, expected: Any) -> str:
    if isinstance(got, dict) and isinstance(expected, dict):
        fields = sorted(set(got) | set(expected))
        return "; ".join(
            f"{field} {got.get(field)!r}, untrimmed {expected.get(field)!r}"
            for field in fields
            if got.get(field) != expected.get(field)
        )
    return f"{got!r}, untrimmed {expected!r}"


def _set_problems(what: str, held: list[str], expected: frozenset[str]) -> list[str]:
    found = []
    if extra := sorted(set(held) - expected):
        found.append(f"{what} for {len(extra)} service(s) not in SERVICES, e.g. {', '.join(extra[:5])} (not trimmed)")
    if missing := sorted(expected - set(held)):
        found.append(f"{what} missing for {', '.join(missing)} (in SERVICES)")
    return found


def _probe(paths: list[Path], ask: str) -> list[dict[str, Any]]:
    """Run the endpoint probe once per botocore location, in parallel, each in a fresh interpreter."""
    runs = []
    for path in paths:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join([str(path), str(Path(sdkmodels.__file__).resolve().parents[1])]),
            "PYTHONDONTWRITEBYTECODE": "1",  # the layer's bytecode is the build's, never the probe's
            # nothing from this machine's AWS configuration (endpoint overrides, profiles) reaches the clients
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        command = [sys.executable, "-S", "-c", _PROBE, ask]  # this interpreter and this module's script
        pipe = subprocess.PIPE
        runs.append(subprocess.Popen(command, env=env, text=True, stdout=pipe, stderr=pipe))  # noqa: S603
    results = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        results.append(json.loads(out) if run.returncode == 0 else {"failed": err.strip()[-2000:]})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eksops_dev.buildcheck", description="Check (and compile) what sam build produced"
    )
    parser.add_argument("build_dir", nargs="?", type=Path, default=Path(".aws-sam/build"))
    parser.add_argument("--compile", action="store_true", help="compile the artifacts to bytecode first")
    parser.add_argument(
        "--trim-botocore",
        action="store_true",
        help="first remove from the layers the botocore/boto3 data of services eksops has no client for",
    )
    args = parser.parse_args(argv)
    build_dir: Path = args.build_dir
    issues = trim_layers(build_dir, _declared_operations()) if args.trim_botocore else []
    issues = issues or (compile_artifacts(build_dir) if args.compile else [])
    issues = issues or problems(build_dir)
    for issue in issues:
        sys.stderr.write(f"build check: {issue}\n")
    if not issues:
        sys.stdout.write(f"build check: layer and handlers in place, compiled for their runtime, in {build_dir}\n")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
