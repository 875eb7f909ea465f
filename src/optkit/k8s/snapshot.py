"""Cluster objects (API JSON: nodes, pods, PodDisruptionBudgets) -> a pod-packing instance.

Everything here works on plain dicts shaped like the API server's JSON (camelCase keys), so it
takes `kubectl get -o json` output, the fake cluster's objects, or the official client's models
after `sanitize_for_serialization`. Instance pod names are `namespace/name`.

What never moves (`movable: false`): DaemonSet pods, static/mirror pods, `kube-system` pods, pods
without a controller (an evicted bare pod is gone for good), pods covered by a PodDisruptionBudget
that allows no disruption now, and bound pods whose scheduling constraints the pod-packing model
cannot express (node affinity with Gt/Lt or matchFields). Pending pods with such constraints, and
pending pods of other schedulers, are left out of the plan (listed in `Snapshot.skipped`).
Terminating, Succeeded and Failed pods hold no resources and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from optkit.errors import InputError
from optkit.k8s.quantity import resource_amount

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
SYSTEM_NAMESPACES = ("kube-system",)
_AFFINITY_OPS = ("In", "NotIn", "Exists", "DoesNotExist")
_TAINT_EFFECTS = ("NoSchedule", "NoExecute", "PreferNoSchedule")


@dataclass(frozen=True)
class PodInfo:
    """What the planner needs to act on a pod of the snapshot."""

    key: str  # namespace/name, the pod's name in the instance
    namespace: str
    name: str
    uid: str | None
    node: str | None
    priority: int
    owner: str | None  # "Kind/name" of the controller
    movable: bool
    unschedulable: bool  # pending with PodScheduled=False, reason=Unschedulable
    labels: dict = field(default_factory=dict)


@dataclass
class Budget:
    """A PodDisruptionBudget as the planner needs it."""

    key: str
    disruptions_allowed: int
    pods: list[str]  # instance pod names it covers


@dataclass
class Snapshot:
    instance: dict  # a pod-packing instance (docs/pod_packing.md, ../shared/spec.md)
    pods: dict[str, PodInfo]
    budgets: list[Budget]
    skipped: dict[str, str] = field(default_factory=dict)  # pod key -> why it is not in the plan
    resource_version: str | None = None

    def pending_unschedulable(self) -> list[str]:
        return [k for k, p in self.pods.items() if p.node is None and p.unschedulable]


# -- helpers on API objects ------------------------------------------------------------------------


def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def pod_key(pod: dict) -> str:
    m = meta(pod)
    return f"{m.get('namespace') or 'default'}/{m.get('name')}"


def controller_of(obj: dict) -> dict | None:
    refs = meta(obj).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return ref
    return refs[0] if refs else None


def owner_of(pod: dict) -> str | None:
    ref = controller_of(pod)
    return f"{ref.get('kind')}/{ref.get('name')}" if ref else None


def is_terminated(pod: dict) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return bool(meta(pod).get("deletionTimestamp")) or phase in ("Succeeded", "Failed")


def is_unschedulable(pod: dict) -> bool:
    """Pending, not bound, and the scheduler said PodScheduled=False with reason Unschedulable."""
    if (pod.get("spec") or {}).get("nodeName") or is_terminated(pod):
        return False
    for c in (pod.get("status") or {}).get("conditions") or []:
        if (
            c.get("type") == "PodScheduled"
            and c.get("status") == "False"
            and c.get("reason") == "Unschedulable"
        ):
            return True
    return False


def _add(total: dict[str, int], reqs: dict[str, int]) -> None:
    for r, v in reqs.items():
        total[r] = total.get(r, 0) + v


def _requests(container: dict, where: str) -> dict[str, int]:
    raw = ((container.get("resources") or {}).get("requests")) or {}
    return {r: resource_amount(r, v, f"{where}.resources.requests.{r}") for r, v in raw.items()}


def pod_requests(pod: dict) -> dict[str, int]:
    """Effective requests as the scheduler computes them.

    sum over containers, plus restartable (sidecar) init containers; the max with each ordinary init
    container (plus the sidecars started before it); plus `spec.overhead`.
    """
    spec = pod.get("spec") or {}
    where = f"pod {pod_key(pod)}: spec"
    total: dict[str, int] = {}
    for i, c in enumerate(spec.get("containers") or []):
        _add(total, _requests(c, f"{where}.containers.{i}"))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for i, c in enumerate(spec.get("initContainers") or []):
        reqs = _requests(c, f"{where}.initContainers.{i}")
        if c.get("restartPolicy") == "Always":
            _add(total, reqs)
            _add(sidecars, reqs)
            running = dict(sidecars)
        else:
            running = dict(sidecars)
            _add(running, reqs)
        for r, v in running.items():
            init_peak[r] = max(init_peak.get(r, 0), v)
    for r, v in init_peak.items():
        total[r] = max(total.get(r, 0), v)
    for r, v in (spec.get("overhead") or {}).items():
        total[r] = total.get(r, 0) + resource_amount(r, v, f"{where}.overhead.{r}")
    return {r: v for r, v in sorted(total.items()) if v or r in ("cpu", "memory")}


def node_entry(node: dict) -> dict:
    name = meta(node).get("name")
    where = f"node {name}: status.allocatable"
    alloc = (node.get("status") or {}).get("allocatable") or {}
    capacity = {r: resource_amount(r, v, f"{where}.{r}") for r, v in sorted(alloc.items())}
    spec = node.get("spec") or {}
    taints = []
    for t in spec.get("taints") or []:
        if t.get("effect") in _TAINT_EFFECTS:
            taints.append(
                {"key": t.get("key", ""), "value": t.get("value") or "", "effect": t["effect"]}
            )
    entry: dict[str, Any] = {"name": name, "capacity": capacity}
    if meta(node).get("labels"):
        entry["labels"] = dict(meta(node)["labels"])
    if taints:
        entry["taints"] = taints
    if spec.get("unschedulable"):
        entry["unschedulable"] = True
    return entry


def node_affinity(pod: dict) -> tuple[list | None, str | None]:
    """Required node affinity as the schema's OR-of-ANDs, or (None, reason) if it cannot be expressed."""
    req = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not req:
        return None, None
    terms = []
    for term in req.get("nodeSelectorTerms") or []:
        if term.get("matchFields"):
            return None, "node affinity uses matchFields"
        exprs = []
        for e in term.get("matchExpressions") or []:
            if e.get("operator") not in _AFFINITY_OPS:
                return None, f"node affinity operator {e.get('operator')!r} is not supported"
            exprs.append(
                {"key": e["key"], "operator": e["operator"], "values": list(e.get("values") or [])}
            )
        terms.append(exprs)
    return terms, None


def tolerations(pod: dict) -> list[dict]:
    out = []
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        tol: dict[str, Any] = {"operator": t.get("operator") or "Equal"}
        if t.get("key"):
            tol["key"] = t["key"]
        if t.get("value"):
            tol["value"] = t["value"]
        if t.get("effect"):
            tol["effect"] = t["effect"]
        out.append(tol)
    return out


def never_moves(pod: dict) -> str | None:
    """Why a bound pod must stay where it is, or None if it may be evicted."""
    m = meta(pod)
    ref = controller_of(pod)
    if m.get("namespace") in SYSTEM_NAMESPACES:
        return "kube-system pod"
    if MIRROR_ANNOTATION in (m.get("annotations") or {}) or (ref and ref.get("kind") == "Node"):
        return "static/mirror pod"
    if ref is None:
        return "no controller would recreate it"
    if ref.get("kind") == "DaemonSet":
        return "DaemonSet pod"
    return None


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions); an empty selector matches everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# -- the snapshot ---------------------------------------------------------------------------------


def build_snapshot(
    nodes: Iterable[dict],
    pods: Iterable[dict],
    pdbs: Iterable[dict] = (),
    name: str = "cluster",
    scheduler_name: str = "default-scheduler",
    resource_version: str | None = None,
    managed_resource: str | None = None,
) -> Snapshot:
    """The pod-packing instance of a cluster, and what the planner needs to act on it.

    With `managed_resource` (the extended resource of the scheduler's `managedResources`, which
    the scheduler ignores), only pods that request it are steered by the extender: a bound pod
    without it never moves, and the resource itself is no request of the instance."""
    node_entries = [node_entry(n) for n in nodes]
    node_names = {n["name"] for n in node_entries}
    live = [p for p in pods if not is_terminated(p)]
    pdb_list = list(pdbs)

    # PDBs: which pods each covers, and whether it allows a disruption now
    budgets: list[Budget] = []
    frozen: set[str] = set()
    covered_by: dict[str, int] = {}
    for pdb in pdb_list:
        ns = meta(pdb).get("namespace") or "default"
        selector = (pdb.get("spec") or {}).get("selector")
        covered = [
            pod_key(p)
            for p in live
            if (meta(p).get("namespace") or "default") == ns
            and selector_matches(selector, meta(p).get("labels") or {})
        ]
        allowed = int((pdb.get("status") or {}).get("disruptionsAllowed") or 0)
        budgets.append(Budget(f"{ns}/{meta(pdb).get('name')}", allowed, covered))
        if allowed <= 0:
            frozen.update(covered)
        for k in covered:
            covered_by[k] = covered_by.get(k, 0) + 1
    frozen.update(k for k, n in covered_by.items() if n > 1)  # the Eviction API refuses those (500)

    entries, infos, skipped = [], {}, {}
    for p in live:
        key = pod_key(p)
        spec = p.get("spec") or {}
        node = spec.get("nodeName") or None
        if node is not None and node not in node_names:
            skipped[key] = f"bound to unknown node {node}"
            continue
        if node is None and (spec.get("schedulerName") or "default-scheduler") != scheduler_name:
            skipped[key] = f"pending for another scheduler ({spec.get('schedulerName')})"
            continue
        affinity, why_not = node_affinity(p)
        reason = never_moves(p) if node is not None else None
        if why_not is not None:
            if node is None:
                skipped[key] = why_not
                continue
            reason = reason or why_not
        requests = pod_requests(p)
        if managed_resource and requests.pop(managed_resource, None) is None and node is not None:
            reason = reason or f"does not request {managed_resource} (the extender never sees it)"
        if node is not None and key in frozen:
            reason = reason or (
                "more than one PodDisruptionBudget covers it"
                if covered_by.get(key, 0) > 1
                else "its PodDisruptionBudget allows no disruption"
            )
        entry: dict[str, Any] = {
            "name": key,
            "requests": requests,
            "priority": int(spec.get("priority") or 0),
            "node": node,
        }
        if reason is not None:
            entry["movable"] = False
        if spec.get("nodeSelector"):
            entry["node_selector"] = dict(spec["nodeSelector"])
        if affinity is not None:
            entry["node_affinity"] = affinity
        tols = tolerations(p)
        if tols:
            entry["tolerations"] = tols
        owner = owner_of(p)
        if owner:
            entry["owner"] = owner
        entries.append(entry)
        m = meta(p)
        infos[key] = PodInfo(
            key,
            m.get("namespace") or "default",
            m.get("name"),
            m.get("uid"),
            node,
            entry["priority"],
            owner,
            reason is None,
            is_unschedulable(p),
            dict(m.get("labels") or {}),
        )
    instance = {"problem": "pod-packing", "name": name, "nodes": node_entries, "pods": entries}
    return Snapshot(instance, infos, budgets, skipped, resource_version)


def split_list(items: Iterable[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """`kubectl get nodes,pods,pdb -A -o json` (a v1 List) -> nodes, pods, PDBs."""
    nodes, pods, pdbs = [], [], []
    for obj in items:
        kind = obj.get("kind")
        if kind == "Node":
            nodes.append(obj)
        elif kind == "Pod":
            pods.append(obj)
        elif kind == "PodDisruptionBudget":
            pdbs.append(obj)
        elif kind == "List" or "items" in obj:
            a, b, c = split_list(obj.get("items") or [])
            nodes += a
            pods += b
            pdbs += c
        else:
            raise InputError(
                f"field 'kind': cannot use a {kind!r} object in a cluster dump "
                f"(expected Node, Pod, PodDisruptionBudget or List)"
            )
    return nodes, pods, pdbs
