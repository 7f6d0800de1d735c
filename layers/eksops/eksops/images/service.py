"""image_updater: commits the image tag (or digest) each IMAGE_MAP entry's policy allows into the config repository.

Every trigger comes down to the same step per entry, :meth:`ImageUpdaterService._update`: read the entry's files at
the branch tip, decide per file from what that file holds (eksops.images.policy), pass the chosen image through the
vulnerability gate (eksops.images.gate), and edit exactly the entry's bytes (eksops.images.kustomize), committed as
one commit on the tip that was read (eksops.images.codecommit or eksops.images.gitremote: a concurrent commit makes
the backend re-read and decide again on the new content).

- **Push** (ECR Image Action): the pushed tag is judged for each entry of the repository (``policy.judge``): a tag
  outside the policy is refused with its reason, an acceptable one newer than the file is committed once its
  scan passes. A tag that no longer names the pushed digest (pushed again since) is left to the reconcile: the
  gate would have judged another image than the one the tag now names.
- **Pipeline** (a stage in PIPELINE_STAGES succeeded): the image the stage built (its output variables) is judged
  like a push, and only a commit of that very image names the pipeline execution and source revision. A stage
  that exported no recognisable image reconciles every entry, without that provenance.
- **Scan** (ECR Image Scan): the entries of the repository are reconciled: the policy picks from the whole
  registry (``policy.select``), looking past newer images the gate holds or blocks (up to MAX_PASSED_OVER) to the
  best one that passes, so a blocked newer image never starves a clean one. A held image is released this way.
- **Schedule**: every entry is reconciled, so a missed or failed event converges.

Level and edge: the decision always reads the file as it is on the tip, so a duplicate event, a late one or a
replay finds nothing to change and makes no commit. Reports: commits go to the reports topic; an image blocked by
its findings and failed entries are alerted from the event paths (the image's own push or scan), and the
reconcile only lists them in its summary, so the same blocked image is not alerted every quarter of an hour.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from eksops.aws import error_code
from eksops.config import CommonConfig
from eksops.errors import ConfigError, EksopsError, PartialFailure
from eksops.events import ScheduledRun
from eksops.images.config import CONFIG_REPO_SECRET_ARN, ImageEntry, RepoKind, UpdaterConfig
from eksops.images.gate import GateResult, Verdict, evaluate
from eksops.images.pipeline import stage_output
from eksops.images.policy import (
    Candidate,
    Current,
    Decision,
    Outcome,
    Refusal,
    judge,
    parse_tag_version,
    resolve_current,
    select,
)
from eksops.images.registry import EcrRegistry
from eksops.images.repo import CommitOutcome, ConfigRepo
from eksops.images.triggers import ImagePushed, ScanCompleted, StageSucceeded, Trigger
from eksops.notify import Message, Publisher, Severity
from eksops.sweeps import Deadline

__all__ = ["Context", "ImageUpdaterService", "Summary", "open_repository"]

FUNCTION = "image_updater"
REPORT_LINES = 50
MAX_PASSED_OVER = 5  # newer images held or blocked that a reconcile looks past for one that passes the gate
log = logging.getLogger(__name__)


@dataclass
class Summary:
    """What one run decided and did (or, under dry run, would do)."""

    dry_run: bool
    trigger: str
    committed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[dict[str, Any]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    ignored: str | None = None

    @property
    def changed(self) -> list[dict[str, Any]]:
        """The commits made (the name every function's summary shares)."""
        return self.committed

    def as_dict(self) -> dict[str, Any]:
        body = {k: v for k, v in self.__dict__.items() if v is not None}
        body["changed"] = self.committed
        return body

    def counts(self) -> dict[str, int]:
        return {
            "committed": len(self.committed),
            "unchanged": len(self.unchanged),
            "held": len(self.held),
            "blocked": len(self.blocked),
            "refused": len(self.refused),
            "errors": len(self.errors),
        }

    def raise_for_errors(self) -> None:
        """Fail the invocation when an entry failed, after the others were handled and reported."""
        if self.errors:
            raise PartialFailure(f"{len(self.errors)} image update(s) failed; see the report", self.errors)


@dataclass(frozen=True)
class Context:
    """Where an update comes from, for the commit message and the report."""

    trigger: str  # push, scan, pipeline or reconcile
    event_id: str = ""
    pipeline: str = ""
    pipeline_execution: str = ""
    source_revision: str = ""


@dataclass
class _Round:
    """What the edits of one round found, per file (a retry after a concurrent commit starts a new round)."""

    edits: dict[str, Any] = field(default_factory=dict)  # path -> kustomize.ImageEdit (changed only)
    outcomes: dict[str, tuple[str, Decision]] = field(default_factory=dict)  # path -> (kind, decision)
    gates: dict[str, GateResult] = field(default_factory=dict)  # path -> verdict that stopped it
    # path -> better images the gate held or blocked, passed over for the best one that passes (reconcile paths)
    passed_over: dict[str, list[tuple[Decision, GateResult]]] = field(default_factory=dict)


class ImageUpdaterService:
    """Decides and commits image updates with the clients and ports it is given.

    ``repository()`` opens the config repository (a backend of eksops.images.repo) for one run: credentials are
    read when it is called, so a rotated token is picked up without a cold start.
    """

    def __init__(
        self,
        cfg: UpdaterConfig,
        common: CommonConfig,
        *,
        registry: EcrRegistry,
        codepipeline: Any,
        repository: Callable[[], ConfigRepo],
        publisher: Publisher,
    ) -> None:
        self.cfg = cfg
        self.common = common
        self._registry = registry
        self._codepipeline = codepipeline
        self._repository = repository
        self._publisher = publisher
        self._account = ""
        self._region = ""

    # -- entry point ------------------------------------------------------------------------------------------

    def handle(self, trigger: Trigger, deadline: Deadline, *, account: str = "", region: str = "") -> Summary:
        self._account, self._region = account, region
        with deadline.bounding_calls():  # AWS calls leave the margin to the report (eksops.aws.budget)
            if isinstance(trigger, ImagePushed):
                summary = self.on_push(trigger, deadline)
            elif isinstance(trigger, ScanCompleted):
                summary = self.on_scan(trigger, deadline)
            elif isinstance(trigger, StageSucceeded):
                summary = self.on_stage(trigger, deadline)
            else:
                summary = self.reconcile(trigger, deadline)
            self._report(summary)
        return summary

    def on_push(self, push: ImagePushed, deadline: Deadline) -> Summary:
        summary = Summary(dry_run=self.common.dry_run, trigger=f"push {push.repository}:{push.tag or push.digest}")
        if not push.acts:
            summary.ignored = f"{push.action} {push.result}: only a successful push of a tagged image is acted on"
            return summary
        entries = self.cfg.entries_for(push.repository)
        if not entries:
            summary.ignored = f"no IMAGE_MAP entry for repository {push.repository}"
            return summary
        assert push.tag is not None  # push.acts says so
        context = Context("push", event_id=push.id)
        image = self._registry.describe_image(push.repository, digest=push.digest)
        if image is None:
            summary.notes.append(f"{push.repository}@{push.digest} is no longer in the registry: nothing to do")
            return summary
        if push.tag not in image.tags:  # the tag moved to another image: the gate would judge the wrong one
            summary.notes.append(
                f"{push.repository}:{push.tag} no longer names {push.digest} (the tag moved or was removed): "
                "nothing to do; the reconcile decides from the registry"
            )
            return summary
        pushed = Candidate(push.tag, push.digest, image.pushed_at)
        self._entries(entries, summary, context, deadline, pushed=pushed)
        return summary

    def on_scan(self, scan: ScanCompleted, deadline: Deadline) -> Summary:
        summary = Summary(dry_run=self.common.dry_run, trigger=f"scan {scan.repository}@{scan.digest[:19]}")
        if not scan.acts:
            summary.ignored = f"scan {scan.status}: only a completed scan releases a held update"
            return summary
        entries = self.cfg.entries_for(scan.repository)
        if not entries:
            summary.ignored = f"no IMAGE_MAP entry for repository {scan.repository}"
            return summary
        self._entries(entries, summary, Context("scan", event_id=scan.id), deadline)
        return summary

    def on_stage(self, stage: StageSucceeded, deadline: Deadline) -> Summary:
        summary = Summary(dry_run=self.common.dry_run, trigger=f"pipeline {stage.pipeline}/{stage.stage}")
        if not stage.acts:
            summary.ignored = f"stage {stage.state}: only a succeeded stage is acted on"
            return summary
        if not self.cfg.stage_enabled(stage.pipeline, stage.stage):
            summary.ignored = f"{stage.pipeline}/{stage.stage} is not in PIPELINE_STAGES"
            return summary
        output = stage_output(
            self._codepipeline, pipeline=stage.pipeline, stage=stage.stage, execution_id=stage.execution_id
        )
        if output.missing:
            summary.notes.append(f"CodePipeline does not know the execution ({output.missing})")
        context = Context(
            "pipeline",
            event_id=stage.id,
            pipeline=stage.pipeline,
            pipeline_execution=stage.execution_id,
            source_revision=output.source_revision,
        )
        judged = False
        for built in output.images:
            entries = self.cfg.entries_for(built.repository)
            if not entries:
                continue
            candidate = self._built_candidate(built.repository, built.tag, built.digest, summary)
            if candidate is not None:
                # The image the stage built is judged like a push: the commit is that image, and only then does
                # its message name the pipeline execution and the source revision.
                self._entries(entries, summary, context, deadline, pushed=candidate)
                judged = True
        if not judged:
            names = ", ".join(sorted({i.repository for i in output.images})) or "no image in its output variables"
            summary.notes.append(f"the stage built {names}: every IMAGE_MAP entry is reconciled from the registry")
            self._entries(self.cfg.images, summary, Context("pipeline", event_id=stage.id), deadline)
        return summary

    def _built_candidate(
        self, repository: str, tag: str | None, digest: str | None, summary: Summary
    ) -> Candidate | None:
        """The registry's view of an image a stage exported (by tag, checked against its digest when both are
        known); None, with a note, when it is not in the registry, carries no tag, or the tag has moved since."""
        image = self._registry.describe_image(repository, tag=tag) if tag else None
        if image is None and digest and not tag:
            image = self._registry.describe_image(repository, digest=digest)
            tag = _version_tag(image.tags) if image is not None else None
        if image is None or tag is None:
            summary.notes.append(
                f"{repository}:{tag or digest} built by the stage is not a tagged image in the registry"
            )
            return None
        if digest and image.digest != digest:
            summary.notes.append(f"{repository}:{tag} names {image.digest} now, not the {digest} the stage built")
            return None
        return Candidate(tag, image.digest, image.pushed_at)

    def reconcile(self, run: ScheduledRun, deadline: Deadline) -> Summary:
        summary = Summary(dry_run=self.common.dry_run, trigger=f"reconcile ({run.rule})")
        self._entries(self.cfg.images, summary, Context("reconcile", event_id=run.id), deadline)
        return summary

    # -- one entry --------------------------------------------------------------------------------------------

    def _entries(
        self,
        entries: Iterable[ImageEntry],
        summary: Summary,
        context: Context,
        deadline: Deadline,
        *,
        pushed: Candidate | None = None,
    ) -> None:
        todo = list(entries)
        for index, entry in enumerate(todo):
            if deadline.low():
                for left in todo[index:]:
                    summary.errors.append(
                        {"entry": left.label, "code": "OutOfTime", "message": "not reached in this run; retried"}
                    )
                return
            try:
                self._update(entry, summary, context, deadline, pushed=pushed)
            except (EksopsError, ClientError) as exc:
                code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
                log.warning("%s (%s) failed: %s: %s", entry.label, entry.image, code, exc)
                summary.errors.append({"entry": entry.label, "image": entry.image, "code": code, "message": str(exc)})
            except Exception as exc:  # a bug must not keep the other entries from converging: reported, then raised
                log.exception("%s (%s) failed unexpectedly", entry.label, entry.image)
                summary.errors.append(
                    {"entry": entry.label, "image": entry.image, "code": type(exc).__name__, "message": str(exc)[:500]}
                )

    def _update(
        self, entry: ImageEntry, summary: Summary, context: Context, deadline: Deadline, *, pushed: Candidate | None
    ) -> None:
        candidates = self._registry.list_images(entry.repository)
        gates: dict[str, GateResult] = {}  # digest -> verdict, across the rounds of this update
        rounds: list[_Round] = []

        def gate(target: Candidate) -> GateResult:
            if target.digest not in gates:
                report = self._registry.scan_report(entry.repository, target.digest)
                gates[target.digest] = evaluate(report, entry.block_on_severity)
            return gates[target.digest]

        def edit(path: str, content: bytes) -> bytes | None:
            from eksops.images import kustomize  # ruamel.yaml: image_updater's own requirement, loaded on use

            if not rounds or path in rounds[-1].outcomes:  # a new round re-reads every file
                rounds.append(_Round())
            this = rounds[-1]
            found = kustomize.current_bytes(content, entry.image, path=path)
            if found is None:
                raise kustomize.ImageNotInFile(path, entry.image, ())
            now = Current(tag=found.tag, digest=found.digest)
            decision = self._decide(
                entry,
                pushed,
                candidates=candidates,
                now=now,
                gate=gate,
                passed_over=this.passed_over.setdefault(path, []),
            )
            if decision.outcome is not Outcome.UPDATE or decision.target is None:
                this.outcomes[path] = (str(decision.outcome), decision)
                return None
            verdict = gate(decision.target)
            if verdict.verdict is not Verdict.PASS:
                this.outcomes[path] = (str(verdict.verdict), decision)
                this.gates[path] = verdict
                return None
            target = decision.target
            result = kustomize.set_image_bytes(
                content,
                entry.image,
                tag=target.tag if entry.writes_tag else None,
                digest=target.digest if entry.writes_digest else None,
                path=path,
            )
            this.outcomes[path] = ("update" if result.changed else "unchanged", decision)
            if result.changed:
                this.edits[path] = result
                return result.content
            return None

        def message() -> str:
            first = next(iter(rounds[-1].edits.values()))
            return self.cfg.commit_message(_message_values(entry, first, rounds[-1].edits, context))

        repo = self._repository()
        outcome = repo.update(
            entry.files,
            edit,
            message=message,
            author=self.cfg.author,
            time_left=lambda: (deadline.remaining_ms() - deadline.margin_ms) / 1000,
            dry_run=self.common.dry_run,
        )
        self._record(entry, summary, rounds[-1] if rounds else _Round(), outcome, pushed)

    @classmethod
    def _decide(
        cls,
        entry: ImageEntry,
        pushed: Candidate | None,
        *,
        candidates: list[Candidate],
        now: Current,
        gate: Callable[[Candidate], GateResult],
        passed_over: list[tuple[Decision, GateResult]],
    ) -> Decision:
        """The pushed (or built) image judged, or the best image the gate lets through (reconcile paths)."""
        from eksops.images.kustomize import TAG_RE

        # Tags kustomize cannot write (ECR allows 300 characters, an image reference 128) are no candidates.
        usable = [c for c in candidates if TAG_RE.fullmatch(c.tag)]
        if pushed is not None and not TAG_RE.fullmatch(pushed.tag):
            reason = f"{pushed.tag[:80]}... is longer than an image reference's tag may be (128)"
            return Decision(Outcome.REFUSED, reason, None, Refusal.NO_MATCH)
        if pushed is not None:
            return judge(entry, pushed, resolve_current(now, usable))
        return cls._best_passing(entry, usable, now, gate, passed_over)

    @staticmethod
    def _best_passing(
        entry: ImageEntry,
        candidates: list[Candidate],
        now: Current,
        gate: Callable[[Candidate], GateResult],
        passed_over: list[tuple[Decision, GateResult]],
    ) -> Decision:
        """The policy's pick among the images the gate lets through: a newer image held for its scan or blocked by
        its findings does not keep an older clean one (still above the file's) from going out. The ones passed
        over are listed (reported as held or blocked); at most MAX_PASSED_OVER are tried."""
        pool = list(candidates)
        passed_over.clear()
        while True:
            decision = select(entry, pool, now)
            if decision.outcome is not Outcome.UPDATE or decision.target is None:
                return decision
            verdict = gate(decision.target)
            if verdict.verdict is Verdict.PASS or len(passed_over) >= MAX_PASSED_OVER:
                return decision
            passed_over.append((decision, verdict))
            pool = [c for c in pool if c.digest != decision.target.digest]

    def _record(
        self, entry: ImageEntry, summary: Summary, final: _Round, outcome: CommitOutcome, pushed: Candidate | None
    ) -> None:
        base = {"entry": entry.label, "image": entry.image, "repository": entry.repository}
        if outcome.files:
            edits = [final.edits[path] for path in outcome.files if path in final.edits]
            summary.committed.append(
                {
                    **base,
                    "files": list(outcome.files),
                    "changes": [e.describe() for e in edits],
                    "commit": outcome.commit_id,
                    "parent": outcome.parent_id,
                    "url": outcome.url,
                    "attempts": outcome.attempts,
                    "dry_run": outcome.dry_run,
                }
            )
        for path, skipped in final.passed_over.items():
            for decision, verdict in skipped:
                _record_gated(summary, {**base, "file": path}, decision.target, verdict)
        for path, (kind, decision) in final.outcomes.items():
            item = {**base, "file": path, "reason": decision.reason}
            shown = decision.target or pushed  # a refused push names the pushed image
            if shown is not None:
                item.update(tag=shown.tag, digest=shown.digest)
            if kind == "unchanged" or (kind == "update" and path not in outcome.files):
                summary.unchanged.append(item)
            elif kind == "refused":
                summary.refused.append({**item, "refusal": str(decision.refusal)})
            elif kind in ("hold", "block"):
                _record_gated(summary, {**base, "file": path}, decision.target, final.gates[path])

    # -- reports ----------------------------------------------------------------------------------------------

    def _report(self, summary: Summary) -> None:
        event_path = not summary.trigger.startswith("reconcile")
        if summary.committed or (event_path and (summary.held or summary.refused)) or summary.errors:
            self._publisher.report(self._message(summary))
        if event_path and (summary.blocked or summary.errors):
            self._publisher.alert(self._alert(summary))

    def _message(self, summary: Summary) -> Message:
        verb = "would commit" if summary.dry_run else "committed"
        parts = [f"{len(summary.committed)} update(s) {verb}"]
        parts += [f"{len(v)} {k}" for k, v in (("held", summary.held), ("refused", summary.refused)) if v]
        parts += [f"{len(summary.errors)} failed"] if summary.errors else []
        lines: list[str] = []
        links: dict[str, str] = {}
        for item in summary.committed:
            where = item["commit"][:12] if item["commit"] else ("dry run" if item["dry_run"] else "no commit")
            lines.append(f"{'; '.join(item['changes'])} in {', '.join(item['files'])} ({where})")
            if item["url"]:
                lines.append(f"    {item['url']}")
                if len(links) < 5:
                    links[f"commit {item['commit'][:12]}"] = item["url"]
        lines += [f"held {i['image']}:{i.get('tag')} ({i['file']}): {i['reason']}" for i in summary.held]
        lines += [f"refused {i['image']}:{i.get('tag', '')} ({i['file']}): {i['reason']}" for i in summary.refused]
        lines += [f"failed {e['entry']}: {e['code']}: {e['message']}" for e in summary.errors]
        return Message(
            kind="images.update",
            severity=Severity.WARNING if summary.errors else Severity.INFO,
            title=f"Image updates ({summary.trigger})"[:90],
            summary=", ".join(parts) + f" in {self.cfg.repo} ({self.cfg.branch}).",
            details=summary.as_dict(),
            account=self._account or None,
            region=self._region or None,
            links=links,  # the notifier shows eksops' own (console) links as links, others by their label only
            lines=tuple(lines[:REPORT_LINES]),
        )

    def _alert(self, summary: Summary) -> Message:
        lines = []
        for item in summary.blocked:
            lines.append(f"blocked {item['image']}:{item.get('tag')} ({item['file']}): {item['reason']}")
            lines += [
                f"    {f['name']} {f['severity']} {f.get('package') or ''} {f.get('uri') or ''}".rstrip()
                for f in item["findings"]
            ]
        lines += [f"failed {e['entry']}: {e['code']}: {e['message']}" for e in summary.errors]
        what = []
        if summary.blocked:
            what.append(f"{len(summary.blocked)} image update(s) blocked by scan findings")
        if summary.errors:
            what.append(f"{len(summary.errors)} update(s) failed")
        return Message(
            kind="images.blocked" if summary.blocked else "images.error",
            severity=Severity.WARNING,
            title=f"Image updates need attention ({summary.trigger})"[:90],
            summary="; ".join(what) + ". Nothing was committed for them.",
            details={"blocked": summary.blocked, "errors": summary.errors, "trigger": summary.trigger},
            account=self._account or None,
            region=self._region or None,
            lines=tuple(lines[:REPORT_LINES]),
        )


def _version_tag(tags: tuple[str, ...]) -> str | None:
    """The tag that names an image exported by digest only: its only tag, else its highest version tag (a build
    tagged `3.3.0` and `sha-1a2b3c4`), else None (ambiguous: the reconcile decides)."""
    if len(tags) == 1:
        return tags[0]
    versions = [(version, tag) for tag in tags if (version := parse_tag_version(tag)) is not None]
    return max(versions)[1] if versions else None


def _record_gated(summary: Summary, item: dict[str, Any], target: Candidate | None, verdict: GateResult) -> None:
    """An image the gate held (scan not finished) or blocked (findings), in the summary."""
    item = {**item, "reason": verdict.reason}
    if target is not None:
        item.update(tag=target.tag, digest=target.digest)
    if verdict.verdict is Verdict.HOLD:
        summary.held.append(item)
        return
    findings = [{"name": f.name, "severity": f.severity, "uri": f.uri, "package": f.package} for f in verdict.blocking]
    summary.blocked.append({**item, "counts": dict(verdict.counts), "findings": findings})


def _message_values(entry: ImageEntry, first: Any, edits: Mapping[str, Any], context: Context) -> dict[str, str]:
    def show(tag: str | None, digest: str | None) -> str:
        return "@".join(x for x in (tag, digest) if x) or "-"

    return {
        "image": entry.image,
        "repository": entry.repository,
        "old": show(first.old.tag, first.old.digest),
        "new": show(first.new.tag, first.new.digest),
        "old_tag": first.old.tag or "",
        "new_tag": first.new.tag or "",
        "old_digest": first.old.digest or "",
        "new_digest": first.new.digest or "",
        "policy": str(entry.policy),
        "files": ", ".join(edits),
        "trigger": context.trigger,
        "pipeline": context.pipeline,
        "pipeline_execution": context.pipeline_execution or "-",
        "source_revision": context.source_revision or "-",
        "event_id": context.event_id,
        "provenance": (
            f"Pipeline execution: {context.pipeline} {context.pipeline_execution}\n"
            f"Source revision: {context.source_revision or 'unknown'}\n"
            if context.pipeline_execution
            else ""
        ),
    }


def open_repository(
    cfg: UpdaterConfig, *, codecommit: Callable[[], Any], get_secret: Callable[[str], str]
) -> ConfigRepo:
    """The configured backend: CodeCommit through its API, or a Git remote with the secret's credentials."""
    if cfg.repo.kind is RepoKind.CODECOMMIT:
        from eksops.images.codecommit import CodeCommitRepo

        return CodeCommitRepo(codecommit(), cfg.repo.name, cfg.branch)
    from eksops.images.gitremote import GitRemoteRepo

    username = password = None
    if cfg.secret_arn:
        username, password = _credentials(get_secret(cfg.secret_arn))
    return GitRemoteRepo(cfg.repo.url, cfg.branch, username=username, password=password)


def _credentials(raw: str) -> tuple[str, str]:
    """``{"username": ..., "password": ...}`` from the secret; the message never quotes the value."""
    problem = 'must hold JSON {"username": ..., "password": ...}'
    try:
        value = json.loads(raw)
    except ValueError:
        raise ConfigError(CONFIG_REPO_SECRET_ARN, f"the secret {problem}; it is not JSON") from None
    if not isinstance(value, Mapping):
        raise ConfigError(CONFIG_REPO_SECRET_ARN, f"the secret {problem}")
    username, password = value.get("username"), value.get("password")
    if not isinstance(username, str) or not username or not isinstance(password, str) or not password:
        raise ConfigError(CONFIG_REPO_SECRET_ARN, f"the secret {problem}, both non-empty strings")
    return username, password
