"""Checks what `sam build` produced: the package lands under python/ in the layer, handlers are in place, and
every library a function's code imports (at start-up or lazily, inside a function) was built into the
function or the layer, so a deployed function does not fail with ImportError on its first real event.
It also compiles the artifacts to the runtime's bytecode (`sam build` writes no .pyc, and Lambda's /var/task
and /opt are read-only, so without it every cold start compiles boto3, Powertools and eksops again) and checks
that every module has up-to-date bytecode for the runtime's Python.

Run as `python -m eksops_dev.buildcheck --compile .aws-sam/build` right after `sam build` (part of
`make build`); without --compile it only checks.
"""

from __future__ import annotations

import argparse
import ast
import compileall
import importlib.util
import py_compile
import sys
from importlib.machinery import PathFinder
from pathlib import Path

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


def problems(build_dir: Path) -> list[str]:
    template = Template(build_dir / "template.yaml")
    layers = [build_dir / logical_id for logical_id in template.of_type("AWS::Serverless::LayerVersion")]
    found = []
    for layer in layers:
        if not (layer / "python" / "eksops" / "__init__.py").is_file():
            found.append(f"{layer.name}: eksops is not under python/ in the built layer")
        found += [f"{layer.name}: {message}" for message in _x86_libraries(layer)]
        found += [f"{layer.name}: {message}" for message in dev_code(layer / "python")]
    for fn in template.functions.values():
        found += [f"{fn.logical_id}: {message}" for message in _function_problems(fn.code_dir, fn.handler, layers)]
    for artifact, runtime, _ in artifacts(build_dir):
        found += [f"{artifact.name}: {message}" for message in bytecode_problems(artifact, runtime)]
    return found


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


def dev_code(directory: Path) -> list[str]:
    """Development-only code that was built into a Lambda artifact: the known paths, and any eksops or handler
    module (the artifact's own top-level .py files and the eksops package; third-party libraries are not read)
    that imports a development-only library."""
    found = [
        f"{relative} is development code (eksops_dev); it must not be built into Lambda"
        for relative in DEV_PATHS
        if (directory / relative).exists()
    ]
    own = [*directory.glob("*.py"), *(directory / "eksops").rglob("*.py")]
    for module in sorted(own):
        dev = sorted({name.split(".")[0] for name in _imports(module)} & DEV_LIBRARIES)
        if dev:
            found.append(f"{module.relative_to(directory)} imports {', '.join(dev)}: development code in Lambda")
    return found


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eksops_dev.buildcheck", description="Check (and compile) what sam build produced"
    )
    parser.add_argument("build_dir", nargs="?", type=Path, default=Path(".aws-sam/build"))
    parser.add_argument("--compile", action="store_true", help="compile the artifacts to bytecode first")
    args = parser.parse_args(argv)
    build_dir: Path = args.build_dir
    issues = compile_artifacts(build_dir) if args.compile else []
    issues = issues or problems(build_dir)
    for issue in issues:
        sys.stderr.write(f"build check: {issue}\n")
    if not issues:
        sys.stdout.write(f"build check: layer and handlers in place, compiled for their runtime, in {build_dir}\n")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
