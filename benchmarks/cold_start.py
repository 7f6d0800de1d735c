"""Cold start of what is deployed: each handler's import and init, on the built artifacts, against a bare handler.

What a cold start does before the first event is import the handler module: the imports, then the module body
(Logger, Tracer, Metrics, configuration read and validated, boto3 clients). This script times exactly that for
every function in .aws-sam/build (as `make build` left it) and, in the same run, for a bare Powertools handler
(Logger, Tracer and Metrics around a trivial handler, on the same layer), each in a fresh interpreter:

- the artifacts are zipped as `sam deploy` zips them (every file, dates 1980-01-01) and unpacked, once with the
  bytecode `make build` compiled and once without any __pycache__ (what a bare `sam build` ships);
- each run is a new Python 3.11 without site-packages (`-S`), PYTHONPATH = the function, then the layer's
  python/, as Lambda orders /var/task and /opt/python, with PYTHONDONTWRITEBYTECODE (Lambda's disk is
  read-only), after importing what the runtime's bootstrap has already imported when it loads a handler;
- the environment is the function's own from template.yaml, resolved by the sandbox against a moto server
  (AWS_ENDPOINT_URL), plus what Lambda sets (LAMBDA_TASK_ROOT, so Powertools' Tracer is enabled and patches
  its modules as with `Tracing: Active`); moto's request recorder shows whether any init calls AWS;
- runs are interleaved and repeated (--repeat); the medians of CPU time and wall time are printed, and the
  ratio to the bare handler is taken on CPU time (on a shared machine, wall time also counts waiting for a CPU),
  round by round (each round runs every handler once, within seconds), as the median of the rounds' ratios, with
  the middle half of them for the light functions: a busy stretch then slows both sides of a ratio alike.

It also prints each artifact's size (unzipped, zipped, and how much of it is bytecode) and, from
`python -X importtime`, which packages make each light handler's init heavier than the bare one.

With valgrind installed it also counts the instructions each light handler's import and init executes (callgrind),
which, unlike CPU time on a shared machine, is the same in every run.

Run `make build` first, then `.venv/bin/python benchmarks/cold_start.py` (about seven minutes on two cores).
It exits 1 when an artifact has no bytecode, a handler fails to import, or an init calls AWS; the 1.3x target
for the light functions is reported, not enforced (timings on a shared machine are no test).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import py_compile
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LIGHT = ("log_retention", "error_alarms", "notifier")
TARGET = 1.3  # a light handler's init at most 1.3x the bare handler's
BARE = "bare Powertools handler"
BARE_CLIENT = "bare + one boto3 client"
BARE_IDEMPOTENT = "bare + Powertools idempotency"
# The reference handlers beside the bare one: with one boto3 client, and with what any handler using Powertools
# idempotency has (its package imports boto3, hence s3transfer and multiprocessing, whichever client it is handed):
# what the notifier would start from with it (it keeps its records with eksops.notify.once instead).
REFERENCES = {
    BARE: ("BareFunction", ""),
    BARE_CLIENT: ("BareClientFunction", 'import boto3\nsns = boto3.client("sns")\n'),
    BARE_IDEMPOTENT: (
        "BareIdempotentFunction",
        "import boto3\nfrom aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer\n"
        'store = DynamoDBPersistenceLayer(table_name="t", boto3_client=boto3.client("dynamodb"))\n',
    ),
}
MB = 1_000_000
# Imported by the runtime's bootstrap (awslambdaric) before it loads the handler: not the handler's cost.
RUNTIME_PRELOADED = "importlib, json, logging, os, sys, time, traceback, warnings"
BARE_HANDLER = """
from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
{client}

@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event, context):
    return {{"ok": True}}
"""
PROBE = f"""
import {RUNTIME_PRELOADED}
before = len(sys.modules)
wall, cpu = time.perf_counter(), time.process_time()
import app
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
assert callable(app.handler)
print(json.dumps({{"wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "modules": len(sys.modules) - before}}))
"""


@dataclass(frozen=True)
class Handler:
    name: str
    directory: str  # the function's artifact (extracted), relative to a variant's directory
    environment: dict[str, str]
    layers: tuple[str, ...]  # its layers' artifacts (logical IDs), in the order Lambda stacks them


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--repeat", type=int, default=7, help="runs per handler and variant (median printed)")
    parser.add_argument("--top", type=int, default=6, help="packages listed per handler from -X importtime")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="eksops-cold-start-") as tmp:
        work = Path(tmp)
        # moto reads where to record at import: set before the sandbox imports it
        os.environ["MOTO_RECORDER_FILEPATH"] = str(work / "moto_recording")
        return run(args, work)


def run(args: argparse.Namespace, work: Path) -> int:
    from eksops_dev.buildcheck import BYTECODE, artifacts, bytecode_problems
    from eksops_dev.template import Template

    build: Path = args.build_dir.resolve()
    if not (build / "template.yaml").is_file():
        print(f"no build in {build}: run `make build` first")
        return 1
    found = [(a, runtime) for a, runtime, _ in artifacts(build)]
    missing = [f"{a.name}: {p}" for a, runtime in found for p in bytecode_problems(a, runtime)]
    if missing:
        print("the build has no (or stale) bytecode; run `make build` (not a bare `sam build`):")
        print("\n".join(f"  {m}" for m in missing))
        return 1
    python = interpreter(BYTECODE[found[0][1]][0])

    print(f"cold start on {build.relative_to(ROOT) if build.is_relative_to(ROOT) else build}")
    print(f"interpreter: {python} -S, in a fresh process per run; {args.repeat} runs per handler and variant")
    print(f"load average when starting: {', '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)\n")
    sizes(build, [a for a, _ in found], work)
    built = Template(build / "template.yaml")
    with sandbox_environment() as (environments, endpoint):
        handlers = prepare(built, work, environments)
        failures = calls_at_init(python, work, handlers, endpoint)
        failures += timings(python, work, handlers, args.repeat)
        failures += instructions(python, work, handlers)
        offenders(python, work, handlers, args.top)
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def interpreter(cache_tag: str) -> str:
    """The base interpreter of this virtualenv (site-packages are left out with -S): it must be the runtime's."""
    base = getattr(sys, "_base_executable", sys.executable)
    tag = subprocess.run(
        [base, "-S", "-c", "import sys; print(sys.implementation.cache_tag)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if tag != cache_tag:
        raise SystemExit(f"{base} is {tag}; the functions run {cache_tag}: run this with the project's .venv")
    return base


# -- sizes ----------------------------------------------------------------------------------------------------


def sizes(build: Path, found: list[Path], work: Path) -> None:
    """Zip each artifact as `sam deploy` does, print its sizes, and unpack it with and without bytecode."""
    print("Built size (1 MB = 10^6 bytes; Lambda allows 250 MB unzipped per function with its layers)")
    print(f"  {'artifact':<26}{'files':>7}{'unzipped MB':>13}{'of it .pyc':>12}{'zipped MB':>11}")
    for artifact in found:
        files = sorted(p for p in artifact.rglob("*") if p.is_file())
        unzipped = sum(p.stat().st_size for p in files)
        bytecode = sum(p.stat().st_size for p in files if p.suffix == ".pyc")
        archive = work / f"{artifact.name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                info = zipfile.ZipInfo(str(path.relative_to(artifact)))  # dated 1980-01-01, as sam deploy's
                info.external_attr = 0o755 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
        zipped = archive.stat().st_size
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(work / "pyc" / artifact.name)
            zf.extractall(
                work / "nopyc" / artifact.name,
                members=[m for m in zf.namelist() if "__pycache__/" not in m],
            )
        archive.unlink()
        print(f"  {artifact.name:<26}{len(files):>7}{unzipped / MB:>13.2f}{bytecode / MB:>12.2f}{zipped / MB:>11.2f}")
    print()


# -- environment ----------------------------------------------------------------------------------------------


@contextmanager
def sandbox_environment() -> Iterator[tuple[dict[str, tuple[str, dict[str, str]]], str]]:
    """Each function's name and environment (by logical id) from template.yaml, resolved against a sandbox (a moto
    server holding what the template declares), with what Lambda itself sets; and the moto endpoint."""
    from eksops_dev.sandbox import Sandbox
    from eksops_dev.template import Template

    template = Template(ROOT / "template.yaml")
    workdir = Path(os.environ["MOTO_RECORDER_FILEPATH"]).parent / "sandbox"
    # image_updater exists only with a config repository; a CodeCommit one needs nothing at its start-up
    with Sandbox(template, workdir=workdir, parameters={"ImageConfigRepoUrl": "codecommit://eksops-config"}) as sandbox:
        aws = {k: v for k, v in os.environ.items() if k.startswith(("AWS_ENDPOINT_URL", "AWS_ACCESS", "AWS_SECRET"))}
        environments = {}
        for name, fn in template.functions.items():
            env = {**sandbox.function_env(fn), **aws}
            env.pop("POWERTOOLS_TRACE_DISABLED", None)  # deployed with Tracing: Active
            template_env = fn.environment
            if "EKSOPS_KUBECONFIG" in template_env:  # as deployed, not the sandbox's kubeconfig
                env["EKSOPS_KUBECONFIG"] = str(template_env["EKSOPS_KUBECONFIG"])
            log_format = fn.properties.get("LoggingConfig", {}).get("LogFormat")
            env.update(
                {
                    "AWS_DEFAULT_REGION": env["AWS_REGION"],
                    "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.properties['Runtime']}",
                    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",  # UDP; an init sends nothing
                    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                    "_HANDLER": fn.handler,
                    **({"AWS_LAMBDA_LOG_FORMAT": log_format} if log_format else {}),
                }
            )
            environments[fn.logical_id] = (name, env)
        yield environments, str(sandbox.endpoint)


def prepare(built: Any, work: Path, environments: Mapping[str, tuple[str, dict[str, str]]]) -> list[Handler]:
    """The functions of the build, and the two reference handlers written beside them (compiled in the same way
    in the variant with bytecode)."""
    from eksops_dev.buildcheck import function_layers

    handlers = []
    light = next(env for name, env in environments.values() if name == LIGHT[0])
    for name, (directory, client) in REFERENCES.items():
        for variant in ("pyc", "nopyc"):
            app = work / variant / directory / "app.py"
            app.parent.mkdir(parents=True)
            app.write_text(BARE_HANDLER.format(client=client))
            if variant == "pyc":
                py_compile.compile(str(app), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        # the reference handlers run with the layers every function has (Globals')
        shared = tuple(layer["Ref"] for layer in built.doc.get("Globals", {}).get("Function", {}).get("Layers", []))
        handlers.append(Handler(name, directory, {**light, "POWERTOOLS_SERVICE_NAME": "bare"}, shared))
    built_dirs = {fn.logical_id: fn.code_dir.name for fn in built.functions.values()}
    for logical_id, (name, env) in sorted(environments.items(), key=lambda item: item[1][0]):
        handlers.append(Handler(name, built_dirs[logical_id], env, tuple(function_layers(built, logical_id))))
    return handlers


def command(
    python: str, work: Path, variant: str, handler: Handler, *flags: str, probe: str = "", wrapper: tuple[str, ...] = ()
) -> Any:
    directory = work / variant / handler.directory
    path = [directory, *(work / variant / layer / "python" for layer in handler.layers)]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        **handler.environment,
        "LAMBDA_TASK_ROOT": str(directory),
        "PYTHONPATH": os.pathsep.join(map(str, path)),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(
        [*wrapper, python, "-S", *flags, "-c", probe or PROBE],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


# -- measurements ---------------------------------------------------------------------------------------------


def calls_at_init(python: str, work: Path, handlers: list[Handler], endpoint: str) -> list[str]:
    """Import each handler once with moto's recorder on: the AWS calls its init makes."""

    def moto(action: str) -> bytes:
        request = urllib.request.Request(f"{endpoint}/moto-api/recorder/{action}", method="POST")
        if action == "download-recording":
            request.method = "GET"
        with urllib.request.urlopen(request, timeout=10) as response:  # the local moto server
            return bytes(response.read())

    import boto3

    def recorded() -> list[dict[str, Any]]:
        return [json.loads(line) for line in moto("download-recording").decode().splitlines() if line.strip()]

    failures, made = [], {}
    moto("reset-recording")
    moto("start-recording")
    boto3.client("sts", region_name="us-east-1").get_caller_identity()  # the recorder must see this one
    moto("stop-recording")
    if [_action(call) for call in recorded()] != ["GetCallerIdentity"]:
        return ["moto's recorder did not record a known call: a count of calls at init would mean nothing"]
    for handler in handlers:
        moto("reset-recording")
        moto("start-recording")
        result = command(python, work, "pyc", handler)
        moto("stop-recording")
        if result.returncode:
            failures.append(f"{handler.name} did not import:\n{result.stderr[-3000:]}")
            continue
        made[handler.name] = [_action(call) for call in recorded()]
    print("AWS calls made by each init (moto's request recorder, AWS_ENDPOINT_URL at the sandbox):")
    for name, actions in made.items():
        print(f"  {name:<26}{len(actions):>3}  {', '.join(actions)}")
        if actions:
            failures.append(f"{name}'s init calls AWS ({', '.join(actions)}): a cold start waits on the network")
    print()
    return failures


def _action(call: Mapping[str, Any]) -> str:
    """The API action of a recorded request: the JSON protocols' X-Amz-Target, the query protocols' Action."""
    headers = {k.lower(): v for k, v in call.get("headers", {}).items()}
    if "x-amz-target" in headers:
        return str(headers["x-amz-target"])
    body = call.get("body") or ""
    if call.get("body_encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    action = urllib.parse.parse_qs(str(body)).get("Action")
    return action[0] if action else f"{call.get('method')} {call.get('url')}"


def timings(python: str, work: Path, handlers: list[Handler], repeat: int) -> list[str]:
    """Median CPU time and wall time of each handler's import, with and without bytecode. The ratios use CPU
    time: on a shared machine, wall time also counts the moments another process held the CPU."""
    samples: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for _ in range(repeat):  # interleaved, so a busy moment on the machine hits every handler alike
        for variant in ("pyc", "nopyc"):
            for handler in handlers:
                result = command(python, work, variant, handler)
                if result.returncode:
                    return [f"{handler.name} ({variant}) did not import:\n{result.stderr[-3000:]}"]
                samples[(variant, handler.name)].append(json.loads(result.stdout.strip().splitlines()[-1]))

    def median(variant: str, name: str, field: str = "cpu_ms") -> float:
        return statistics.median(sample[field] for sample in samples[(variant, name)])

    def ratios(variant: str, name: str) -> list[float]:
        """The handler's CPU time over the bare handler's, round by round: a round runs every handler within
        seconds, so a slow stretch of the machine (another process, a frequency change) slows both sides of a
        ratio alike instead of one median more than the other."""
        pairs = zip(samples[(variant, name)], samples[(variant, BARE)], strict=True)
        return sorted(sample["cpu_ms"] / bare["cpu_ms"] for sample, bare in pairs)

    print(
        f"Import and init before the first event: median CPU ms and wall ms; ratio: the median, over the rounds, of"
        f" CPU time over the {BARE}'s in the same round"
    )
    print(
        f"  {'':<34}{'---------- with .pyc ----------':>32}{'--------- without .pyc --------':>33}"
        f"\n  {'handler':<26}{'modules':>8}" + f"{'cpu ms':>12}{'ratio':>8}{'wall ms':>12}" * 2 + f"{'.pyc saves':>12}"
    )
    for handler in handlers:
        row = f"  {handler.name:<26}{samples[('pyc', handler.name)][0]['modules']:>8.0f}"
        for variant in ("pyc", "nopyc"):
            cpu = median(variant, handler.name)
            ratio = statistics.median(ratios(variant, handler.name))
            row += f"{cpu:>12.0f}{ratio:>7.2f}x{median(variant, handler.name, 'wall_ms'):>12.0f}"
        saved = 1 - median("pyc", handler.name) / median("nopyc", handler.name)
        print(row + f"{saved:>12.0%}")
    print()
    for name in LIGHT:
        paired = ratios("pyc", name)
        ratio = statistics.median(paired)
        low, _, high = statistics.quantiles(paired, n=4) if len(paired) > 1 else (ratio, ratio, ratio)
        verdict = "within" if ratio <= TARGET else "OVER"
        print(
            f"  {name}: {ratio:.2f}x the bare handler with .pyc (middle half of the rounds {low:.2f}x to"
            f" {high:.2f}x), {verdict} the {TARGET}x target"
        )
    print()
    return []


# The same interpreter start and runtime imports without the handler: what instructions() subtracts.
BASELINE_PROBE = f"import {RUNTIME_PRELOADED}\n"
COUNTED = (BARE, BARE_CLIENT, BARE_IDEMPOTENT, *LIGHT)
# After the bare handler: eksops.aws imported, then its botocore session, a first client, a second one.
CLIENT_STEPS = (
    "import eksops.aws.clients as c\n",
    "import eksops.aws.clients as c\nc._session()\n",
    "import eksops.aws.clients as c\nc.client('logs')\n",
    "import eksops.aws.clients as c\nc.client('logs')\nc.client('cloudwatch')\n",
)
CLIENT_LABELS = ("+ eksops' botocore session", "+ a first client (logs)", "+ a second client (cloudwatch)")


def instructions(python: str, work: Path, handlers: list[Handler]) -> list[str]:
    """The instructions each import and init executes (valgrind's callgrind, with .pyc), against the bare handler's.

    CPU time on a shared virtual machine scatters widely (here a pure Python loop measured 50 to 95 ms run to run,
    nothing else running), so a ratio of medians moves by about 0.1 between runs of 25. The instruction count of the
    same import is the same in every run (to a millionth, with PYTHONHASHSEED fixed): the work itself, without the
    machine's weather. It leaves out the kernel's share (reading the .pyc files), alike for every handler."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("Instructions: valgrind not found, skipped\n")
        return []
    wrapper = (valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null")
    counted: dict[str, int] = {}
    for handler in (h for h in handlers if h.name in COUNTED):
        totals = []
        for probe in (PROBE, BASELINE_PROBE):
            handler_env = Handler(
                handler.name, handler.directory, {**handler.environment, "PYTHONHASHSEED": "0"}, handler.layers
            )
            result = command(python, work, "pyc", handler_env, probe=probe, wrapper=wrapper)
            found = re.search(r"Collected : (\d+)", result.stderr)
            if result.returncode or found is None:
                return [f"{handler.name} under callgrind:\n{result.stderr[-3000:]}"]
            totals.append(int(found.group(1)))
        counted[handler.name] = totals[0] - totals[1]
    bare = counted[BARE]
    print(f"Instructions executed by import and init (callgrind, with .pyc; millions), and the ratio to the {BARE}'s")
    for name, count in counted.items():
        print(f"  {name:<32}{count / 1e6:>10.0f}{count / bare:>9.2f}x")
    # What eksops' clients cost by themselves, after the bare handler (its imports made): the floor of a function that
    # makes its clients at init.
    steps: list[int] = []
    reference = next(h for h in handlers if h.name == BARE)
    reference = Handler(
        reference.name, reference.directory, {**reference.environment, "PYTHONHASHSEED": "0"}, reference.layers
    )
    for step in CLIENT_STEPS:
        result = command(python, work, "pyc", reference, probe=PROBE + step, wrapper=wrapper)
        found = re.search(r"Collected : (\d+)", result.stderr)
        if result.returncode or found is None:
            return [f"client steps under callgrind:\n{result.stderr[-3000:]}"]
        steps.append(int(found.group(1)))
    for label, before, after in zip(CLIENT_LABELS, steps, steps[1:], strict=False):
        print(f"  {label:<32}{(after - before) / 1e6:>10.0f}{(after - before) / bare:>9.2f}x")
    print()
    for name in LIGHT:
        ratio = counted[name] / bare
        verdict = "within" if ratio <= TARGET else "OVER"
        print(f"  {name}: {ratio:.2f}x the bare handler's instructions, {verdict} the {TARGET}x target")
    print()
    return []


def offenders(python: str, work: Path, handlers: list[Handler], top: int) -> None:
    """`python -X importtime` of each handler (with .pyc): what it imports beyond the bare handler, by package."""
    trees = {}
    for handler in handlers:  # each module's median over three runs
        runs = [_importtime(command(python, work, "pyc", handler, "-X", "importtime").stderr) for _ in "abc"]
        trees[handler.name] = {m: int(statistics.median(run.get(m, 0) for run in runs)) for m in runs[0]}
    bare = set(trees[BARE])
    print(f"Beyond the {BARE}: modules imported and their own import time (-X importtime, .pyc), by package;")
    body = trees[BARE].get("app", 0) / 1000
    print(f"app.py's own body is the module's code outside imports (the {BARE}'s: {body:.0f} ms)")
    for handler in handlers:
        if handler.name == BARE:
            continue
        tree = trees[handler.name]
        groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for module, self_us in tree.items():
            if module not in bare and module != "app":
                groups[_package(module)][0] += 1
                groups[_package(module)][1] += self_us
        extra, extra_ms = sum(n for n, _ in groups.values()), sum(us for _, us in groups.values()) / 1000
        body = tree.get("app", 0) / 1000
        print(f"  {handler.name}: {extra} more modules ({extra_ms:.0f} ms); app.py's own body {body:.0f} ms")
        for package, (count, self_us) in sorted(groups.items(), key=lambda g: -g[1][1])[:top]:
            print(f"      {package:<52}{count:>4} modules{self_us / 1000:>8.1f} ms")
    print()


def _importtime(stderr: str) -> dict[str, int]:
    """module -> its own import time in microseconds, from `-X importtime` lines."""
    found = {}
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            self_us, _, name = line[len("import time:") :].split("|")
            if self_us.strip().isdigit():
                found[name.strip()] = int(self_us)
    return found


def _package(module: str) -> str:
    """Where to group a module: eksops by subpackage, Powertools by utility, other libraries whole."""
    parts = module.split(".")
    if parts[0] == "eksops":
        return ".".join(parts[:2])
    if parts[:2] == ["aws_lambda_powertools", "utilities"]:
        return ".".join(parts[:3])
    return parts[0]


if __name__ == "__main__":
    sys.exit(main())
