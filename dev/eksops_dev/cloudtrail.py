"""The sandbox's stand-in for CloudTrail: make an AWS call on moto, then put its CloudTrail event on the bus.

moto does not record API calls as CloudTrail events. This shim performs the call and publishes the event
CloudTrail would (detail-type "AWS API Call via CloudTrail", the real detail fields), so EventBridge rules
in the sandbox see the same shape they see in AWS. Documented in docs/architecture.md.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from eksops_dev.template import ACCOUNT, REGION

CALLER_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/PlatformAdmin/sandbox"


def cloudtrail_event(
    service: str,
    event_name: str,
    request_parameters: dict[str, Any] | None,
    *,
    error_code: str | None = None,
    response_elements: Any = None,
) -> dict[str, Any]:
    """The EventBridge event CloudTrail emits for one management API call."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLEID:sandbox",
            "arn": CALLER_ARN,
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLEID",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/PlatformAdmin",
                    "accountId": ACCOUNT,
                    "userName": "PlatformAdmin",
                },
                "attributes": {"creationDate": now, "mfaAuthenticated": "false"},
            },
        },
        "eventTime": now,
        "eventSource": f"{service}.amazonaws.com",
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "198.51.100.10",
        "userAgent": "eksops-sandbox",
        "requestParameters": request_parameters,
        "responseElements": response_elements,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    if error_code:
        detail["errorCode"] = error_code
        detail["errorMessage"] = f"{error_code} (sandbox)"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": f"aws.{service}",
        "account": ACCOUNT,
        "time": now,
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


class CloudTrailShim:
    """``shim.call("logs", "create_log_group", logGroupName=...)`` calls moto and emits the event."""

    def __init__(self, clients: Any) -> None:
        self._client = clients  # a callable: service name -> boto3 client on the sandbox

    def call(self, service: str, method: str, **params: Any) -> Any:
        client = self._client(service)
        operation = client.meta.method_to_api_mapping[method]
        try:
            result = getattr(client, method)(**params)
        except ClientError as exc:
            self.emit(service, operation, params, error_code=exc.response["Error"]["Code"])
            raise
        self.emit(service, operation, params)
        return result

    def emit(self, service: str, event_name: str, params: dict[str, Any], *, error_code: str | None = None) -> None:
        event = cloudtrail_event(service, event_name, params, error_code=error_code)
        self.put(event)

    def put(self, event: dict[str, Any]) -> None:
        """Put a ready-made event (for example a sample from events/) on the default bus."""
        response = self._client("events").put_events(
            Entries=[
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": event.get("resources", []),
                    "EventBusName": "default",
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"moto refused the event: {response['Entries']}")
