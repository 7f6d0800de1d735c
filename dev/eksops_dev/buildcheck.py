"""Checks what `sam build` produced: the package lands under python/ in the layer, handlers are in place, and
every library a function's code imports (at start-up or lazily, inside a function) was built into the
function or the layer, so a deployed function does not fail with ImportError on its first real event.

Run as `python -m eksops_dev.buildcheck .aws-sam/build` (part of `make build`).
"""

from __future__ import annotations

import ast
import sys
from importlib.machinery import PathFinder
from pathlib import Path

from eksops_dev.template import Template

UNZIPPED_LIMIT = 250 * 1000 * 1000  # a function and all its layers, unzipped
# Development code (sandbox, demo, CLI, emulators) lives in eksops_dev and must never reach a Lambda artifact;
# the old paths are listed too, so a file moved back into the runtime package is caught.
DEV_PATHS = ("eksops_dev", "eksops/local", "eksops/cli.py", "eksops/logs/filter_pattern.py")


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
    return found


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


def dev_code(directory: Path) -> list[str]:
    """Development-only code that was built into a Lambda artifact."""
    return [
        f"{relative} is development code (eksops_dev); it must not be built into Lambda"
        for relative in DEV_PATHS
        if (directory / relative).exists()
    ]


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


def main() -> int:
    build_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ".aws-sam/build")
    issues = problems(build_dir)
    for issue in issues:
        sys.stderr.write(f"build check: {issue}\n")
    if not issues:
        sys.stdout.write(f"build check: layer and handlers in place in {build_dir}\n")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
