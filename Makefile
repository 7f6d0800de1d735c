# eksops: the two commands are `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
# The tests, the sandbox and `sam build` need a region; `make deploy` must not impose this one on a profile's region.
CALLER_REGION := $(origin AWS_DEFAULT_REGION)
export AWS_DEFAULT_REGION ?= $(REGION)

.PHONY: help demo test unit integration e2e lint build deploy invoke bench clean
.DEFAULT_GOAL := help

# Lambda runs python3.11: the venv must too. A venv made by another Python is refused with what to do (it would
# otherwise fail later in ways that do not say why).
CHECK_311 := import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)

# Packages go in with uv (pinned below), which installs the ~100 of .[dev] in about 6 s where pip takes 75-85 s; if
# uv itself cannot be had or fails, pip does the same install.
UV := uv==0.13.9
define install
	@$(1)/bin/python -m pip install --quiet $(UV) && $(1)/bin/uv pip install --quiet --python $(1)/bin/python $(2) \
		|| { echo "eksops: uv did not install into $(1); installing with pip (slower)" >&2; \
		     $(1)/bin/python -m pip install --quiet --upgrade pip && $(1)/bin/python -m pip install --quiet $(2); }
endef

$(STAMP): pyproject.toml layers/eksops/requirements.txt
	@if test -x $(BIN)/python && ! $(BIN)/python -c '$(CHECK_311)'; then \
		echo "eksops: $(VENV) was made with $$($(BIN)/python -V 2>&1), not Python 3.11: run 'make clean', then make again (PYTHON=<a python3.11>)" >&2; exit 1; fi
	@if ! test -x $(BIN)/python && ! $(PYTHON) -c '$(CHECK_311)' 2>/dev/null; then \
		echo "eksops: $(PYTHON) is not Python 3.11 (or is missing); install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(call install,$(VENV),-e ".[dev]")
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/eksops demo

# The tests run on every core (pytest-xdist); a module's tests stay on one worker, which shares its servers.
# Before them, lint and build run side by side (each is mostly one process), as do the two venvs' installs.
test:
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint build
	$(BIN)/python -m pytest -n auto --dist loadfile

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

# Against the moto server, the Kubernetes emulator, local Git and Slack servers (no AWS account), on every core.
integration: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile tests/integration

# The demo as a test: every step did what it should.
e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

help:
	@echo "make demo         run eksops end to end on the local sandbox (no AWS account, no Docker)"
	@echo "make test         lint, sam validate and build, then every test (what CI runs)"
	@echo "make unit | integration | e2e   one layer of the tests"
	@echo "make lint         ruff, mypy, cfn-lint and checkov (zero findings)"
	@echo "make build        sam build, botocore data trimmed, bytecode compiled, build checked"
	@echo "make deploy [ENV=prod] [REGION=eu-west-1]   build, then sam deploy of that samconfig environment (--guided the first time)"
	@echo "make invoke FN=<function> EVENT=<file> [ARGS=...]   one handler on an event, on the sandbox"
	@echo "make bench        the retention sweep benchmark (more in benchmarks/)"
	@echo "make clean        remove the venvs, build output and sandbox state"

# checkov pins boto3, networkx and packaging older than aws-sam-cli and moto need: it gets a venv of its own,
# installed from requirements-lint.txt (checkov and everything it pulls in, pinned).
LINT_VENV  := .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed

$(LINT_STAMP): requirements-lint.txt
	@test -x $(LINT_VENV)/bin/python || $(PYTHON) -m venv $(LINT_VENV)
	$(call install,$(LINT_VENV),-r requirements-lint.txt)
	@touch $(LINT_STAMP)

# The IaC scanners pass with zero findings; each suppression sits in template.yaml next to its reason.
# cfn-lint (aws-sam-cli's) also checks that stateful resources say what happens to them on deletion (I3011);
# checkov runs offline (--skip-download) and fails on any finding.
lint: $(STAMP) $(LINT_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint --include-checks I3011 -- template.yaml
	$(LINT_VENV)/bin/checkov --file template.yaml --framework cloudformation --quiet --compact --skip-download

# sam build writes no .pyc and Lambda cannot save any (read-only /var/task and /opt): --compile adds bytecode for
# the runtime's Python before the check. --trim-botocore first keeps only the botocore data of the AWS services eksops
# declares (eksops.aws.clients.SERVICES), their models cut to the operations it calls (OPERATIONS), and checks offline
# that the models are the full ones cut alike and that their endpoints resolve as with the full data. Deploy with `make deploy` (or `sam deploy` after `make build`), never
# after a bare `sam build`, which would ship no bytecode.
build: $(STAMP)
	$(BIN)/sam validate --lint --region $(REGION)
	$(BIN)/sam build --parallel --region $(REGION)
	$(BIN)/python -m eksops_dev.buildcheck --trim-botocore --compile .aws-sam/build

# make deploy [ENV=prod] [REGION=eu-west-1]: the samconfig.toml environment ENV (default: default); its first deploy
# asks its questions and writes them there, later ones reuse them. REGION, when given, overrides the environment's
# region for the build and the deploy alike (docs/deploy.md: several accounts and regions).
ENV ?= default
STACK_NAME ?= eksops
DEPLOY_REGION := $(if $(filter command line environment,$(origin REGION)),--region $(REGION))
# Without REGION, the deploy's region is samconfig's, else the caller's AWS_DEFAULT_REGION or profile, never our default.
SAM_DEPLOY := $(if $(filter undefined,$(CALLER_REGION)),env -u AWS_DEFAULT_REGION) $(BIN)/sam deploy
deploy: build
	@if grep -q '^\[$(ENV)\.deploy' samconfig.toml 2>/dev/null && grep -A20 '^\[$(ENV)\.deploy' samconfig.toml | grep -q 'stack_name'; then \
		$(SAM_DEPLOY) --config-env $(ENV) $(DEPLOY_REGION); \
	else $(SAM_DEPLOY) --guided --config-env $(ENV) --stack-name $(STACK_NAME) $(DEPLOY_REGION); fi

# make invoke FN=log_retention EVENT=events/log_retention/create_log_group.json [ARGS="--aws --dry-run"]
invoke: $(STAMP)
	@if test -z "$(FN)" || test -z "$(EVENT)"; then \
		echo "eksops: make invoke needs FN and EVENT, e.g. make invoke FN=log_retention EVENT=events/log_retention/create_log_group.json" >&2; exit 2; fi
	$(BIN)/eksops invoke $(FN) --event $(EVENT) $(ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/retention_sweep.py

clean:
	rm -rf $(VENV) $(LINT_VENV) .aws-sam .sandbox .pytest_cache .mypy_cache .ruff_cache
