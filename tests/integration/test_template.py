"""Walks template.yaml: every function is deployable, observable and fails somewhere visible."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest

from eksops import config
from eksops.logs.retention_config import VALID_DAYS
from eksops_dev.template import FunctionSpec, Resolver, Template

ROOT = Path(__file__).resolve().parents[2]
READ_ONLY = re.compile(r"^[a-z0-9-]+:(Describe|List|Get|BatchGet)[A-Za-z]*$")
DESIGN_FUNCTIONS = {
    "cluster_bootstrap",
    "log_retention",
    "error_alarms",
    "node_scaler",
    "image_updater",
    "compliance_sweep",
    "notifier",
}


def functions(template: Template) -> list[FunctionSpec]:
    return list(template.functions.values())


def test_function_names_are_the_design_contract(template: Template) -> None:
    assert template.functions, "no functions in template.yaml"
    assert set(template.functions) <= DESIGN_FUNCTIONS
    assert {p.name for p in (ROOT / "functions").iterdir() if p.is_dir()} == set(template.functions)


def test_every_function_has_a_handler_module(template: Template) -> None:
    for fn in functions(template):
        module, attr = fn.handler.rsplit(".", 1)
        path = fn.code_dir / f"{module}.py"
        assert path.is_file(), f"{fn.name}: {path} missing"
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert attr in defined, f"{fn.name}: {path} defines no {attr}()"


def test_every_function_has_its_own_log_group_with_retention(template: Template) -> None:
    log_groups = template.of_type("AWS::Logs::LogGroup")
    used = set()
    for fn in functions(template):
        ref = fn.properties.get("LoggingConfig", {}).get("LogGroup", {})
        assert isinstance(ref, dict) and ref.get("Ref") in log_groups, f"{fn.name}: LoggingConfig.LogGroup"
        assert ref["Ref"] not in used, f"{fn.name} shares a log group"
        used.add(ref["Ref"])
        assert log_groups[ref["Ref"]]["Properties"].get("RetentionInDays"), f"{fn.name}: no retention"
        assert fn.properties["LoggingConfig"].get("LogFormat") == "JSON"


def test_every_function_has_a_failure_destination(template: Template) -> None:
    queues = template.of_type("AWS::SQS::Queue")
    for fn in functions(template):
        destination = fn.properties["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        assert destination["Type"] == "SQS"
        assert destination["Destination"]["Fn::GetAtt"][0] in queues
        for source in fn.properties.get("Events", {}).values():
            if source["Type"] in {"EventBridgeRule", "Schedule"}:
                dead_letter = source["Properties"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
                assert dead_letter in queues, f"{fn.name}: rule target without a dead-letter queue"


def test_every_function_has_an_error_alarm(template: Template) -> None:
    alarms = [a["Properties"] for a in template.of_type("AWS::CloudWatch::Alarm").values()]
    for fn in functions(template):
        mine = [
            a
            for a in alarms
            if a["Namespace"] == "AWS/Lambda"
            and a["MetricName"] == "Errors"
            and {"Name": "FunctionName", "Value": {"Ref": fn.logical_id}} in a["Dimensions"]
        ]
        assert mine, f"{fn.name}: no alarm on its Errors metric"
        assert all(a["AlarmActions"] == [{"Ref": "AlertsTopic"}] for a in mine)


# Mutating actions for which IAM has no resource type: any narrower Resource would deny them. PutMetricData is
# scoped by its namespace condition instead (test_put_metric_data_only_into_eksops_namespace).
NO_RESOURCE_SCOPE = {"logs:PutQueryDefinition", "logs:DeleteQueryDefinition", "cloudwatch:PutMetricData"}
# Functions that keep idempotency records (SNS deliveries and events come at least once).
IDEMPOTENT_FUNCTIONS = {"notifier", "node_scaler", "image_updater"}
# What a function's role may do with logs for its own logging; anything else on logs is the function's job.
LOGGING_ACTIONS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
STACK = "eksops-test"
XRAY_POLICY = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"


def resolver(template: Template, **parameters: str) -> Resolver:
    """Resolves intrinsics with the parameters' defaults (or ``parameters``); resources stay symbolic."""
    return Resolver(
        template,
        {**template.parameter_defaults(), **parameters},
        ref=lambda name: {"Ref": name},
        getatt=lambda name, attribute: {"Fn::GetAtt": [name, attribute]},
        stack_name=STACK,
    )


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_id(fn: FunctionSpec) -> str:
    role = fn.properties.get("Role")
    assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{fn.name}: no Role of its own (SAM would make one)"
    return str(role["Fn::GetAtt"][0])


def role_statements(template: Template, fn: FunctionSpec, **parameters: str) -> list[dict[str, Any]]:
    """Every statement the function's role holds: inline policies and the template's managed policies it attaches."""
    props = resolver(template, **parameters).resolve(template.resources[role_id(fn)]["Properties"])
    found = [st for policy in props.get("Policies", []) for st in policy["PolicyDocument"]["Statement"]]
    for arn in props.get("ManagedPolicyArns", []):
        if isinstance(arn, dict):  # a Ref to a managed policy of this template
            policy = resolver(template, **parameters).resolve(template.resources[arn["Ref"]]["Properties"])
            found += policy["PolicyDocument"]["Statement"]
    return found


def all_remediations() -> str:
    """ComplianceRemediate listing every rule that can remediate: each one's write permissions are conditional."""
    from eksops.compliance.model import rules

    return json.dumps(sorted(rule_id for rule_id, rule in rules().items() if rule.remediable))


def all_modes(template: Template, fn: FunctionSpec) -> list[dict[str, Any]]:
    """The role's statements under every value of the parameters its policies depend on."""
    return (
        role_statements(template, fn)
        + role_statements(template, fn, BootstrapObservability="addon")
        + role_statements(template, fn, ComplianceRemediate=all_remediations(), ComplianceSecurityHub="true")
    )


def test_every_function_has_its_own_role_without_sams_basic_execution_role(template: Template) -> None:
    roles = template.of_type("AWS::IAM::Role")
    used = set()
    for fn in functions(template):
        role = role_id(fn)
        assert role in roles and role not in used, f"{fn.name}: role {role} missing or shared"
        used.add(role)
        assert "Policies" not in fn.properties, f"{fn.name}: SAM ignores Policies once the function names a Role"
        props = resolver(template).resolve(roles[role]["Properties"])
        trust = props["AssumeRolePolicyDocument"]["Statement"]
        assert trust == [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
        aws_managed = [arn for arn in props.get("ManagedPolicyArns", []) if isinstance(arn, str)]
        # Tracing: Active needs the X-Ray daemon's write access; nothing else of AWS's, above all not
        # AWSLambdaBasicExecutionRole (CreateLogGroup, CreateLogStream and PutLogEvents on every log group).
        assert aws_managed == [XRAY_POLICY], f"{fn.name}: {aws_managed}"


def test_functions_log_only_to_their_own_log_group(template: Template) -> None:
    for fn in functions(template):
        own = {"Fn::GetAtt": [fn.properties["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]}
        writes = set()
        for statement in all_modes(template, fn):
            logging = LOGGING_ACTIONS & set(as_list(statement["Action"]))
            if logging:
                assert as_list(statement["Resource"]) == [own], f"{fn.name}: {sorted(logging)} beyond its log group"
                writes |= logging
        assert writes == {"logs:CreateLogStream", "logs:PutLogEvents"}, f"{fn.name} cannot write its logs: {writes}"


def test_mutating_actions_are_scoped(template: Template) -> None:
    checked = 0
    for fn in functions(template):
        for statement in all_modes(template, fn):
            assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
            actions = as_list(statement["Action"])
            assert all(a != "*" and not a.endswith(":*") for a in actions), f"{fn.name}: wildcard action {actions}"
            checked += 1
            if "*" in as_list(statement["Resource"]):
                mutating = [a for a in actions if not READ_ONLY.match(a) and a not in NO_RESOURCE_SCOPE]
                assert not mutating, f"{fn.name}: {mutating} on Resource '*'"
    assert checked > 4 * len(template.functions)


def test_every_function_can_send_to_its_on_failure_destination(template: Template) -> None:
    for fn in functions(template):
        destination = fn.properties["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]
        assert any(
            "sqs:SendMessage" in as_list(st["Action"]) and destination in as_list(st["Resource"])
            for st in role_statements(template, fn)
        ), f"{fn.name}: its role cannot send to {destination} (SAM adds this only to roles it makes)"


def test_create_addon_only_in_addon_mode(template: Template) -> None:
    fn = template.functions["cluster_bootstrap"]

    def creates_addons(mode: str) -> bool:
        return any("eks:CreateAddon" in as_list(st["Action"]) for st in role_statements(template, fn, **mode_of(mode)))

    def mode_of(mode: str) -> dict[str, str]:
        return {"BootstrapObservability": mode}

    assert template.parameters["BootstrapObservability"]["Default"] == "manifests"
    assert not creates_addons("manifests")
    assert creates_addons("addon")


def _dynamodb_actions(path: Path, receiver: str) -> set[str]:
    """The DynamoDB actions a module calls on ``<something>.<receiver>.<operation>(...)``."""
    calls = {
        node.func.attr
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == receiver
    }
    return {"dynamodb:" + "".join(part.title() for part in call.split("_")) for call in calls}


def test_idempotency_policy_is_what_each_store_calls(template: Template) -> None:
    """node_scaler and image_updater keep their records with Powertools' DynamoDB store; the notifier with
    eksops.notify.once (Once, RepeatCounter, PostedReports). Each role may call exactly what its store calls."""
    from aws_lambda_powertools.utilities.idempotency.persistence import dynamodb

    import eksops.notify.once as once

    powertools = _dynamodb_actions(Path(dynamodb.__file__), "client")
    eksops_once = _dynamodb_actions(Path(once.__file__), "_ddb")
    assert powertools and eksops_once, "found no DynamoDB calls in the stores"
    needed = {"notifier": eksops_once, "node_scaler": powertools, "image_updater": powertools}
    assert set(needed) == IDEMPOTENT_FUNCTIONS
    table = {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
    for fn in functions(template):
        granted = [
            st
            for st in role_statements(template, fn)
            if any(a.startswith("dynamodb:") for a in as_list(st["Action"])) and table in as_list(st["Resource"])
        ]
        if "IDEMPOTENCY_TABLE" in fn.environment and fn.name in IDEMPOTENT_FUNCTIONS:
            assert [set(as_list(st["Action"])) for st in granted] == [needed[fn.name]], fn.name
            assert [as_list(st["Resource"]) for st in granted] == [[table]]
        else:
            assert not granted, f"{fn.name} does not use the idempotency table"


def scaling_alarm_name(template: Template, cluster: str) -> str:
    """The name node_scaler gives a cluster's reserved-CPU alarm under the template's prefix (stack STACK)."""
    from eksops.scaling.alarms import AlarmSettings

    prefix = resolver(template).resolve(template.functions["node_scaler"].environment["SCALER_ALARM_PREFIX"])
    return AlarmSettings(topic_arn=None, prefix=prefix).name(cluster)


def alarm_names_kept_by(template: Template, function: str) -> list[str]:
    """Names of alarms ``function`` creates and keeps at run time."""
    from eksops.logs.error_alarms import alarm_name

    return {
        "error_alarms": [alarm_name("prod-eu")],
        "node_scaler": [scaling_alarm_name(template, "prod-eu")],
        # compliance_sweep checks (and, with logs-error-alarm in REMEDIATE, keeps) error_alarms' alarms
        "compliance_sweep": [alarm_name("prod-eu")],
    }.get(function, [])


def test_describe_alarms_is_scoped_to_the_alarms_each_function_keeps(template: Template) -> None:
    arn = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{}".format
    keepers = {"error_alarms", "node_scaler", "compliance_sweep"}
    scoped = set()
    for fn in functions(template):
        for statement in all_modes(template, fn):
            if "cloudwatch:DescribeAlarms" in as_list(statement["Action"]):
                assert fn.name in keepers
                (resource,) = as_list(statement["Resource"])
                own = alarm_names_kept_by(template, fn.name)
                for name in own:
                    assert fnmatch.fnmatchcase(arn(name), resource)
                others = [n for other in keepers - {fn.name} for n in alarm_names_kept_by(template, other)]
                for name in [n for n in others if n not in own]:
                    assert not fnmatch.fnmatchcase(arn(name), resource), f"{fn.name} reads {name}"
                assert not fnmatch.fnmatchcase(arn("someone-elses-alarm"), resource), resource
                scoped.add(fn.name)
    assert scoped == keepers  # each lists its alarms


# The one topic each function's alarms may notify, and the variable that tells the function.
ALARM_TOPICS = {
    "error_alarms": ("AlertsTopic", "ALERTS_TOPIC_ARN"),
    "node_scaler": ("ScalingTopic", "SCALER_ALARM_TOPIC_ARN"),
    "compliance_sweep": ("AlertsTopic", "ALERTS_TOPIC_ARN"),  # the logs-error-alarm remediation: error_alarms' alarm
}


def test_functions_may_create_alarms_whose_only_action_is_their_topic(template: Template) -> None:
    # An alarm action can also stop, terminate or reboot instances: PutMetricAlarm is tied to one topic.
    creators = set()
    for fn in functions(template):
        for statement in all_modes(template, fn):
            if "cloudwatch:PutMetricAlarm" in as_list(statement["Action"]):
                topic, variable = ALARM_TOPICS[fn.name]
                assert statement["Condition"] == {
                    "ForAllValues:StringEquals": {"cloudwatch:AlarmActions": [{"Ref": topic}]}
                }
                assert fn.environment[variable] == {"Ref": topic}  # what its alarms notify
                creators.add(fn.name)
    assert creators == set(ALARM_TOPICS)


def test_put_metric_data_only_into_eksops_namespace(template: Template) -> None:
    writers = set()
    for fn in functions(template):
        for statement in all_modes(template, fn):
            if "cloudwatch:PutMetricData" in as_list(statement["Action"]):
                assert as_list(statement["Action"]) == ["cloudwatch:PutMetricData"]
                assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "eksops"}}
                writers.add(fn.name)
    assert writers == {"node_scaler"}


def test_node_scaler_changes_only_tagged_groups_and_writes_only_its_own_tags(template: Template) -> None:
    from eksops.scaling.groups import BOOKKEEPING_TAGS, ENROLL_TAG

    statements = role_statements(template, template.functions["node_scaler"])
    autoscaling = [st for st in statements if any(a.startswith("autoscaling:") for a in as_list(st["Action"]))]
    mutating = {a for st in autoscaling for a in as_list(st["Action"]) if not READ_ONLY.match(a)}
    assert mutating == {"autoscaling:SetDesiredCapacity", "autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"}
    for statement in autoscaling:
        actions = set(as_list(statement["Action"]))
        if "autoscaling:SetDesiredCapacity" in actions:
            assert actions == {"autoscaling:SetDesiredCapacity"}
            assert statement["Condition"] == {"StringEquals": {f"aws:ResourceTag/{ENROLL_TAG}": "enabled"}}
        elif actions & {"autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"}:
            keys = statement["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]
            assert set(keys) == set(BOOKKEEPING_TAGS) and ENROLL_TAG not in keys  # it cannot enroll a group
            assert statement["Condition"]["Null"] == {"aws:TagKeys": "false"}
    (kill,) = [st for st in statements if "ssm:GetParameter" in as_list(st["Action"])]
    default = template.parameters["ScalerKillSwitchParameter"]["Default"]
    assert as_list(kill["Resource"]) == [f"arn:aws:ssm:us-east-1:123456789012:parameter{default}"]


# -- encryption and resource policies ---------------------------------------------------------------------------


def key_statements(template: Template) -> dict[str, dict[str, Any]]:
    (key,) = template.of_type("AWS::KMS::Key").values()
    props = resolver(template).resolve(key["Properties"])
    assert props["EnableKeyRotation"] is True
    return {st["Sid"]: st for st in props["KeyPolicy"]["Statement"]}


def alarm_source_patterns(condition: dict[str, Any]) -> list[str]:
    assert condition["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    return as_list(condition["ArnLike"]["aws:SourceArn"])


def test_key_policy_lets_only_the_account_eventbridge_cloudwatch_and_logs_use_the_key(template: Template) -> None:
    statements = key_statements(template)
    principals = {json.dumps(st["Principal"], sort_keys=True): st for st in statements.values()}
    assert set(principals) == {
        json.dumps(p, sort_keys=True)
        for p in (
            {"AWS": "arn:aws:iam::123456789012:root"},
            {"Service": "events.amazonaws.com"},
            {"Service": "cloudwatch.amazonaws.com"},
            {"Service": "logs.us-east-1.amazonaws.com"},
        )
    }
    for service in ("events", "cloudwatch"):
        statement = principals[json.dumps({"Service": f"{service}.amazonaws.com"})]
        assert sorted(as_list(statement["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    cloudwatch = principals[json.dumps({"Service": "cloudwatch.amazonaws.com"})]
    assert alarm_source_patterns(cloudwatch["Condition"])
    logs = principals[json.dumps({"Service": "logs.us-east-1.amazonaws.com"})]
    pattern = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    for group in template.of_type("AWS::Logs::LogGroup").values():
        props = resolver(template).resolve(group["Properties"])
        assert props["KmsKeyId"] == {"Fn::GetAtt": ["EksopsKey", "Arn"]}
        assert fnmatch.fnmatchcase(f"arn:aws:logs:us-east-1:123456789012:log-group:{props['LogGroupName']}", pattern)


def test_topics_are_encrypted_and_every_publisher_may_use_the_key(template: Template) -> None:
    topics = template.of_type("AWS::SNS::Topic")
    for topic in topics.values():
        assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "EksopsKey"}
    key = {"Fn::GetAtt": ["EksopsKey", "Arn"]}
    publishers = 0
    for fn in functions(template):
        statements = role_statements(template, fn)
        if any("sns:Publish" in as_list(st["Action"]) for st in statements):
            publishers += 1
            kms = [st for st in statements if key in as_list(st["Resource"])]
            assert [sorted(as_list(st["Action"])) for st in kms] == [["kms:Decrypt", "kms:GenerateDataKey"]], fn.name
            assert kms[0]["Condition"] == {"StringEquals": {"kms:ViaService": "sns.us-east-1.amazonaws.com"}}
    assert publishers == len(template.functions) - 1  # all but the notifier, which only reads the topics
    by_sid = key_statements(template)
    # AWS services that publish: EventBridge rules with a topic target, alarms with a topic action.
    rules = [r for r in template.of_type("AWS::Events::Rule").values() if topic_targets(r, topics)]
    assert rules and "EventBridgeRulesPublishToTheTopics" in by_sid
    assert template.of_type("AWS::CloudWatch::Alarm") and "CloudWatchAlarmsPublishToTheTopics" in by_sid


def topic_targets(rule: dict[str, Any], topics: dict[str, Any]) -> set[str]:
    return {t["Arn"]["Ref"] for t in rule["Properties"]["Targets"] if t["Arn"].get("Ref") in topics}


def test_topic_policy_admits_only_eksops_rules_and_alarms(template: Template) -> None:
    topics = template.of_type("AWS::SNS::Topic")
    policies = template.of_type("AWS::SNS::TopicPolicy").values()
    assert {t["Ref"] for p in policies for t in p["Properties"]["Topics"]} >= {"AlertsTopic", "ScalingTopic"}
    key_patterns = alarm_source_patterns(key_statements(template)["CloudWatchAlarmsPublishToTheTopics"]["Condition"])
    alarm_arn = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{}".format
    for policy in policies:
        (topic,) = [t["Ref"] for t in policy["Properties"]["Topics"]]
        statements = resolver(template).resolve(policy["Properties"]["PolicyDocument"])["Statement"]
        by_service = {st["Principal"]["Service"]: st for st in statements}
        targeting = {k for k, r in template.of_type("AWS::Events::Rule").items() if topic in topic_targets(r, topics)}
        # EventBridge may publish only when a rule targets the topic, and then only those rules.
        assert set(by_service) == {"cloudwatch.amazonaws.com"} | ({"events.amazonaws.com"} if targeting else set())
        if targeting:
            events = by_service["events.amazonaws.com"]["Condition"]
            assert events["StringEquals"] == {"aws:SourceAccount": "123456789012"}
            named = {arn["Fn::GetAtt"][0] for arn in events["ArnEquals"]["aws:SourceArn"]}
            assert named == targeting, "the EventBridge statement must name exactly the rules that target the topic"

        patterns = alarm_source_patterns(by_service["cloudwatch.amazonaws.com"]["Condition"])
        # The key lets CloudWatch encrypt for every alarm a topic admits.
        assert all(any(fnmatch.fnmatchcase(p, k) for k in key_patterns) for p in patterns), (patterns, key_patterns)
        # The alarms that must reach the topic: those functions keep with it as their action, and the template's.
        names = [n for fn, (t, _) in ALARM_TOPICS.items() if t == topic for n in alarm_names_kept_by(template, fn)]
        for alarm in template.of_type("AWS::CloudWatch::Alarm").values():
            props = resolver(template).resolve(alarm["Properties"])
            if {"Ref": topic} in props["AlarmActions"]:
                names.append(props["AlarmName"])
        assert names, f"no alarm notifies {topic}"
        for name in names:
            assert any(fnmatch.fnmatchcase(alarm_arn(name), p) for p in patterns), f"alarm {name} cannot publish"
        # ...and no other: not someone else's, nor eksops' alarms meant for another topic.
        others = [n for fn, (t, _) in ALARM_TOPICS.items() if t != topic for n in alarm_names_kept_by(template, fn)]
        for name in ["someone-elses-alarm", *[n for n in others if topic == "ScalingTopic"]]:
            assert not any(fnmatch.fnmatchcase(alarm_arn(name), p) for p in patterns), f"{name} may publish to {topic}"


def rules_dead_lettering_to(template: Template, queue: str, deployed: Resolver) -> set[str]:
    """Logical ids of the rules whose targets dead-letter to ``queue``, SAM's (<function><event>) included, of the
    resources the parameters deploy (a function under a false condition has no rules)."""
    found = set()
    for logical_id, rule in template.of_type("AWS::Events::Rule").items():
        if not deployed.condition_holds(rule):
            continue
        for target in rule["Properties"]["Targets"]:
            if target.get("DeadLetterConfig", {}).get("Arn") == {"Fn::GetAtt": [queue, "Arn"]}:
                found.add(logical_id)
    for fn in functions(template):
        if not deployed.condition_holds(template.resources[fn.logical_id]):
            continue
        for name, source in fn.properties.get("Events", {}).items():
            config = source.get("Properties", {}).get("DeadLetterConfig", {})
            if source["Type"] in {"EventBridgeRule", "Schedule"} and config.get("Arn") == {
                "Fn::GetAtt": [queue, "Arn"]
            }:
                found.add(fn.logical_id + name)
    return found


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"ImageConfigRepoUrl": "codecommit://config"},
        {"EnableNodeScaler": "false", "EnableComplianceSweep": "false"},
        {
            f"Enable{c}": "false"
            for c in ("LogRetention", "ErrorAlarms", "ClusterBootstrap", "NodeScaler", "ComplianceSweep")
        },
    ],
)
def test_dead_letter_queue_policy_admits_only_eksops_rules(template: Template, parameters: dict[str, str]) -> None:
    # The reports queue's policy (the reports topic only) is checked in tests/integration/notify; no other queue has
    # one.
    assert set(template.of_type("AWS::SQS::QueuePolicy")) == {"DeadLetterQueuePolicy", "ReportsQueuePolicy"}
    deployed = resolver(template, **parameters)
    policy = template.resources["DeadLetterQueuePolicy"]
    assert [q["Ref"] for q in policy["Properties"]["Queues"]] == ["DeadLetterQueue"]
    (statement,) = deployed.resolve(policy["Properties"]["PolicyDocument"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    named = [arn["Fn::GetAtt"][0] for arn in statement["Condition"]["ArnEquals"]["aws:SourceArn"]]
    assert len(named) == len(set(named))
    assert set(named) == rules_dead_lettering_to(template, "DeadLetterQueue", deployed)


def test_access_entry_grants_cluster_admin_or_only_the_least_privilege_group(template: Template) -> None:
    from eksops.kube.errors import LEAST_PRIVILEGE_GROUP

    entry = template.resources["ClusterBootstrapAccessEntry"]
    admin = resolver(template).resolve(entry["Properties"])
    assert "KubernetesGroups" not in admin
    assert admin["AccessPolicies"] == [
        {
            "PolicyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
            "AccessScope": {"Type": "cluster"},
        }
    ]
    least = resolver(template, BootstrapKubernetesAccess="least-privilege").resolve(entry["Properties"])
    assert "AccessPolicies" not in least
    assert least["KubernetesGroups"] == [LEAST_PRIVILEGE_GROUP]
    assert least["PrincipalArn"] == {"Fn::GetAtt": ["ClusterBootstrapFunctionRole", "Arn"]}
    # only for a named cluster, and never without the function whose role it names
    assert not resolver(template).condition_holds(entry)
    assert resolver(template, BootstrapAccessEntryCluster="prod").condition_holds(entry)
    assert not resolver(template, BootstrapAccessEntryCluster="prod", EnableClusterBootstrap="false").condition_holds(
        entry
    )


def test_every_scanner_suppression_gives_its_reason(template: Template) -> None:
    suppressions = 0
    for logical_id, resource in template.resources.items():
        metadata = resource.get("Metadata", {})
        for skip in metadata.get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), f"{logical_id}: {skip}"
            assert len(skip.get("comment", "")) >= 40, f"{logical_id}: {skip['id']} needs its reason"
            suppressions += 1
        ignored = metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        assert not ignored, f"{logical_id}: cfn-lint ignores {ignored}; give the reason next to it and allow it here"
    assert suppressions


def test_retention_parameters_allow_exactly_what_cloudwatch_accepts(template: Template) -> None:
    allowed = template.parameters["RetentionDefaultDays"]["AllowedValues"]
    assert allowed == ["", *map(str, VALID_DAYS)]
    assert template.parameters["FunctionLogRetentionDays"]["AllowedValues"] == list(VALID_DAYS)


def test_parameter_defaults_pass_the_functions_own_validation(template: Template) -> None:
    from eksops.logs import RetentionConfig

    defaults = template.parameter_defaults()
    RetentionConfig.from_env(
        {
            "RETENTION_RULES": defaults["RetentionRules"],
            "RETENTION_DEFAULT_DAYS": defaults["RetentionDefaultDays"],
            "RETENTION_MODE": defaults["RetentionMode"],
            "RETENTION_EXCLUDE": defaults["RetentionExclude"],
            "RETENTION_PUT_RATE": defaults["RetentionPutRate"],
            "RETENTION_SCOPE": defaults["RetentionScope"],
        }
    )


def test_every_variable_the_code_reads_is_defined(make_sandbox: Any) -> None:
    sandbox, dispatcher = make_sandbox()
    for fn in functions(sandbox.template):
        config.READ_VARIABLES.clear()
        dispatcher.handler(fn)  # the cold start: configuration is read here
        defined = set(sandbox.template.functions[fn.name].environment) | config.LAMBDA_RUNTIME_VARIABLES
        assert config.READ_VARIABLES, f"{fn.name} read no configuration at start-up"
        missing = config.READ_VARIABLES - defined
        assert not missing, f"{fn.name} reads {sorted(missing)}, which template.yaml does not define"


def test_only_the_config_module_reads_the_environment() -> None:
    allowed = {ROOT / "layers/eksops/eksops/config.py"}
    dev_only = ROOT / "layers/eksops/eksops/local"
    offenders = []
    for path in [*(ROOT / "layers/eksops/eksops").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        if path in allowed or dev_only in path.parents:
            continue
        text = path.read_text()
        if re.search(r"os\.environ|os\.getenv|getenv\(", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize("name", ["AlertsTopic", "ReportsTopic", "DeadLetterQueue", "IdempotencyTable"])
def test_shared_resources_exist(template: Template, name: str) -> None:
    assert name in template.resources


# Enable<Capability> parameter -> the function it deploys (the notifier has no switch; image_updater exists only with
# ImageConfigRepoUrl).
SWITCHES = {
    "EnableLogRetention": "log_retention",
    "EnableErrorAlarms": "error_alarms",
    "EnableClusterBootstrap": "cluster_bootstrap",
    "EnableNodeScaler": "node_scaler",
    "EnableComplianceSweep": "compliance_sweep",
}


def test_switched_off_capabilities_are_not_in_the_sandbox(make_sandbox: Any) -> None:
    """With every switch false, the sandbox creates none of those functions, rules, schedules, log groups or alarms
    (tests/unit/test_template_safety.py checks each switch alone on the template as CloudFormation receives it)."""
    sandbox, dispatcher = make_sandbox({name: "false" for name in SWITCHES})
    off = set(SWITCHES.values())
    template = sandbox.template
    for function in off:
        fn = template.functions[function]
        assert f"skipped {fn.logical_id}: condition" in " ".join(sandbox.notes)
        assert fn.logical_id not in sandbox.refs
    assert not off & set(sandbox.schedules)
    assert not off & {name for name, _ in sandbox.inboxes.values()}
    assert not off & {name for name, _ in sandbox.batch_inboxes.values()}
    rules = [r["Name"] for r in sandbox.client("events").list_rules()["Rules"]]
    assert rules and not [r for r in rules if any(f"-{function}-" in r for function in off)], rules
    groups = [g["logGroupName"] for g in sandbox.client("logs").describe_log_groups()["logGroups"]]
    # the two functions left: the notifier, and image_updater (make_sandbox gives it a CodeCommit repository)
    assert sorted(groups) == ["/aws/lambda/eksops-local-image-updater", "/aws/lambda/eksops-local-notifier"], groups
    alarms = {a["AlarmName"] for a in sandbox.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert not [a for a in alarms if any(f.replace("_", "-") in a for f in off)], alarms
    with pytest.raises(KeyError, match="ScalingTopic"):
        sandbox.resolver.resolve({"Ref": "ScalingTopic"})
    # what stays works: an alert still reaches the notifier
    assert dispatcher.invoke(
        "notifier", json.loads((ROOT / "events/notifier/cloudwatch_alarm.json").read_text()), "t"
    ).ok
