"""The sandbox: a moto server on 127.0.0.1 with what template.yaml declares, wired as in AWS.

EventBridge rules are created with the template's own patterns and deliver to one SQS queue per event source;
SNS subscriptions deliver to SQS the same way. A dispatcher (dispatch.py) drains those queues into the
handlers, so which function receives which event is decided by moto's pattern matching, not by a table here.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import logging
import os
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from eksops.aws import clear_client_cache
from eksops_dev.moto_extras import add_aws_managed_policies
from eksops_dev.template import ACCOUNT, PARTITION, REGION, EventSource, FunctionSpec, Resolver, Template

STACK = "eksops-local"
# AWS managed policies eksops attaches. moto can load all ~1,300 of them, but then answers every request about
# three times slower; these are added to its IAM backend instead.
AWS_MANAGED_POLICIES = ("CloudWatchAgentServerPolicy", "AWSXRayDaemonWriteAccess")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")


class Sandbox:
    """Start with ``with Sandbox(template) as sb:``; AWS calls in the block go to the moto server."""

    def __init__(
        self,
        template: Template,
        *,
        parameters: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.template = template
        self.parameters = {**template.parameter_defaults(), **(parameters or {})}
        # EKSOPS_SANDBOX_DIR: another place for the sandbox's files (kubeconfig, logs), e.g. one per test process
        self.workdir = workdir or Path(os.environ.get("EKSOPS_SANDBOX_DIR") or template.root / ".sandbox")
        self.endpoint = endpoint  # an already running moto server (tests share one); else one is started
        self._server: Any = None
        self._logs_shim: Any = None
        self.eks_shim: Any = None
        self.codepipeline_shim: Any = None
        self._kube = contextlib.ExitStack()
        self.kube_clusters: dict[str, tuple[str, Any]] = {}  # cluster name -> (emulator URL, emulator)
        self.kubeconfig_path = self.workdir / "kubeconfig"
        self._clients: dict[str, Any] = {}
        self._saved_env: dict[str, str | None] = {}
        self.refs: dict[str, Any] = {}
        self.attrs: dict[tuple[str, str], Any] = {}
        self.queue_urls: dict[str, str] = {}  # queue ARN -> URL
        self.inboxes: dict[str, tuple[str, str]] = {}  # queue URL -> (function name, event source logical id)
        self.batch_inboxes: dict[str, tuple[str, EventSource]] = {}  # queue URL -> (function, its SQS event source)
        self.schedules: dict[str, list[tuple[str, str]]] = {}  # function -> [(logical id, expression)]
        self.bridges: dict[str, str] = {}  # queue URL -> SNS topic ARN (moto's EventBridge has no SNS targets)
        self.notes: list[str] = []
        self.created: list[str] = []
        self._read_parameters: dict[str, Any] = {}  # the parameters provisioning looked up, and their values
        self.resolver = Resolver(template, self.parameters, ref=self._ref, getatt=self._getatt, stack_name=STACK)

    # -- lifecycle --------------------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.endpoint is None:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._server.start()
            host, port = self._server.get_host_and_port()
            self.endpoint = f"http://{host}:{port}"
            # moto keeps its state per process, not per server: start from an empty account.
            reset = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310 - loopback
            urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - the loopback server just started
        from eksops_dev.shims import CodePipelineShim, EksLifecycleShim, LogsShim

        self._logs_shim = LogsShim(self.endpoint)
        self._logs_shim.start()
        self.eks_shim = EksLifecycleShim(self.endpoint)
        self.eks_shim.start()
        self.codepipeline_shim = CodePipelineShim(self.endpoint)
        self.codepipeline_shim.start()
        env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            # CloudWatch Logs goes through a shim that adds the saved-query API moto lacks (shims.py)
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": self._logs_shim.url,
            # EKS goes through a shim that reports new clusters as CREATING until the sandbox activates them
            "AWS_ENDPOINT_URL_EKS": self.eks_shim.url,
            # CodePipeline through a shim that answers ListActionExecutions, which moto lacks (shims.py)
            "AWS_ENDPOINT_URL_CODEPIPELINE": self.codepipeline_shim.url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            **CREDENTIALS,
        }
        for key in (*env, *_CLEARED):
            self._saved_env[key] = os.environ.get(key)
        for key in _CLEARED:
            os.environ.pop(key, None)
        os.environ.update(env)
        clear_client_cache()
        self.workdir.mkdir(parents=True, exist_ok=True)
        fresh = _moto_is_empty()
        self._write_kubeconfig()
        if not (fresh and self._restore()):
            add_aws_managed_policies(AWS_MANAGED_POLICIES)
            self._provision()
            if fresh:
                self._save()

    def stop(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        clear_client_cache()
        if self._logs_shim is not None:
            self._logs_shim.stop()
            self._logs_shim = None
        if self.eks_shim is not None:
            self.eks_shim.stop()
            self.eks_shim = None
        if self.codepipeline_shim is not None:
            self.codepipeline_shim.stop()
            self.codepipeline_shim = None
        self._kube.close()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def note_summary(self) -> list[str]:
        """:attr:`notes` in a few lines, by kind (what the parameters left out, what moto cannot do)."""
        kinds = {
            "skipped ": "left out by the parameters",
            "not emulated: ": "not emulated here",
            "not enforced: ": "not enforced here (moto does not evaluate resource policies)",
        }
        grouped: dict[str, list[str]] = {kind: [] for kind in kinds}
        lines = []
        for note in self.notes:
            kind = next((k for k in kinds if note.startswith(k)), None)
            if kind is None:
                lines.append(note)
            else:  # the logical ID: "skipped X: condition ...", "not emulated: X (type)"
                grouped[kind].append(note[len(kind) :].split(":", 1)[0].split(" (", 1)[0])
        return lines + [f"{kinds[kind]}: {', '.join(ids)}" for kind, ids in grouped.items() if ids]

    def client(self, service: str) -> Any:
        """A plain boto3 client on the sandbox (for seeding and checking), one per service."""
        if service not in self._clients:
            shims = {"logs": self._logs_shim, "eks": self.eks_shim, "codepipeline": self.codepipeline_shim}
            endpoint = shims[service].url if shims.get(service) else self.endpoint
            self._clients[service] = _client(service, str(endpoint))
        return self._clients[service]

    def set_parameters(self, **values: str) -> None:
        """Change parameters after start (e.g. a secret ARN that exists only once moto runs); functions not
        yet loaded see the new values."""
        self.parameters.update(values)
        self.resolver.parameters.update(values)

    # -- functions --------------------------------------------------------------------------------------------

    def function(self, name: str) -> FunctionSpec:
        try:
            return self.template.functions[name]
        except KeyError:
            raise KeyError(f"no function {name!r} in template.yaml; known: {sorted(self.template.functions)}") from None

    def function_env(self, fn: FunctionSpec) -> dict[str, str]:
        """The function's environment as Lambda would set it: template variables plus the runtime's own."""
        env = {k: _env_str(v) for k, v in self.resolver.resolve(fn.environment).items()}
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": self.function_name(fn),
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory),
                "AWS_REGION": REGION,
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            }
        )
        if "EKSOPS_KUBECONFIG" in env:  # clusters' Kubernetes APIs are emulators, reached through a kubeconfig
            env["EKSOPS_KUBECONFIG"] = str(self.kubeconfig_path)
        return env

    def function_name(self, fn: FunctionSpec) -> str:
        return f"{STACK}-{fn.name.replace('_', '-')}"

    def dead_letter_queue_url(self, fn: FunctionSpec) -> str | None:
        config = self.resolver.resolve(fn.properties.get("EventInvokeConfig", {}))
        arn = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        return self.queue_urls.get(arn) if arn else None

    def max_retries(self, fn: FunctionSpec) -> int:
        return int(fn.properties.get("EventInvokeConfig", {}).get("MaximumRetryAttempts", 2))

    # -- Kubernetes -------------------------------------------------------------------------------------------

    def add_kube_cluster(self, name: str) -> Any:
        """Start a Kubernetes API emulator for cluster ``name`` and add its context to the kubeconfig."""
        from eksops_dev.kube import serve

        url, emulator = self._kube.enter_context(serve())
        self.kube_clusters[name] = (url, emulator)
        self._write_kubeconfig()
        return emulator

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": n, "cluster": {"server": url}} for n, (url, _) in self.kube_clusters.items()],
            "users": [{"name": "sandbox", "user": {"token": "sandbox"}}],
            "contexts": [{"name": n, "context": {"cluster": n, "user": "sandbox"}} for n in self.kube_clusters],
            "current-context": next(iter(self.kube_clusters), ""),
        }
        self.kubeconfig_path.write_text(json.dumps(config, indent=1))

    # -- provisioning -----------------------------------------------------------------------------------------

    # -- provisioning snapshots ------------------------------------------------------------------------------
    # Provisioning makes ~110 requests (about 1.2 s). Sandboxes started one after another in a process (the tests,
    # `eksops invoke` in a test) on an empty moto would make the same ones (the sandbox's moto is always in this
    # process: moto_extras writes into its backends): the first saves moto's
    # state and the sandbox's own, later ones with the same template and the same values of the parameters the
    # provisioning read get a copy of it instead. EKSOPS_SANDBOX_SNAPSHOTS=0 provisions every time.

    @functools.cached_property
    def _snapshot_key(self) -> str:
        return _template_key(self.template)

    def _restore(self) -> bool:
        if os.environ.get("EKSOPS_SANDBOX_SNAPSHOTS", "1") == "0":
            return False
        for snap in _SNAPSHOTS.get(self._snapshot_key, []):
            if all(self.parameters.get(name) == value for name, value in snap.parameters.items()):
                snap.restore_moto()
                own = _rebase(copy.deepcopy(snap.sandbox), snap.endpoint, str(self.endpoint))
                own.update(_rebase(snap.sandbox_shared, snap.endpoint, str(self.endpoint)))
                for name, value in own.items():
                    setattr(self, name, value)
                return True
        return False

    def _save(self) -> None:
        if os.environ.get("EKSOPS_SANDBOX_SNAPSHOTS", "1") == "0":
            return
        snaps = _SNAPSHOTS.setdefault(self._snapshot_key, [])
        snaps.insert(0, _Snapshot(self, self._read_parameters))
        del snaps[_SNAPSHOTS_PER_TEMPLATE:]

    def _provision(self) -> None:
        recording = _RecordingDict(self.resolver.parameters)
        self.resolver.parameters = recording
        try:
            self._provision_resources()
        finally:
            self.resolver.parameters = dict(recording)
        self._read_parameters = {name: recording[name] for name in recording.read}

    def _provision_resources(self) -> None:
        t = self.template
        for logical_id, resource in t.resources.items():
            if not self.resolver.condition_holds(resource):
                self.notes.append(f"skipped {logical_id}: condition {resource['Condition']} is false")
        # Dependency order: what a later kind refers to comes first (roles name log groups, the topics the key).
        order = (
            "AWS::KMS::Key",
            "AWS::SNS::Topic",
            "AWS::SQS::Queue",
            "AWS::DynamoDB::Table",
            "AWS::Logs::LogGroup",
            "AWS::IAM::ManagedPolicy",
            "AWS::IAM::Role",
            "AWS::Serverless::LayerVersion",
            "AWS::Serverless::Function",
            "AWS::SNS::Subscription",
            "AWS::SQS::QueuePolicy",
            "AWS::SNS::TopicPolicy",
            "AWS::Events::Rule",
            "AWS::CloudWatch::Alarm",
        )
        handled = set(order)
        for kind in order:
            for logical_id, resource in t.of_type(kind).items():
                if self.resolver.condition_holds(resource):
                    getattr(self, "_create_" + kind.split("::")[-1].lower())(logical_id, resource)
        for logical_id, resource in t.resources.items():
            if resource["Type"] not in handled and self.resolver.condition_holds(resource):  # skipped ones are noted
                self.notes.append(f"not emulated: {logical_id} ({resource['Type']})")

    def _props(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.resolver.resolve(resource.get("Properties", {})))

    def _create_key(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        props = self._props(resource)
        kms = self.client("kms")
        key = kms.create_key(Description=props.get("Description", ""), Policy=json.dumps(props["KeyPolicy"]))
        key_id = key["KeyMetadata"]["KeyId"]
        if props.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=key_id)
        self.refs[logical_id] = key_id
        self.attrs[(logical_id, "Arn")] = key["KeyMetadata"]["Arn"]
        self.attrs[(logical_id, "KeyId")] = key_id
        self.created.append(f"key {key_id} (moto does not encrypt with it nor evaluate its policy)")

    def _create_topic(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        props = self._props(resource)
        name = props.get("TopicName") or f"{STACK}-{logical_id}"
        attributes = {"KmsMasterKeyId": props["KmsMasterKeyId"]} if props.get("KmsMasterKeyId") else {}
        arn = self.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        self.refs[logical_id] = arn
        self.attrs[(logical_id, "TopicName")] = name
        self.attrs[(logical_id, "TopicArn")] = arn
        self.created.append(f"topic {name}")

    def _create_queue(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        props = self._props(resource)
        name = props.get("QueueName") or f"{STACK}-{logical_id}"
        self._queue(logical_id, name)
        self.created.append(f"queue {name}")

    def _queue(self, logical_id: str | None, name: str) -> tuple[str, str]:
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.queue_urls[arn] = url
        if logical_id:
            self.refs[logical_id] = url
            self.attrs[(logical_id, "Arn")] = arn
            self.attrs[(logical_id, "QueueName")] = name
            self.attrs[(logical_id, "QueueUrl")] = url
        return url, arn

    def _create_table(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        props = self._props(resource)
        name = props.get("TableName") or f"{STACK}-{logical_id}"
        ddb = self.client("dynamodb")
        ddb.create_table(
            TableName=name,
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode="PAY_PER_REQUEST",
        )
        self.refs[logical_id] = name
        self.attrs[(logical_id, "Arn")] = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        self.created.append(f"table {name}")

    def _create_managedpolicy(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        props = self._props(resource)
        name = props.get("ManagedPolicyName") or f"{STACK}-{logical_id}"
        arn = self.client("iam").create_policy(PolicyName=name, PolicyDocument=json.dumps(props["PolicyDocument"]))
        self.refs[logical_id] = arn["Policy"]["Arn"]
        self.created.append(f"policy {name}")

    def _create_role(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        """The role with its policies, in moto's IAM (which checks the documents' grammar, not what they allow)."""
        props = self._props(resource)
        name = props.get("RoleName") or f"{STACK}-{logical_id}"[:64]
        iam = self.client("iam")
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))
        for arn in props.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
            )
        self.refs[logical_id] = name
        self.attrs[(logical_id, "Arn")] = role["Role"]["Arn"]
        self.created.append(f"role {name}")

    def _create_layerversion(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        # Handlers import the package from the development install; nothing to upload.
        self.refs[logical_id] = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:layer:{STACK}-{logical_id}:1"

    def _create_loggroup(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        props = self._props(resource)
        name = props["LogGroupName"]
        logs = self.client("logs")
        logs.create_log_group(logGroupName=name, **({"kmsKeyId": props["KmsKeyId"]} if props.get("KmsKeyId") else {}))
        if props.get("RetentionInDays"):
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        self.refs[logical_id] = name
        self.attrs[(logical_id, "Arn")] = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"
        self.created.append(f"log group {name}")

    def _create_function(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        fn = next(f for f in self.template.functions.values() if f.logical_id == logical_id)
        name = self.function_name(fn)
        self.refs[logical_id] = name
        self.attrs[(logical_id, "Arn")] = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}"
        events, sns = self.client("events"), self.client("sns")
        for source in fn.events:
            rule = f"{STACK}-{fn.name}-{source.logical_id}"[:64]
            # SAM names the rule it makes from an EventBridgeRule or Schedule event <function><event>; queue and
            # topic policies refer to it by that name. (The sandbox fires schedules itself: no rule in moto.)
            self.attrs[(logical_id + source.logical_id, "Arn")] = (
                f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{rule}"
            )
            if source.kind == "schedule":
                self.schedules.setdefault(fn.name, []).append(
                    (source.logical_id, str(self.resolver.resolve(source.schedule)))
                )
                continue
            if source.kind == "sqs":  # an event source mapping: the dispatcher polls the template's own queue
                url = self.queue_urls[self.resolver.resolve(source.queue)]
                self.batch_inboxes[url] = (fn.name, source)
                self.created.append(f"event source mapping {url.rsplit('/', 1)[-1]} -> {fn.name}")
                continue
            url, arn = self._queue(None, f"{STACK}-{fn.name}-{source.logical_id}"[:80])
            self.inboxes[url] = (fn.name, source.logical_id)
            if source.kind == "eventbridge":
                events.put_rule(Name=rule, EventPattern=json.dumps(self.resolver.resolve(source.pattern)))
                events.put_targets(Rule=rule, Targets=[{"Id": "inbox", "Arn": arn}])
                self.created.append(f"rule {rule} -> {fn.name}")
            else:
                topic_arn = self.resolver.resolve(source.topic)
                sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
                self.created.append(f"subscription {topic_arn.rsplit(':', 1)[-1]} -> {fn.name}")
        self.created.append(f"function {name} (handler {fn.code_dir.name}/{fn.handler})")

    def _create_subscription(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        props = self._props(resource)
        if props.get("Protocol") == "sqs":  # a queue of the template (email and others are not emulated)
            attributes = {
                key: json.dumps(props[key]) if isinstance(props[key], dict) else _env_str(props[key])
                for key in ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope")
                if key in props
            }
            arn = self.client("sns").subscribe(
                TopicArn=props["TopicArn"],
                Protocol="sqs",
                Endpoint=props["Endpoint"],
                Attributes=attributes,
                ReturnSubscriptionArn=True,
            )["SubscriptionArn"]
            self.refs[logical_id] = arn
            self.created.append(f"subscription {str(props['TopicArn']).rsplit(':', 1)[-1]} -> {logical_id}")
            return
        self.notes.append(
            f"not emulated: {logical_id} ({props.get('Protocol')} subscription to "
            f"{str(props.get('TopicArn')).rsplit(':', 1)[-1]})"
        )

    def _create_queuepolicy(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        self.notes.append(f"not enforced: {logical_id} (moto does not evaluate resource policies)")

    _create_topicpolicy = _create_queuepolicy

    def _create_rule(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        props = self._props(resource)
        events = self.client("events")
        name = f"{STACK}-{logical_id}"[:64]
        events.put_rule(Name=name, EventPattern=json.dumps(props["EventPattern"]))
        targets = []
        for target in props["Targets"]:
            arn = target["Arn"]
            if ":sns:" in arn:  # moto delivers rules to SQS but not to SNS: bridge through a queue
                url, arn = self._queue(None, f"{STACK}-{logical_id}-{target['Id']}-to-sns"[:80])
                self.bridges[url] = target["Arn"]
            targets.append({"Id": target["Id"], "Arn": arn})
        events.put_targets(Rule=name, Targets=targets)
        self.refs[logical_id] = name
        self.attrs[(logical_id, "Arn")] = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{name}"
        self.created.append(f"rule {name}")

    def pump_bridges(self) -> int:
        """Forward what rules delivered for SNS targets to their topics, as EventBridge would. Returns count."""
        sqs, sns, moved = self.client("sqs"), self.client("sns"), 0
        for url, topic_arn in self.bridges.items():
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                for message in messages:
                    sns.publish(TopicArn=topic_arn, Message=message["Body"])
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    moved += 1
        return moved

    def _create_alarm(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        props = self._props(resource)
        props.setdefault("AlarmName", f"{STACK}-{logical_id}")
        self.client("cloudwatch").put_metric_alarm(**props)
        self.refs[logical_id] = props["AlarmName"]
        self.created.append(f"alarm {props['AlarmName']}")

    # -- references -------------------------------------------------------------------------------------------

    def _ref(self, name: str) -> Any:
        if name not in self.refs:
            raise KeyError(f"!Ref {name}: not created in the sandbox (yet)")
        return self.refs[name]

    def _getatt(self, name: str, attribute: str) -> Any:
        if (name, attribute) not in self.attrs:
            raise KeyError(f"!GetAtt {name}.{attribute}: not available in the sandbox")
        return self.attrs[(name, attribute)]


# What a sandbox's provisioning sets on it, restored from a snapshot (batch_inboxes holds template objects: shared)
_SANDBOX_STATE = ("refs", "attrs", "queue_urls", "inboxes", "schedules", "bridges", "notes", "created")
_SNAPSHOTS_PER_TEMPLATE = 8


class _RecordingDict(dict):  # type: ignore[type-arg]
    """The resolver's parameters, noting which ones provisioning looks up."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def __contains__(self, key: object) -> bool:
        found = super().__contains__(key)
        if found:
            self.read.add(str(key))
        return found

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


class _Snapshot:
    """moto's backends and a sandbox's state just after provisioning, deep-copied (locks stay shared)."""

    def __init__(self, sandbox: Sandbox, parameters: Mapping[str, Any]) -> None:
        from moto.core.base_backend import BackendDict

        self.parameters = dict(parameters)
        self.endpoint = str(sandbox.endpoint)
        self._dicts: list[tuple[Any, str, str]] = []
        backends = []
        for backend_dict in list(BackendDict._instances):  # type: ignore[misc]  # moto's only list of its state
            for account, region, backend in backend_dict.iter_backends():
                self._dicts.append((backend_dict, account, region))
                backends.append(backend)
        self._shared = _uncopyable(backends)
        self._backends = copy.deepcopy(backends, dict(self._shared))
        self.sandbox = copy.deepcopy({name: getattr(sandbox, name) for name in _SANDBOX_STATE})
        self.sandbox_shared = {"batch_inboxes": dict(sandbox.batch_inboxes)}

    def restore_moto(self) -> None:
        backends = copy.deepcopy(self._backends, dict(self._shared))
        for (backend_dict, account, region), backend in zip(self._dicts, backends, strict=True):
            dict.__setitem__(backend_dict[account], region, backend)  # backend_dict[account] registers it for reset


_SNAPSHOTS: dict[str, list[_Snapshot]] = {}


def _template_key(template: Template) -> str:
    return hashlib.sha256(json.dumps(template.doc, sort_keys=True, default=str).encode()).hexdigest()


def _moto_is_empty() -> bool:
    """Whether this process's moto holds nothing (just reset): only then is a snapshot taken or restored."""
    from moto.core.base_backend import BackendDict

    return not BackendDict._instances  # type: ignore[misc]


def _uncopyable(root: Any) -> dict[int, Any]:
    """Objects in moto's backends a deep copy must share, not copy: locks and conditions (SQS queues' long polls),
    and moto's registries of backends. As a deepcopy memo (id -> the object itself)."""
    import gc
    import threading
    import types

    from moto.core.base_backend import AccountSpecificBackend, BackendDict

    kinds = (type(threading.Lock()), type(threading.RLock()), threading.Condition, threading.Event)
    registries = (BackendDict, AccountSpecificBackend)
    found: dict[int, Any] = {}
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, kinds + registries + (types.ModuleType,)):
            found[id(obj)] = obj
        elif not isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):  # copied as themselves
            stack.extend(gc.get_referents(obj))
    return found


def _rebase(value: Any, old: str, new: str) -> Any:
    """``value`` with URLs on moto's old endpoint moved to the new one (queue URLs carry the server's port)."""
    if old == new:
        return value
    if isinstance(value, str):
        return new + value[len(old) :] if value.startswith(old) else value
    if isinstance(value, dict):
        return {_rebase(k, old, new): _rebase(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase(v, old, new) for v in value]
    if isinstance(value, tuple):
        return tuple(_rebase(v, old, new) for v in value)
    return value


@functools.lru_cache(maxsize=256)
def _client(service: str, endpoint: str) -> Any:
    """One boto3 client per service and endpoint in the process (making one costs about 60 ms: sandboxes that
    tests start one after another on the same moto server share them)."""
    return _session().client(service, endpoint_url=endpoint)  # type: ignore[call-overload]


@functools.lru_cache(maxsize=1)
def _session() -> boto3.session.Session:
    return boto3.session.Session(
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
