"""Checks what `sam build` produced: the package lands under python/ in the layer, handlers are in place.

Run as `python -m eksops.local.buildcheck .aws-sam/build` (part of `make build`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from eksops.local.template import Template


def problems(build_dir: Path) -> list[str]:
    found = []
    template = Template(build_dir / "template.yaml")
    for logical_id in template.of_type("AWS::Serverless::LayerVersion"):
        if not (build_dir / logical_id / "python" / "eksops" / "__init__.py").is_file():
            found.append(f"{logical_id}: eksops is not under python/ in the built layer")
        for so in (build_dir / logical_id / "python").rglob("*.so"):
            if "x86_64" in so.name:
                found.append(f"{logical_id}: {so.name} is built for x86_64, the functions run on arm64")
    for fn in template.functions.values():
        module = fn.code_dir / (fn.handler.rsplit(".", 1)[0] + ".py")
        if not module.is_file():
            found.append(f"{fn.logical_id}: handler module {module} missing from the build")
        if (fn.code_dir / "eksops").exists():
            found.append(f"{fn.logical_id}: the package was copied into the function; it belongs in the layer")
    return found


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
