"""Small HTTP shims in front of moto for what it does not emulate (CloudWatch Logs saved queries, the EKS
cluster lifecycle), and the proxy they share with the tests' fault injection.

moto 5.2 answers HTTP 500 to PutQueryDefinition, DescribeQueryDefinitions and DeleteQueryDefinition. The
sandbox points ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`` (the standard per-service variable) at this shim, which
answers those three from memory, with the shapes of the CloudWatch Logs API, and forwards every other
request to moto unchanged. Production code is unaware of it.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

PREFIX = "Logs_20140328."
# serve_forever checks for shutdown this often (the default 0.5 s made every stop wait half a second)
POLL_S = 0.02


class QueryDefinitionStore:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def answer(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        with self.lock:
            if operation == "PutQueryDefinition":
                qid = body.get("queryDefinitionId") or str(uuid.uuid4())
                if body.get("queryDefinitionId") and qid not in self.items:
                    return 400, {"__type": "ResourceNotFoundException", "message": "query definition not found"}
                self.items[qid] = {
                    "queryDefinitionId": qid,
                    "name": body["name"],
                    "queryString": body["queryString"],
                    "logGroupNames": body.get("logGroupNames", []),
                    "lastModified": int(time.time() * 1000),
                }
                return 200, {"queryDefinitionId": qid}
            if operation == "DescribeQueryDefinitions":
                prefix = body.get("queryDefinitionNamePrefix", "")
                found = sorted(
                    (q for q in self.items.values() if q["name"].startswith(prefix)), key=lambda q: q["name"]
                )
                return 200, {"queryDefinitions": found}
            if operation == "DeleteQueryDefinition":
                return 200, {"success": self.items.pop(body.get("queryDefinitionId", ""), None) is not None}
        return None


Intercept = Callable[[str, bytes, dict[str, str]], tuple[int, bytes] | None]
Rewrite = Callable[[str, str, int, bytes], bytes]  # (method, path, status, body) -> body


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    proxy: AwsJsonProxy  # set on the subclass each proxy makes

    def do_GET(self) -> None:
        self._forward("GET")

    def do_PUT(self) -> None:
        self._forward("PUT")

    def do_DELETE(self) -> None:
        self._forward("DELETE")

    def do_POST(self) -> None:
        self._forward("POST")

    def _forward(self, method: str) -> None:
        proxy = self.proxy
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}}
        answered = proxy.intercept(headers.get("X-Amz-Target", ""), raw, headers)
        if answered is not None:
            self._reply(answered[0], {"Content-Type": "application/x-amz-json-1.1"}, answered[1])
            return
        # No body on a bodiless GET or DELETE: urllib would add a form Content-Type, and moto then answers 404 to
        # a DELETE such as EKS UntagResource.
        body = raw if raw or method not in ("GET", "DELETE") else None
        request = urllib.request.Request(  # noqa: S310 - loopback moto
            proxy.upstream + self.path, data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback moto
                status, rheaders, data = response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as err:
            status, rheaders, data = err.code, dict(err.headers.items()), err.read()
        if proxy.rewrite is not None:
            data = proxy.rewrite(method, self.path, status, data)
        self._reply(status, rheaders, data)

    def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in {"content-length", "connection", "transfer-encoding", "server", "date"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class AwsJsonProxy:
    """An HTTP proxy in front of moto: ``intercept(target, body, headers)`` may answer a request itself
    (status, body), ``rewrite`` may change an upstream answer; everything else is forwarded unchanged."""

    def __init__(self, upstream: str, intercept: Intercept, rewrite: Rewrite | None = None) -> None:
        self.upstream = upstream
        self.intercept = intercept
        self.rewrite = rewrite
        handler = type("Handler", (_ProxyHandler,), {"proxy": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_S,), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class LogsShim(AwsJsonProxy):
    """``shim.start()``, then use ``shim.url`` as the CloudWatch Logs endpoint."""

    def __init__(self, upstream: str) -> None:
        self.store = QueryDefinitionStore()
        super().__init__(upstream, self._answer)

    def _answer(self, target: str, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
        if not target.startswith(PREFIX):
            return None
        answered = self.store.answer(target[len(PREFIX) :], json.loads(raw or b"{}"))
        return None if answered is None else (answered[0], json.dumps(answered[1]).encode())


class EksLifecycleShim(AwsJsonProxy):
    """EKS clusters in moto are ACTIVE at once; real ones spend minutes CREATING. Clusters named in
    ``creating`` are reported with status CREATING by DescribeCluster until ``activate(name)``."""

    def __init__(self, upstream: str) -> None:
        self.creating: set[str] = set()
        super().__init__(upstream, lambda *_: None, self._rewrite)

    def activate(self, name: str) -> None:
        self.creating.discard(name)

    def _rewrite(self, method: str, path: str, status: int, body: bytes) -> bytes:
        parts = path.split("?", 1)[0].strip("/").split("/")
        if method != "GET" or status != 200 or len(parts) != 2 or parts[0] != "clusters":
            return body
        if urllib.parse.unquote(parts[1]) not in self.creating:
            return body
        data = json.loads(body)
        data["cluster"]["status"] = "CREATING"
        return json.dumps(data).encode()


CODEPIPELINE_PREFIX = "CodePipeline_20150709."


class CodePipelineShim(AwsJsonProxy):
    """moto 5.2 has no ListActionExecutions, and its executions have no artifact revisions. ``record`` a stage's
    action executions (their output variables) and the execution's source revision; this shim answers
    ListActionExecutions and GetPipelineExecution for recorded executions, with the API's shapes, and forwards
    everything else to moto."""

    def __init__(self, upstream: str) -> None:
        self.actions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.revisions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        super().__init__(upstream, self._answer)

    def record(
        self,
        pipeline: str,
        execution_id: str,
        *,
        stage: str,
        action: str,
        variables: dict[str, str],
        revision: str = "",
        revision_summary: str = "",
    ) -> None:
        with self.lock:
            self.actions.setdefault((pipeline, execution_id), []).append(
                {
                    "pipelineExecutionId": execution_id,
                    "actionExecutionId": str(uuid.uuid4()),
                    "pipelineVersion": 1,
                    "stageName": stage,
                    "actionName": action,
                    "startTime": time.time(),
                    "lastUpdateTime": time.time(),
                    "status": "Succeeded",
                    "input": {
                        "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"}
                    },
                    "output": {"outputVariables": dict(variables)},
                }
            )
            if revision:
                self.revisions[(pipeline, execution_id)] = [
                    {"name": "SourceArtifact", "revisionId": revision, "revisionSummary": revision_summary}
                ]

    def _answer(self, target: str, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
        if not target.startswith(CODEPIPELINE_PREFIX):
            return None
        operation, body = target[len(CODEPIPELINE_PREFIX) :], json.loads(raw or b"{}")
        pipeline = body.get("pipelineName", "")
        with self.lock:
            if operation == "ListActionExecutions":
                execution = (body.get("filter") or {}).get("pipelineExecutionId", "")
                found = [
                    a for (p, e), items in self.actions.items() if p == pipeline and execution in ("", e) for a in items
                ]
                return 200, json.dumps({"actionExecutionDetails": found}).encode()
            key = (pipeline, body.get("pipelineExecutionId", ""))
            if operation == "GetPipelineExecution" and (key in self.actions or key in self.revisions):
                execution = {
                    "pipelineName": pipeline,
                    "pipelineVersion": 1,
                    "pipelineExecutionId": key[1],
                    "status": "Succeeded",
                    "artifactRevisions": self.revisions.get(key, []),
                }
                return 200, json.dumps({"pipelineExecution": execution}).encode()
        return None
