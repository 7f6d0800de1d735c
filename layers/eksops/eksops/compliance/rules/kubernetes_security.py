"""Compliance rules: Kubernetes security (namespaces, RBAC, pod security of workloads).

Namespace and workload rules leave system namespaces out (``eksops.compliance.workloads.SYSTEM_NAMESPACES``:
kube-*, amazon-*, aws-*, eks-*, eksops-*), as the EKS Best Practices Guide and hardeneks do: the platform's agents
(VPC CNI, kube-proxy, CloudWatch agent, Fluent Bit) need host access by design. Workload findings are reported once
per workload, on its pod template: Deployment, DaemonSet, StatefulSet, CronJob (once for all its runs), stand-alone
Job or ReplicaSet, Argo Rollout, and each pod no walked controller stands for (``eksops.compliance.workloads``).

Two rules remediate, through the bootstrap module's manifests (the same objects cluster_bootstrap applies):
``namespace-default-deny`` applies ``eksops-default-deny`` (egress too when BOOTSTRAP_DENY_EGRESS is true) and
``namespace-pod-security`` applies the bootstrap Pod Security levels (BOOTSTRAP_PSA_ENFORCE/WARN/AUDIT), only on a
namespace whose Pod Security labels nobody else chose. Without the bootstrap settings (``Tools.bootstrap`` None),
BootstrapConfig's defaults apply: no egress deny; enforce=baseline, warn=restricted, audit=restricted.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from eksops.compliance.model import Category, KubePermission, NotRemediated, Rule, Severity, Violation, register
from eksops.compliance.workloads import (
    WORKLOAD_READS,
    Container,
    Workload,
    describe_subject,
    is_system_namespace,
    is_system_subject,
    summarise,
    workloads,
)
from eksops.kube import manifests

if TYPE_CHECKING:
    from eksops.bootstrap.config import BootstrapConfig
    from eksops.compliance.context import ClusterContext

RBAC = "rbac.authorization.k8s.io"
NAMESPACES = KubePermission("", "namespaces", ("list",))
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
PSA_MODES = ("enforce", "warn", "audit")
# Every path through which a container could reach a container runtime's socket (the socket, or a directory above
# it): with it, a container starts privileged containers on the node.
RUNTIME_SOCKETS: tuple[str, ...] = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/run/crio/crio.sock",
    "/var/run/dockershim.sock",
)
# The capabilities a container runtime grants by default (Pod Security Standards baseline allows adding only these).
DEFAULT_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
PUBLIC_INFO_VIEWER = "system:public-info-viewer"  # the default binding that lets anyone read /version and /healthz
ANONYMOUS = frozenset({"system:anonymous", "system:unauthenticated"})


def bootstrap_settings(ctx: ClusterContext) -> BootstrapConfig:
    """The bootstrap settings the remediation reuses; BootstrapConfig's defaults when the function has none."""
    if ctx.tools.bootstrap is not None:
        return ctx.tools.bootstrap
    from eksops.bootstrap.config import BootstrapConfig

    return BootstrapConfig.from_env({})


def _apply(ctx: ClusterContext, doc: dict[str, Any], what: str) -> str:
    """Server-side apply one manifest (dry run: the server is asked, nothing stored); say what happened."""
    from eksops.kube.apply import apply_manifests

    ctx.spend(f"apply {what}")
    # Forced only where eksops owns the object: another manager's fields are never taken over.
    summary = apply_manifests(ctx.api(), [doc], dry_run=ctx.dry_run, force="owned")
    outcome = summary.objects[0].outcome
    if outcome == "conflict":
        raise NotRemediated(f"{what}: another manager owns these fields ({summary.objects[0].message[:300]})")
    if ctx.dry_run:
        return f"would apply {what} (server dry run: {outcome})"
    return f"applied {what} ({outcome})"


# -- namespaces -------------------------------------------------------------------------------------------------


def _app_namespaces(ctx: ClusterContext) -> Iterator[Mapping[str, Any]]:
    """Namespaces outside the system ones, and not being deleted."""
    for namespace in ctx.namespaces():
        meta = namespace.get("metadata") or {}
        phase = (namespace.get("status") or {}).get("phase")
        if not is_system_namespace(str(meta.get("name", ""))) and phase != "Terminating":
            yield meta


def _annotations(meta: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}


def denies_ingress(policy: Mapping[str, Any]) -> bool:
    """A NetworkPolicy selecting every pod of its namespace that allows no ingress at all."""
    spec = policy.get("spec") or {}
    selector = spec.get("podSelector") or {}
    if selector.get("matchLabels") or selector.get("matchExpressions"):
        return False
    types = spec.get("policyTypes") or ["Ingress"]  # the API server defaults policyTypes to Ingress (+ Egress)
    return "Ingress" in types and not spec.get("ingress")


def fargate_namespaces(ctx: ClusterContext) -> list[str]:
    """Namespace globs whose every pod Fargate runs (a profile selector without labels): no NetworkPolicy is
    enforced there, so a default-deny would only pretend (fargate-network-policy reports policies there)."""
    return [
        str(selector.get("namespace"))
        for profile in ctx.fargate_profiles()
        for selector in profile.get("selectors") or []
        if selector.get("namespace") and not selector.get("labels")
    ]


@register
class NamespaceDefaultDeny(Rule):
    id = "namespace-default-deny"
    title = "Namespace without a default-deny NetworkPolicy"
    severity = Severity.MEDIUM
    category = Category.SECURITY
    why = (
        "Without a policy that denies all ingress by default, every pod accepts traffic from any pod of the cluster:"
        " one compromised workload reaches them all. System namespaces are left out, and so are namespaces whose"
        " every pod runs on Fargate, which does not enforce NetworkPolicies."
    )
    fix = (
        "Apply a NetworkPolicy with an empty podSelector, policyTypes [Ingress] and no ingress rules, then allow what"
        " each workload needs. REMEDIATE applies eksops-default-deny (the bootstrap manifest; it also denies egress"
        " except DNS when BOOTSTRAP_DENY_EGRESS is true), only in namespaces BOOTSTRAP_DENY_NAMESPACES opts in, as"
        " bootstrap does: elsewhere the finding stays open, since a default deny cuts traffic. The VPC CNI's network"
        " policy agent must be enabled for"
        " NetworkPolicies to be enforced."
    )
    reference = (
        "hardeneks: check_default_deny_policy_exists; EKS BP: Security > Network security > Create a default deny"
        " policy"
    )
    adds = (
        "requires a policy that really denies ingress to every pod (hardeneks counts any NetworkPolicy); remediation"
        " applies the bootstrap default-deny"
    )
    iam_actions = ("eks:ListFargateProfiles", "eks:DescribeFargateProfile")
    kube_permissions = (NAMESPACES, KubePermission("networking.k8s.io", "networkpolicies", ("list",)))
    remediation_kube_permissions = (KubePermission("networking.k8s.io", "networkpolicies", ("get", "create", "patch")),)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        covered = {
            str((p.get("metadata") or {}).get("namespace"))
            for p in ctx.kube_list("networking.k8s.io/v1", "networkpolicies")
            if denies_ingress(p)
        }
        fargate = fargate_namespaces(ctx)
        for meta in _app_namespaces(ctx):
            name = str(meta["name"])
            if name in covered or any(fnmatch.fnmatchcase(name, g) for g in fargate):
                continue
            others = [
                str((p.get("metadata") or {}).get("name"))
                for p in ctx.kube_list("networking.k8s.io/v1", "networkpolicies")
                if (p.get("metadata") or {}).get("namespace") == name
            ]
            evidence = "no NetworkPolicy denies ingress to all its pods"
            if others:
                evidence += f" (policies there: {summarise(others)})"
            yield Violation(f"namespace/{name}", evidence, annotations=_annotations(meta), data={"namespace": name})

    def remediate(self, ctx: ClusterContext, violation: Violation) -> str:
        namespace = str(violation.data["namespace"])
        cfg = bootstrap_settings(ctx)
        # A default deny cuts every flow the namespace's workloads have not been given a policy for: it goes only
        # where the operator opted in to it for bootstrap (BOOTSTRAP_DENY_NAMESPACES), exactly as bootstrap does.
        if not manifests.deny_namespaces([namespace], cfg.deny_namespaces):
            raise NotRemediated(
                f"namespace {namespace} is not in BOOTSTRAP_DENY_NAMESPACES (a default deny blocks its traffic);"
                " add it there to have eksops apply the policy, or apply one by hand"
            )
        egress = cfg.deny_egress
        doc = manifests.default_deny(namespace, egress=egress)
        denies = "ingress and egress but DNS" if egress else "ingress"
        what = f"NetworkPolicy {namespace}/{manifests.DENY_POLICY_NAME} (denies {denies})"
        return _apply(ctx, doc, what)


@register
class NamespacePodSecurity(Rule):
    id = "namespace-pod-security"
    title = "Namespace without a Pod Security Admission enforce level"
    severity = Severity.MEDIUM
    category = Category.SECURITY
    why = (
        "Without a pod-security.kubernetes.io/enforce label, Pod Security Admission lets any pod in: privileged"
        " containers, host namespaces and host paths included (PodSecurityPolicy is gone since Kubernetes 1.25)."
        " System namespaces and those BOOTSTRAP_PSA_EXCLUDE leaves out (add-ons that need more) are left out."
    )
    fix = (
        "Label the namespace pod-security.kubernetes.io/enforce=baseline (or restricted), with warn and audit at"
        " restricted. REMEDIATE applies the bootstrap levels (BOOTSTRAP_PSA_ENFORCE/WARN/AUDIT), but never to a"
        " namespace whose owner set Pod Security levels of their own: label those by hand, or accept the finding."
    )
    reference = (
        "hardeneks: ensure_namespace_psa_exist; EKS BP: Security > Pod Security > Pod Security Standards (PSS) and"
        " Pod Security Admission (PSA)"
    )
    adds = "requires an enforce level (hardeneks accepts warn or audit alone); remediation through the bootstrap labels"
    kube_permissions = (NAMESPACES,)
    remediation_kube_permissions = (KubePermission("", "namespaces", ("get", "patch")),)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        exclude = bootstrap_settings(ctx).psa_exclude
        for meta in _app_namespaces(ctx):
            name = str(meta["name"])
            labels = meta.get("labels") or {}
            if PSA_ENFORCE in labels or any(fnmatch.fnmatchcase(name, g) for g in exclude):
                continue
            chosen = [
                f"{m}={labels[f'pod-security.kubernetes.io/{m}']}"
                for m in PSA_MODES
                if f"pod-security.kubernetes.io/{m}" in labels
            ]
            may_set = manifests.may_set_pod_security(dict(meta))
            evidence = f"no {PSA_ENFORCE} label"
            if chosen:
                evidence += f" (it has {', '.join(chosen)})"
            if not may_set:
                evidence += "; its owner chose its Pod Security levels, so eksops does not relabel it"
            yield Violation(
                f"namespace/{name}",
                evidence,
                annotations=_annotations(meta),
                data={"namespace": name, "may_set": may_set},
            )

    def remediate(self, ctx: ClusterContext, violation: Violation) -> str:
        namespace = str(violation.data["namespace"])
        if not violation.data.get("may_set"):
            raise NotRemediated(
                f"namespace {namespace}: its owner set its Pod Security labels; eksops never relabels such a namespace"
                f" (add {PSA_ENFORCE} by hand, or accept the finding)"
            )
        cfg = bootstrap_settings(ctx)
        if not cfg.labels_pod_security(namespace):
            raise NotRemediated(
                f"namespace {namespace} is not among BOOTSTRAP_PSA_NAMESPACES (less BOOTSTRAP_PSA_EXCLUDE), which"
                " bootstrap labels; add it there, or label it by hand"
            )
        labels = manifests.pod_security_labels(cfg.psa_enforce, cfg.psa_warn, cfg.psa_audit)
        doc = manifests.namespace_with_pod_security(namespace, labels)
        levels = f"enforce={cfg.psa_enforce}, warn={cfg.psa_warn}, audit={cfg.psa_audit}"
        return _apply(ctx, doc, f"Pod Security labels {levels} on namespace {namespace}")


# -- RBAC -------------------------------------------------------------------------------------------------------


def _bindings(ctx: ClusterContext) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(resource, binding) for every ClusterRoleBinding and RoleBinding."""
    for binding in ctx.kube_list(f"{RBAC}/v1", "clusterrolebindings"):
        yield f"clusterrolebinding/{binding['metadata']['name']}", binding
    for binding in ctx.kube_list(f"{RBAC}/v1", "rolebindings"):
        meta = binding["metadata"]
        yield f"rolebinding/{meta.get('namespace')}/{meta['name']}", binding


def _cluster_role_ref(binding: Mapping[str, Any]) -> str | None:
    ref = binding.get("roleRef") or {}
    return str(ref.get("name")) if ref.get("kind") == "ClusterRole" else None


@register
class RbacClusterAdminBinding(Rule):
    id = "rbac-cluster-admin-binding"
    title = "cluster-admin bound to a non-system subject"
    severity = Severity.HIGH
    category = Category.SECURITY
    why = (
        "A ClusterRoleBinding to cluster-admin gives its subjects every permission on every object, secrets"
        " included; a leaked token or a compromised pod of such a service account owns the cluster."
    )
    fix = (
        "Bind a narrower ClusterRole or namespaced Roles; for people, prefer EKS access entries with an access policy"
        " scoped to namespaces. Platform subjects (system:/eks: users and groups, service accounts of system"
        " namespaces) are not reported. eksops never removes bindings (it could cut access)."
    )
    reference = (
        "EKS BP: Security > Identity and Access Management > Employ least privileged access when creating"
        " RoleBindings and ClusterRoleBindings"
    )
    adds = "hardeneks has no rule for cluster-admin bindings; broad groups (system:authenticated, ...) are reported"
    kube_permissions = (KubePermission(RBAC, "clusterrolebindings", ("list",)),)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        for binding in ctx.kube_list(f"{RBAC}/v1", "clusterrolebindings"):
            if _cluster_role_ref(binding) != "cluster-admin":
                continue
            subjects = [describe_subject(s) for s in binding.get("subjects") or [] if not is_system_subject(s)]
            if subjects:
                meta = binding["metadata"]
                yield Violation(
                    f"clusterrolebinding/{meta['name']}",
                    f"binds cluster-admin to {summarise(subjects)}",
                    annotations=_annotations(meta),
                )


def wildcards(rules: Iterable[Mapping[str, Any]]) -> list[str]:
    """What grants all: ``verbs *``, ``resources *`` (and on which API groups), from a role's rules."""
    found: list[str] = []
    for rule in rules:
        verbs, resources = rule.get("verbs") or [], rule.get("resources") or []
        if "*" not in verbs and "*" not in resources:
            continue
        groups = ",".join(str(g) or "core" for g in rule.get("apiGroups") or []) or "non-resource URLs"
        found.append(f"verbs {','.join(verbs)} on {','.join(resources) or '-'} ({groups})")
    return found


@register
class RbacWildcardClusterRole(Rule):
    id = "rbac-wildcard-clusterrole"
    title = "ClusterRole with wildcard verbs or resources bound to a non-system subject"
    severity = Severity.MEDIUM
    category = Category.SECURITY
    why = (
        "A '*' in verbs or resources grants everything of that kind, including what later API versions and custom"
        " resources add: far more than the subject needs, and it grows by itself."
    )
    fix = (
        "List the verbs and resources the subject needs. Roles of the platform (system:*, eks:*, cluster-admin, which"
        " rbac-cluster-admin-binding covers) and roles bound to no non-system subject are not reported."
    )
    reference = (
        "hardeneks: restrict_wildcard_for_cluster_roles; EKS BP: Security > Identity and Access Management >"
        " Employ least privileged access when creating RoleBindings and ClusterRoleBindings"
    )
    adds = "reports a wildcard role only when a binding gives it to a non-system subject, and names the bindings"
    kube_permissions = (
        KubePermission(RBAC, "clusterroles", ("list",)),
        KubePermission(RBAC, "clusterrolebindings", ("list",)),
        KubePermission(RBAC, "rolebindings", ("list",)),
    )

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        granted: dict[str, list[str]] = {}  # ClusterRole -> "binding to subjects"
        for resource, binding in _bindings(ctx):
            role_name = _cluster_role_ref(binding)
            subjects = [describe_subject(s) for s in binding.get("subjects") or [] if not is_system_subject(s)]
            if role_name and subjects:
                granted.setdefault(role_name, []).append(f"{resource} to {', '.join(subjects)}")
        for role in ctx.kube_list(f"{RBAC}/v1", "clusterroles"):
            meta = role["metadata"]
            name = str(meta["name"])
            if name == "cluster-admin" or name.startswith(("system:", "eks:")) or name not in granted:
                continue
            found = wildcards(role.get("rules") or [])
            if found:
                yield Violation(
                    f"clusterrole/{name}",
                    f"grants {summarise(found, 2)}; bound by {summarise(granted[name], 2)}",
                    annotations=_annotations(meta),
                )


@register
class RbacAnonymousBinding(Rule):
    id = "rbac-anonymous-binding"
    title = "Role bound to anonymous or unauthenticated users"
    severity = Severity.CRITICAL
    category = Category.SECURITY
    why = (
        "A binding to system:anonymous or system:unauthenticated gives its permissions to anyone who can reach the"
        " API server endpoint, without credentials."
    )
    fix = (
        "Delete the binding, or remove those subjects from it. The default system:public-info-viewer binding"
        " (read /version and /healthz) is not reported. eksops never deletes bindings."
    )
    reference = (
        "hardeneks: disable_anonymous_access_for_cluster_roles, disable_anonymous_access_for_roles; EKS BP:"
        " Security > Identity and Access Management > Review and revoke unnecessary anonymous access"
    )
    kube_permissions = (
        KubePermission(RBAC, "clusterrolebindings", ("list",)),
        KubePermission(RBAC, "rolebindings", ("list",)),
    )

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        for resource, binding in _bindings(ctx):
            ref = binding.get("roleRef") or {}
            if _cluster_role_ref(binding) == PUBLIC_INFO_VIEWER:
                continue
            anonymous = sorted(
                {str(s.get("name")) for s in binding.get("subjects") or [] if s.get("name") in ANONYMOUS}
            )
            if anonymous:
                meta = binding["metadata"]
                yield Violation(
                    resource,
                    f"binds {ref.get('kind')} {ref.get('name')} to {', '.join(anonymous)}",
                    annotations=_annotations(meta),
                    namespace=meta.get("namespace"),
                )


# -- workloads --------------------------------------------------------------------------------------------------


class WorkloadRule(Rule):
    """A rule on each workload's pod template: ``problems`` says what is wrong with one workload ([]: nothing)."""

    kube_permissions: ClassVar[tuple[KubePermission, ...]] = WORKLOAD_READS

    def prepare(self, ctx: ClusterContext) -> Mapping[Any, Any]:
        """What ``problems`` needs from the cluster besides the workload (read once per check)."""
        return {}

    def problems(self, workload: Workload, known: Mapping[Any, Any]) -> list[str]:
        raise NotImplementedError

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        known = self.prepare(ctx)
        for workload in workloads(ctx):
            found = self.problems(workload, known)
            if found:
                yield Violation(
                    workload.resource,
                    summarise(found),
                    annotations=workload.annotations,
                    namespace=workload.namespace,
                )


def _per_container(workload: Workload, test: Any, *, init: bool = True) -> list[str]:
    """``"<container>: <what test says>"`` for every container ``test`` finds something on."""
    found = []
    for container in workload.containers(init=init):
        said = test(container)
        if said:
            found.append(f"{container.name}: {said}")
    return found


@register
class PodPrivileged(WorkloadRule):
    id = "pod-privileged"
    title = "Privileged container"
    severity = Severity.HIGH
    category = Category.SECURITY
    why = (
        "A privileged container has every capability and the node's devices: it is root on the node, and through"
        " the node's instance role it reaches AWS."
    )
    fix = "Remove securityContext.privileged, and add only the capabilities the container needs."
    reference = "EKS BP: Security > Pod Security > Restrict the containers that can run as privileged"
    adds = "hardeneks has no rule for privileged containers; init containers are checked too"

    def problems(self, workload: Workload, known: Mapping[Any, Any]) -> list[str]:
        return _per_container(workload, lambda c: "privileged" if c.security_context.get("privileged") else "")


@register
class PodHostNamespaces(WorkloadRule):
    id = "pod-host-namespaces"
    title = "Pod sharing the node's network, PID or IPC namespace"
    severity = Severity.HIGH
    category = Category.SECURITY
    why = (
        "hostNetwork lets a pod bind node ports, sniff the node's traffic and reach the instance metadata service;"
        " hostPID and hostIPC let it see and signal every process of the node."
    )
    fix = "Remove hostNetwork, hostPID and hostIPC from the pod spec (the Pod Security baseline level forbids them)."
    reference = "EKS BP: Security > Pod Security (Pod Security Standards baseline: host namespaces)"
    adds = "hardeneks has no rule for host namespaces"

    def problems(self, workload: Workload, known: Mapping[Any, Any]) -> list[str]:
        return [f"{field} true" for field in ("hostNetwork", "hostPID", "hostIPC") if workload.pod_spec.get(field)]


def _host_paths(workload: Workload) -> dict[str, str]:
    """Volume name -> host path, for the template's hostPath volumes."""
    return {
        str(v.get("name")): str((v.get("hostPath") or {}).get("path", ""))
        for v in workload.pod_spec.get("volumes") or []
        if v.get("hostPath")
    }


def reaches_socket(path: str) -> str | None:
    """The runtime socket a host path is, or contains (a directory above it), or None."""
    base = path.rstrip("/") or "/"
    for socket in RUNTIME_SOCKETS:
        if socket == base or socket.startswith(base.rstrip("/") + "/"):
            return socket
    return None


@register
class PodHostPath(WorkloadRule):
    id = "pod-host-path"
    title = "Container writing to a hostPath volume"
    severity = Severity.HIGH
    category = Category.SECURITY
    why = (
        "A writable hostPath mount lets a container change the node's files (kubelet credentials, binaries,"
        " other pods' data) and so escape to the node."
    )
    fix = (
        "Use emptyDir, a ConfigMap or a PersistentVolume instead; if a host path is really needed, restrict it to a"
        " narrow prefix and mount it readOnly: true. (Container runtime sockets are pod-container-socket's.)"
    )
    reference = (
        "hardeneks: disallow_host_path_or_make_it_read_only; EKS BP: Security > Pod Security > Restrict the use of"
        " hostPath or if hostPath is necessary restrict which prefixes can be used and configure the volume as"
        " read-only"
    )
    adds = "read-only mounts pass, as the Guide allows (hardeneks reports every hostPath volume)"

    def problems(self, workload: Workload, known: Mapping[Any, Any]) -> list[str]:
        paths = {n: p for n, p in _host_paths(workload).items() if not reaches_socket(p)}
        found = []
        for container in workload.containers():
            for mount in container.spec.get("volumeMounts") or []:
                name = str(mount.get("name"))
                if name in paths and not mount.get("readOnly"):
                    found.append(f"{container.name} mounts {paths[name]} writable")
        return found


@register
class PodContainerSocket(WorkloadRule):
    id = "pod-container-socket"
    title = "Container runtime socket mounted"
    severity = Severity.CRITICAL
    category = Category.SECURITY
    why = (
        "Through the Docker, containerd or CRI-O socket a container starts privileged containers on the node: it"
        " owns the node, read-only mount or not."
    )
    fix = (
        "Remove the hostPath volume; build images with a daemonless builder (Kaniko, BuildKit rootless) or"
        " CodeBuild instead of the node's runtime."
    )
    reference = (
        "hardeneks: disallow_container_socket_mount; EKS BP: Security > Pod Security > Never run Docker in Docker or"
        " mount the socket in the container"
    )
    adds = "also catches containerd/CRI-O socket paths under /run and mounts of a directory above a socket"

    def problems(self, workload: Workload, known: Mapping[Any, Any]) -> list[str]:
        found = []
        for name, path in _host_paths(workload).items():
            socket = reaches_socket(path)
            if socket:
                found.append(f"volume {name}: {path}" + ("" if socket == path.rstrip("/") else f" (holds {socket})"))
        return found


@register
class PodRunAsRoot(WorkloadRule):
    id = "pod-run-as-root"
    title = "Container that may run as root"
    severity = Severity.MEDIUM
    category = Category.SECURITY
    why = (
        "A process running as root in a container is root on the node's kernel: a container escape, or a hostPath"
        " mount, then acts as root. Without runAsNonRoot or a non-zero runAsUser, the image's USER decides."
    )
    fix = (
        "Set securityContext.runAsNonRoot: true and a non-zero runAsUser (pod or container level), and build the"
        " image with a non-root USER."
    )
    reference = (
        "hardeneks: disable_run_as_root_user; EKS BP: Security > Identity and Access Management > Run the"
        " application as a non-root user"
    )
    adds = "resolves pod and container securityContext as the kubelet does (runAsNonRoot counts; runAsUser 0 fails)"

    def problems(self, workload: Workload, known: Mapping[Any, Any]) -> list[str]:
        if (workload.pod_spec.get("os") or {}).get("name") == "windows":
            return []  # Windows containers have no root user; runAsUserName is another matter

        def root(container: Container) -> str:
            user = workload.effective(container, "runAsUser")
            if user is not None:
                return "runAsUser 0" if int(user) == 0 else ""
            return "" if workload.effective(container, "runAsNonRoot") else "neither runAsNonRoot nor runAsUser"

        return _per_container(workload, root)


@register
class PodPrivilegeEscalation(WorkloadRule):
    id = "pod-privilege-escalation"
    title = "Container allowed to escalate privileges"
    severity = Severity.MEDIUM
    category = Category.SECURITY
    why = (
        "allowPrivilegeEscalation (true unless set to false) lets a process gain more privileges than its parent,"
        " through setuid binaries or file capabilities."
    )
    fix = "Set securityContext.allowPrivilegeEscalation: false on every container (the restricted level requires it)."
    reference = (
        "hardeneks: disallow_privilege_escalation; EKS BP: Security > Pod Security > Do not allow privileged escalation"
    )
    adds = "also reports containers that leave it unset (it defaults to true); hardeneks only an explicit true"

    def problems(self, workload: Workload, known: Mapping[Any, Any]) -> list[str]:
        def escalates(container: Container) -> str:
            value = container.security_context.get("allowPrivilegeEscalation")
            if value is False:
                return ""
            return "allowPrivilegeEscalation true" if value else "allowPrivilegeEscalation not set (true)"

        return _per_container(workload, escalates)


@register
class PodSecretsInEnv(WorkloadRule):
    id = "pod-secrets-in-env"
    title = "Secret exposed as environment variables"
    severity = Severity.MEDIUM
    category = Category.SECURITY
    why = (
        "Environment variables leak: into logs and crash reports, to child processes, and to anyone who can read the"
        " pod's spec or exec into it. A mounted secret file can be rotated and read only by the process."
    )
    fix = (
        "Mount the secret as a volume (or use the Secrets Store CSI driver with AWS Secrets Manager) and read the file."
    )
    reference = (
        "hardeneks: disallow_secrets_from_env_vars; EKS BP: Security > Data encryption and secrets management > Use"
        " volume mounts instead of environment variables"
    )
    adds = "init containers are checked too; the evidence names the variables and secrets, never their values"

    def problems(self, workload: Workload, known: Mapping[Any, Any]) -> list[str]:
        def from_secrets(container: Container) -> str:
            names = [
                f"{e.get('name')} from secret {e['valueFrom']['secretKeyRef'].get('name')}"
                for e in container.spec.get("env") or []
                if (e.get("valueFrom") or {}).get("secretKeyRef")
            ]
            names += [
                f"all of secret {e['secretRef'].get('name')}"
                for e in container.spec.get("envFrom") or []
                if e.get("secretRef")
            ]
            return ", ".join(names)

        return _per_container(workload, from_secrets)


def _capability(name: Any) -> str:
    text = str(name).upper()
    return text.removeprefix("CAP_")


@register
class PodAddedCapabilities(WorkloadRule):
    id = "pod-added-capabilities"
    title = "Container adding Linux capabilities beyond the runtime defaults"
    severity = Severity.MEDIUM
    category = Category.SECURITY
    why = (
        "Capabilities such as SYS_ADMIN, NET_ADMIN or SYS_PTRACE give a container powers over the node's kernel,"
        " network or other processes that a container escape turns into control of the node."
    )
    fix = (
        "Drop ALL and add back only what is needed from the runtime defaults (NET_BIND_SERVICE for a low port);"
        " move tasks that need more off the workload."
    )
    reference = (
        "hardeneks: disallow_linux_capabilities; EKS BP: Security > Runtime security > Consider add/dropping Linux"
        " capabilities before writing seccomp policies"
    )
    adds = "init containers are checked too; CAP_ prefixes and ALL are understood"

    def problems(self, workload: Workload, known: Mapping[Any, Any]) -> list[str]:
        def added(container: Container) -> str:
            extra = sorted(
                {_capability(c) for c in (container.security_context.get("capabilities") or {}).get("add") or []}
                - DEFAULT_CAPABILITIES
            )
            return f"adds {', '.join(extra)}" if extra else ""

        return _per_container(workload, added)


@register
class PodServiceAccountToken(WorkloadRule):
    id = "pod-service-account-token"
    title = "Service account token mounted automatically"
    severity = Severity.LOW
    category = Category.SECURITY
    why = (
        "Every pod that mounts a service account token can call the Kubernetes API as that account; most"
        " applications never do, so a compromise of one hands an attacker a credential for nothing."
    )
    fix = (
        "Set automountServiceAccountToken: false on the pod spec or its service account when the application does"
        " not call the Kubernetes API; use a dedicated service account when it does (accept the finding then)."
    )
    reference = (
        "hardeneks: disable_service_account_token_mounts; EKS BP: Security > Identity and Access Management >"
        " Disable auto-mounting of service account tokens"
    )
    adds = "resolves the setting as the API server does: the pod's, else its service account's, else true"
    kube_permissions = (*WORKLOAD_READS, KubePermission("", "serviceaccounts", ("list",)))

    def prepare(self, ctx: ClusterContext) -> Mapping[Any, Any]:
        """(namespace, service account) -> its automountServiceAccountToken (None when unset)."""
        return {
            (sa["metadata"].get("namespace"), sa["metadata"].get("name")): sa.get("automountServiceAccountToken")
            for sa in ctx.kube_list("v1", "serviceaccounts")
        }

    def problems(self, workload: Workload, known: Mapping[Any, Any]) -> list[str]:
        account = str(
            workload.pod_spec.get("serviceAccountName") or workload.pod_spec.get("serviceAccount") or "default"
        )
        mount = workload.pod_spec.get("automountServiceAccountToken")
        if mount is None:
            mount = known.get((workload.namespace, account))
        if mount is False:
            return []
        return [f"mounts the token of service account {account} (automountServiceAccountToken not false)"]
