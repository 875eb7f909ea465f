"""An in-memory cluster that behaves like the API server where optkit depends on it.

It implements `ClusterAPI` (lists with resource versions, pod watches, the Eviction API) and adds
stand-ins for the controllers that matter to a re-pack:

- the Eviction API with PodDisruptionBudget semantics: a pending or terminating pod is deleted
  without looking at budgets; otherwise every PDB of the pod must allow a disruption
  (`disruptionsAllowed`, computed like the disruption controller does), else 429; two PDBs on one
  pod is a 500, a missing pod 404, a uid precondition that no longer holds 409;
- evicted pods terminate gracefully: they keep their resources until `kubelet_step()` removes them;
- ReplicaSets: a pod that goes away is replaced by a new pod with a new generated name;
- `schedule()`: a small kube-scheduler (resources, node selector, node affinity, taints,
  cordoned nodes; pods by priority) that asks a scheduler extender (`filter`, `prioritize`), in
  either nodeCacheCapable mode, exactly as kube-scheduler does over HTTP;
- faults: `fail("evict", 500)` makes the next call of that operation fail with that status.

It is deliberately independent of the pod-packing checker, so that tests compare two codes.
"""

from __future__ import annotations

import copy
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from optkit.k8s.api import ApiError
from optkit.k8s.quantity import resource_amount
from optkit.k8s.snapshot import controller_of, meta, pod_requests, selector_matches

#: (verb, ExtenderArgs JSON dict) -> ExtenderFilterResult / HostPriorityList JSON
ExtenderFn = Callable[[str, dict], Any]

_REASONS = {
    404: "NotFound",
    409: "Conflict",
    410: "Gone",
    429: "TooManyRequests",
    500: "InternalError",
}


def _error(status: int, message: str) -> ApiError:
    return ApiError(status, _REASONS.get(status, "Error"), message)


def _tolerated(taint: dict, tolerations: list[dict]) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t["key"] == taint.get("key") and (
            op == "Exists" or (t.get("value") or "") == (taint.get("value") or "")
        ):
            return True
    return False


def _term_matches(term: dict, labels: dict) -> bool:
    for e in term.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op in ("Gt", "Lt"):
            try:
                v, bound = int(labels[key]), int(values[0])
            except (KeyError, ValueError, IndexError):
                return False
            if (op == "Gt" and not v > bound) or (op == "Lt" and not v < bound):
                return False
    return True


class FakeCluster:
    """In-memory nodes, pods, ReplicaSets and PDBs behind the `ClusterAPI` interface."""

    def __init__(
        self,
        extender: ExtenderFn | None = None,
        node_cache_capable: bool = True,
        extender_ignorable: bool = True,
        seed: int = 0,
        history: int = 10_000,
    ):
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._rv = 1000
        self._uid = itertools.count(1)
        self._order = itertools.count()
        self._rng = random.Random(seed)
        self.nodes: dict[str, dict] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.pdbs: dict[tuple[str, str], dict] = {}
        self.replicasets: dict[tuple[str, str], dict] = {}
        self._events: list[tuple[int, str, dict]] = []
        self._history = history
        self._oldest = self._rv  # events before this resourceVersion are compacted away (410)
        self._faults: dict[str, list[ApiError]] = {}
        self.calls: list[tuple[str, str]] = []  # (operation, argument) log
        self.extender = extender
        self.node_cache_capable = node_cache_capable
        self.extender_ignorable = extender_ignorable
        self.extender_errors: list[str] = []
        self._usage_cache: dict[str, dict[str, int]] | None = None  # during one scheduling pass

    # -- bookkeeping ------------------------------------------------------------------------------
    def _bump(self, obj: dict) -> None:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)

    def _emit(self, kind: str, pod: dict) -> None:
        self._events.append((self._rv, kind, copy.deepcopy(pod)))
        if len(self._events) > self._history:
            drop = len(self._events) - self._history
            self._oldest = self._events[drop - 1][0]
            del self._events[:drop]
        self._changed.notify_all()

    def fail(
        self, operation: str, status: int, times: int = 1, message: str = "injected fault"
    ) -> None:
        """Make the next `times` calls of `operation` (list_nodes, list_pods, list_pdbs, get_node,
        evict, watch_pods) fail with `status`."""
        with self._lock:
            self._faults.setdefault(operation, []).extend(
                _error(status, message) for _ in range(times)
            )

    def _fault(self, operation: str, arg: str = "") -> None:
        self.calls.append((operation, arg))
        queue = self._faults.get(operation)
        if queue:
            raise queue.pop(0)

    # -- building a cluster ----------------------------------------------------------------------
    def add_node(
        self,
        name: str,
        cpu: str = "4",
        memory: str = "16Gi",
        pods: int = 110,
        labels: dict | None = None,
        taints: list[dict] | None = None,
        unschedulable: bool = False,
        extra: dict | None = None,
    ) -> dict:
        alloc = {"cpu": cpu, "memory": memory, "pods": str(pods), **(extra or {})}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "uid": f"node-{next(self._uid):06d}",
                "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            },
            "spec": {"taints": list(taints or []), "unschedulable": unschedulable},
            "status": {
                "allocatable": alloc,
                "capacity": dict(alloc),
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        with self._lock:
            self._bump(node)
            self.nodes[name] = node
        return node

    def pod_object(
        self,
        name: str,
        namespace: str = "default",
        cpu: str | None = "100m",
        memory: str | None = "128Mi",
        priority: int = 0,
        labels: dict | None = None,
        owner: tuple[str, str] | None = None,
        node_selector: dict | None = None,
        tolerations: list[dict] | None = None,
        affinity: dict | None = None,
        annotations: dict | None = None,
        extra_requests: dict | None = None,
    ) -> dict:
        """A pod as the API server would store it after admission (priority resolved)."""
        requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
        requests.update(extra_requests or {})
        m: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
        }
        if owner:
            m["ownerReferences"] = [
                {
                    "apiVersion": "apps/v1",
                    "kind": owner[0],
                    "name": owner[1],
                    "uid": f"owner-{owner[1]}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        spec: dict[str, Any] = {
            "containers": [
                {
                    "name": "main",
                    "image": "registry.k8s.io/pause:3.9",
                    "resources": {"requests": requests},
                }
            ],
            "priority": priority,
            "schedulerName": "default-scheduler",
            "tolerations": list(tolerations or []),
        }
        if node_selector:
            spec["nodeSelector"] = dict(node_selector)
        if affinity:
            spec["affinity"] = affinity
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": m,
            "spec": spec,
            "status": {"phase": "Pending", "conditions": []},
        }

    def create_pod(self, pod: dict, node: str | None = None) -> dict:
        """Create a pod (409 if the name is taken); `node` binds it and marks it Running."""
        with self._lock:
            key = (meta(pod).get("namespace") or "default", meta(pod)["name"])
            if key in self.pods:
                raise _error(409, f'pods "{key[1]}" already exists')
            pod = copy.deepcopy(pod)
            pod["metadata"]["uid"] = f"pod-{next(self._uid):06d}"
            pod["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:00Z#{next(self._order):06d}"
            if node is not None:
                self._bind(pod, node)
            self._bump(pod)
            self.pods[key] = pod
            self._emit("ADDED", pod)
            return copy.deepcopy(pod)

    def add_pod(self, name: str, node: str | None = None, **kwargs: Any) -> dict:
        return self.create_pod(self.pod_object(name, **kwargs), node)

    def add_replicaset(
        self,
        name: str,
        replicas: int,
        namespace: str = "default",
        nodes: list[str | None] | None = None,
        **pod_kwargs: Any,
    ) -> list[dict]:
        """A ReplicaSet and its pods (`nodes[i]`: where replica i runs now, None = pending)."""
        labels = {"app": name, **(pod_kwargs.pop("labels", None) or {})}
        template = self.pod_object(
            "template", namespace=namespace, labels=labels, owner=("ReplicaSet", name), **pod_kwargs
        )
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": namespace, "uid": f"owner-{name}"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}},
            "template": template,
        }
        with self._lock:
            self._bump(rs)
            self.replicasets[(namespace, name)] = rs
            nodes = list(nodes or []) + [None] * (replicas - len(nodes or []))
            return [self._new_replica(rs, node) for node in nodes[:replicas]]

    def _new_replica(self, rs: dict, node: str | None = None) -> dict:
        pod = copy.deepcopy(rs["template"])
        name = meta(rs)["name"]
        while True:
            suffix = "".join(self._rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
            if (meta(rs)["namespace"], f"{name}-{suffix}") not in self.pods:
                break
        pod["metadata"]["name"] = f"{name}-{suffix}"
        pod["metadata"]["generateName"] = f"{name}-"
        return self.create_pod(pod, node)

    def add_pdb(
        self,
        name: str,
        match_labels: dict,
        namespace: str = "default",
        min_available: int | str | None = None,
        max_unavailable: int | str | None = None,
    ) -> dict:
        spec: dict[str, Any] = {"selector": {"matchLabels": dict(match_labels)}}
        if min_available is not None:
            spec["minAvailable"] = min_available
        if max_unavailable is not None:
            spec["maxUnavailable"] = max_unavailable
        pdb = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
            "status": {},
        }
        with self._lock:
            self._bump(pdb)
            self.pdbs[(namespace, name)] = pdb
        return pdb

    # -- mutations a test may make -------------------------------------------------------------
    def replace_pod(self, pod: dict) -> dict:
        """Update with optimistic concurrency: 409 when `metadata.resourceVersion` is stale."""
        with self._lock:
            key = (meta(pod).get("namespace") or "default", meta(pod)["name"])
            cur = self.pods.get(key)
            if cur is None:
                raise _error(404, f'pods "{key[1]}" not found')
            if meta(pod).get("resourceVersion") != meta(cur).get("resourceVersion"):
                raise _error(
                    409,
                    f'Operation cannot be fulfilled on pods "{key[1]}": the object has been '
                    f"modified; please apply your changes to the latest version and try again",
                )
            new = copy.deepcopy(pod)
            self._bump(new)
            self.pods[key] = new
            self._emit("MODIFIED", new)
            return copy.deepcopy(new)

    def delete_pod(self, namespace: str, name: str, grace: bool = False) -> None:
        with self._lock:
            pod = self.pods.get((namespace, name))
            if pod is None:
                raise _error(404, f'pods "{name}" not found')
            if grace and (pod.get("spec") or {}).get("nodeName"):
                pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
                self._bump(pod)
                self._emit("MODIFIED", pod)
            else:
                self._remove((namespace, name))
            self.replicaset_step()

    def _remove(self, key: tuple[str, str]) -> None:
        pod = self.pods.pop(key)
        self._bump(pod)
        self._emit("DELETED", pod)

    def cordon(self, node: str, unschedulable: bool = True) -> None:
        with self._lock:
            self.nodes[node]["spec"]["unschedulable"] = unschedulable
            self._bump(self.nodes[node])

    def delete_node(self, name: str) -> None:
        """The node object goes away; its pods are deleted at once (what PodGC does for pods of
        a node that no longer exists), and ReplicaSets replace them."""
        with self._lock:
            self.nodes.pop(name)
            self._rv += 1
            for key in [k for k, p in self.pods.items() if p["spec"].get("nodeName") == name]:
                self._remove(key)
            self.replicaset_step()

    # -- controllers -----------------------------------------------------------------------------
    def kubelet_step(self) -> int:
        """Terminating pods finish terminating and disappear; returns how many."""
        with self._lock:
            gone = [k for k, p in self.pods.items() if meta(p).get("deletionTimestamp")]
            for k in gone:
                self._remove(k)
            self.replicaset_step()
            return len(gone)

    def replicaset_step(self) -> list[dict]:
        """Each ReplicaSet creates pods until it has `replicas` that are not terminating."""
        created = []
        with self._lock:
            for (ns, name), rs in self.replicasets.items():
                active = [
                    p
                    for p in self.pods.values()
                    if (
                        meta(p).get("namespace") == ns
                        and not meta(p).get("deletionTimestamp")
                        and (controller_of(p) or {}).get("name") == name
                        and (controller_of(p) or {}).get("kind") == "ReplicaSet"
                    )
                ]
                for _ in range(rs["spec"]["replicas"] - len(active)):
                    created.append(self._new_replica(rs))
        return created

    def _usage(self) -> dict[str, dict[str, int]]:
        """Requests bound to each node (terminating pods included: they hold their resources)."""
        usage: dict[str, dict[str, int]] = {n: {"pods": 0} for n in self.nodes}
        for p in self.pods.values():
            node = (p.get("spec") or {}).get("nodeName")
            if node in usage:
                used = usage[node]
                used["pods"] += 1
                for r, v in pod_requests(p).items():
                    used[r] = used.get(r, 0) + v
        return usage

    def _used(self, node: str) -> dict[str, int]:
        if self._usage_cache is not None:
            return self._usage_cache[node]
        return self._usage()[node]

    def _fits(self, pod: dict, node: dict) -> bool:
        spec, labels = pod.get("spec") or {}, meta(node).get("labels") or {}
        if (node.get("spec") or {}).get("unschedulable"):
            return False
        if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
            return False
        req = (
            ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
        ) or {}
        terms = req.get("nodeSelectorTerms")
        if terms is not None and not any(_term_matches(t, labels) for t in terms):
            return False
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(
                taint, spec.get("tolerations") or []
            ):
                return False
        alloc = {r: resource_amount(r, v) for r, v in node["status"]["allocatable"].items()}
        used = self._used(meta(node)["name"])
        need = dict(pod_requests(pod))
        need["pods"] = 1
        return all(used.get(r, 0) + v <= alloc.get(r, 0) for r, v in need.items() if v)

    def _bind(self, pod: dict, node: str) -> None:
        pod["spec"]["nodeName"] = node
        pod["status"] = {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"},
            ],
        }

    def _ask_extender(self, pod: dict, names: list[str]) -> tuple[list[str], dict[str, int]] | None:
        """Filter and prioritize through the extender; None when it failed and is not ignorable."""
        if self.extender is None or not names:
            return names, {}
        if self.node_cache_capable:
            args: dict[str, Any] = {"Pod": pod, "Nodes": None, "NodeNames": names}
        else:
            args = {
                "Pod": pod,
                "Nodes": {"metadata": {}, "items": [self.nodes[n] for n in names]},
                "NodeNames": None,
            }
        args = copy.deepcopy(args)
        try:
            result = self.extender("filter", args)
            if result.get("Error"):
                raise RuntimeError(result["Error"])
            if self.node_cache_capable:
                kept = list(result.get("NodeNames") or [])
            else:
                kept = [meta(n)["name"] for n in ((result.get("Nodes") or {}).get("items") or [])]
            kept = [n for n in kept if n in names]
            args = copy.deepcopy(
                {**args, "NodeNames": kept}
                if self.node_cache_capable
                else {**args, "Nodes": {"metadata": {}, "items": [self.nodes[n] for n in kept]}}
            )
            scores = {h["Host"]: int(h["Score"]) for h in self.extender("prioritize", args) or []}
            return kept, scores
        except Exception as e:  # noqa: BLE001 - like kube-scheduler: an ignorable extender is skipped
            self.extender_errors.append(f"{type(e).__name__}: {e}")
            return (names, {}) if self.extender_ignorable else None

    def schedule(self) -> dict[str, str | None]:
        """One scheduling pass over pending pods, highest priority first; returns pod -> node or None."""
        placed: dict[str, str | None] = {}
        with self._lock:
            pending = [
                p
                for p in self.pods.values()
                if not p["spec"].get("nodeName")
                and not meta(p).get("deletionTimestamp")
                and p["spec"].get("schedulerName", "default-scheduler") == "default-scheduler"
            ]
            pending.sort(
                key=lambda p: (-int(p["spec"].get("priority") or 0), meta(p)["creationTimestamp"])
            )
            self._usage_cache = self._usage()
            try:
                self._schedule_pods(pending, placed)
            finally:
                self._usage_cache = None
        return placed

    def _schedule_pods(self, pending: list[dict], placed: dict[str, str | None]) -> None:
        for pod in pending:
            key = f"{meta(pod)['namespace']}/{meta(pod)['name']}"
            feasible = [n for n, node in sorted(self.nodes.items()) if self._fits(pod, node)]
            asked = self._ask_extender(pod, feasible)
            kept, scores = asked if asked is not None else ([], {})
            if kept:

                def rank(n: str, scores: dict = scores) -> tuple:
                    alloc = resource_amount("cpu", self.nodes[n]["status"]["allocatable"]["cpu"])
                    free = alloc - self._used(n).get("cpu", 0)
                    return (-scores.get(n, 0), -free, n)  # extender score, then least allocated

                node = min(kept, key=rank)
                used = self._usage_cache[node] if self._usage_cache is not None else {}
                used["pods"] = used.get("pods", 0) + 1
                for r, v in pod_requests(pod).items():
                    used[r] = used.get(r, 0) + v
                self._bind(pod, node)
                self._bump(pod)
                self._emit("MODIFIED", pod)
                placed[key] = node
            else:
                msg = (
                    f"0/{len(self.nodes)} nodes are available: {len(self.nodes) - len(feasible)} "
                    f"node(s) did not fit or match; {len(feasible) - len(kept)} rejected by the extender."
                )
                cond = {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": msg,
                }
                old = [
                    c
                    for c in pod["status"].get("conditions") or []
                    if c.get("type") == "PodScheduled"
                ]
                if (
                    not old
                    or old[0].get("reason") != "Unschedulable"
                    or old[0].get("message") != msg
                ):
                    pod["status"]["conditions"] = [
                        c
                        for c in pod["status"].get("conditions") or []
                        if c.get("type") != "PodScheduled"
                    ] + [cond]
                    self._bump(pod)
                    self._emit("MODIFIED", pod)
                placed[key] = None

    def settle(self, rounds: int = 5) -> None:
        """Let kubelets, ReplicaSets and the scheduler run until nothing changes (bounded)."""
        for _ in range(rounds):
            before = self._rv
            self.kubelet_step()
            self.replicaset_step()
            self.schedule()
            if self._rv == before:
                return

    # -- PDB status, as the disruption controller computes it ------------------------------------
    def _pdb_status(self, pdb: dict) -> dict:
        ns = meta(pdb)["namespace"]
        selector = pdb["spec"].get("selector")
        matching = [
            p
            for p in self.pods.values()
            if meta(p).get("namespace") == ns
            and selector_matches(selector, meta(p).get("labels") or {})
        ]
        healthy = sum(
            1
            for p in matching
            if p["spec"].get("nodeName")
            and not meta(p).get("deletionTimestamp")
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in p["status"].get("conditions") or []
            )
        )
        owners = {(controller_of(p) or {}).get("name") for p in matching}
        expected = 0
        for owner in owners:
            rs = self.replicasets.get((ns, owner)) if owner else None
            expected += (
                rs["spec"]["replicas"]
                if rs
                else sum(1 for p in matching if (controller_of(p) or {}).get("name") == owner)
            )

        def amount(v: int | str) -> int:
            if isinstance(v, str) and v.endswith("%"):
                return -(-int(v[:-1]) * expected // 100)  # rounded up, as the controller does
            return int(v)

        spec = pdb["spec"]
        if "minAvailable" in spec:
            desired = amount(spec["minAvailable"])
        elif "maxUnavailable" in spec:
            desired = max(0, expected - amount(spec["maxUnavailable"]))
        else:
            desired = expected
        return {
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "disruptionsAllowed": max(0, healthy - desired),
            "observedGeneration": 1,
        }

    # -- ClusterAPI -------------------------------------------------------------------------------
    def list_nodes(self) -> tuple[list[dict], str]:
        with self._lock:
            self._fault("list_nodes")
            return copy.deepcopy(list(self.nodes.values())), str(self._rv)

    def list_pods(self) -> tuple[list[dict], str]:
        with self._lock:
            self._fault("list_pods")
            return copy.deepcopy(list(self.pods.values())), str(self._rv)

    def list_pdbs(self) -> tuple[list[dict], str]:
        with self._lock:
            self._fault("list_pdbs")
            out = []
            for pdb in self.pdbs.values():
                pdb = copy.deepcopy(pdb)
                pdb["status"] = self._pdb_status(pdb)
                out.append(pdb)
            return out, str(self._rv)

    def get_node(self, name: str) -> dict:
        with self._lock:
            self._fault("get_node", name)
            node = self.nodes.get(name)
            if node is None:
                raise _error(404, f'nodes "{name}" not found')
            return copy.deepcopy(node)

    def get_pod(self, namespace: str, name: str) -> dict:
        with self._lock:
            self._fault("get_pod", f"{namespace}/{name}")
            pod = self.pods.get((namespace, name))
            if pod is None:
                raise _error(404, f'pods "{name}" not found')
            return copy.deepcopy(pod)

    def evict(self, namespace: str, name: str, uid: str | None = None) -> None:
        with self._lock:
            self._fault("evict", f"{namespace}/{name}")
            pod = self.pods.get((namespace, name))
            if pod is None:
                raise _error(404, f'pods "{name}" not found')
            if uid is not None and meta(pod).get("uid") != uid:
                raise _error(
                    409,
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{meta(pod).get('uid')}",
                )
            if meta(pod).get("deletionTimestamp"):
                return  # already terminating: the eviction is a no-op success
            running = bool(pod["spec"].get("nodeName")) and pod["status"].get("phase") == "Running"
            if running:
                labels = meta(pod).get("labels") or {}
                budgets = [
                    b
                    for (ns, _), b in self.pdbs.items()
                    if ns == namespace and selector_matches(b["spec"].get("selector"), labels)
                ]
                if len(budgets) > 1:
                    raise _error(
                        500,
                        "This pod has more than one PodDisruptionBudget, which the eviction "
                        "subresource does not support.",
                    )
                if budgets and self._pdb_status(budgets[0])["disruptionsAllowed"] <= 0:
                    raise _error(
                        429, "Cannot evict pod as it would violate the pod's disruption budget."
                    )
            self.delete_pod(namespace, name, grace=True)

    def watch_pods(
        self, resource_version: str | None, timeout_s: float
    ) -> Iterator[tuple[str, dict]]:
        self._fault("watch_pods", str(resource_version))
        deadline = time.monotonic() + timeout_s
        with self._lock:
            last = int(resource_version) if resource_version else self._rv
            if last < self._oldest:
                raise _error(410, f"too old resource version: {last} ({self._oldest})")
        while True:
            with self._lock:
                batch = [
                    (rv, kind, copy.deepcopy(obj)) for rv, kind, obj in self._events if rv > last
                ]
                if not batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self._changed.wait(min(left, 0.5))
                    continue
            for rv, kind, obj in batch:
                last = rv
                yield kind, obj
            if time.monotonic() >= deadline:
                return
