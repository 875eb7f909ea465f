"""Pod packing: Kubernetes pods with resource requests and priorities onto nodes with capacities.

Nodes have capacities, labels, taints and an `unschedulable` flag; pods have requests, a priority,
their current node (`null` = pending), `movable`, a node selector, required node affinity,
tolerations and an owner. Quantities are integers (millicores for cpu, bytes or counts otherwise)
or Kubernetes quantity strings ("500m", "8Gi"). A solution maps every pod name to a node name or
`null`.

Objective (minimise, a list compared lexicographically), in the order the instance's `objective`
field names (terms defined in `optkit.problems.pod_objective`):
- "per-tier" (default; the Priority Matters solver's order): for each priority p from the highest,
  -(pods placed with priority >= p), then the disruption of running pods with priority >= p
  (an eviction costs 1, a move 2);
- "placement-first": -(pods placed with priority >= p) for each p from the highest, then evictions
  (a pod with a current node left unassigned), then moves (assigned to another node).

Rules a placement must respect:
- resources: per node and resource, the sum of the requests of the pods on it is at most the
  capacity (a resource the node does not list has capacity 0; if the node lists "pods", every pod
  uses 1 of it whether or not its requests say so);
- eligibility (`eligible`): node schedulable, node selector and required node affinity satisfied,
  every NoSchedule / NoExecute taint tolerated;
- a pod that is already running on a node may stay there even if that node has since become
  ineligible for it (cordoned, a NoSchedule taint, changed labels: Kubernetes' "IgnoredDuringExecution"),
  unless the node has a NoExecute taint it does not tolerate;
- non-movable pods stay on their current node.
"""

from __future__ import annotations

import json
import math
import random
import re
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from optkit.errors import InputError
from optkit.k8s.quantity import resource_amount
from optkit.problem import CheckReport, Int, Model, NonNegInt, Problem
from optkit.problems import pod_objective
from optkit.registry import GeneratorOption as Opt
from optkit.registry import generator, importer

#: kube-scheduler's defaults for a pod that does not request cpu / memory (used for scoring only)
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024


def _amounts(value: object) -> object:
    """Kubernetes quantity strings -> integers (millicores for cpu); integers pass unchanged."""
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        try:
            out[k] = resource_amount(k, v) if isinstance(v, str) else v
        except InputError as e:  # pydantic adds the field's location
            raise ValueError(str(e).replace(f"field '{k}': ", f"{k}: ", 1)) from None
    return out


class Taint(Model):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "NoExecute", "PreferNoSchedule"]


class Toleration(Model):
    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    effect: str | None = None

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.key is None or self.key == "":
            # an empty key with Exists tolerates every taint
            return self.operator == "Exists"
        if self.key != taint.key:
            return False
        return self.operator == "Exists" or self.value == taint.value


class Requirement(Model):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values  # NotIn


class Node(Model):
    name: str = Field(min_length=1)
    capacity: dict[str, NonNegInt] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False

    @field_validator("capacity", mode="before")
    @classmethod
    def _quantities(cls, value: object) -> object:
        return _amounts(value)


class Pod(Model):
    name: str = Field(min_length=1)
    requests: dict[str, NonNegInt] = Field(default_factory=dict)
    priority: Int = 0
    node: str | None = None
    movable: bool = True
    node_selector: dict[str, str] = Field(default_factory=dict)
    node_affinity: tuple[tuple[Requirement, ...], ...] | None = None
    tolerations: tuple[Toleration, ...] = ()
    owner: str | None = None

    @field_validator("requests", mode="before")
    @classmethod
    def _quantities(cls, value: object) -> object:
        return _amounts(value)


class PodPackingSolution(Model):
    assignment: dict[str, str | None]


#: seconds per pod of checking an answer (measured: 3 us at 40,000 pods on an idle core, about twice
#: that under load), left out of the solver's window: 0.2 s of 1 s at 5,000 nodes x 40,000 pods
ANSWER_SECONDS_PER_POD = 5e-6


class PodPacking(Problem):
    """Pods onto nodes; placed pods and disruption, priority tier by tier, in the `objective` order."""

    kind = "pod-packing"
    Solution = PodPackingSolution

    problem: str = "pod-packing"
    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    objective: Literal["per-tier", "placement-first"] = "per-tier"

    @model_validator(mode="after")
    def _consistent(self) -> PodPacking:
        seen: dict[str, int] = {}
        for j, node in enumerate(self.nodes):
            if node.name in seen:
                raise ValueError(
                    f"field 'nodes.{j}.name': duplicate node name '{node.name}' (also nodes.{seen[node.name]})"
                )
            seen[node.name] = j
        pods_seen: dict[str, int] = {}
        for i, pod in enumerate(self.pods):
            if pod.name in pods_seen:
                raise ValueError(
                    f"field 'pods.{i}.name': duplicate pod name '{pod.name}' (also pods.{pods_seen[pod.name]})"
                )
            pods_seen[pod.name] = i
            if pod.node is not None and pod.node not in seen:
                raise ValueError(f"field 'pods.{i}.node': '{pod.node}' names no node")
            if not pod.movable and pod.node is None:
                raise ValueError(
                    f"field 'pods.{i}.movable': a non-movable pod must have a current node "
                    f"(pod '{pod.name}' is pending)"
                )
            if pod.node_affinity is not None and len(pod.node_affinity) == 0:
                raise ValueError(
                    f"field 'pods.{i}.node_affinity': an empty list of terms matches no node "
                    f"(use null for no affinity)"
                )
        return self

    # -- derived data -------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_pods(self) -> int:
        return len(self.pods)

    @cached_property
    def node_index(self) -> dict[str, int]:
        return {n.name: j for j, n in enumerate(self.nodes)}

    @cached_property
    def pod_index(self) -> dict[str, int]:
        return {p.name: i for i, p in enumerate(self.pods)}

    @cached_property
    def resources(self) -> tuple[str, ...]:
        """Every resource named by a node or a pod ("pods" included when some node limits it)."""
        names: dict[str, None] = {}
        for node in self.nodes:
            names.update(dict.fromkeys(node.capacity))
        for pod in self.pods:
            names.update(dict.fromkeys(pod.requests))
        return tuple(names)

    def request(self, i: int, resource: str) -> int:
        """What pod i uses of `resource` (1 of "pods" always)."""
        if resource == "pods":
            return 1
        return self.pods[i].requests.get(resource, 0)

    def capacity(self, j: int, resource: str) -> int | None:
        """Capacity of node j; None means unlimited (only "pods" when the node does not list it)."""
        cap = self.nodes[j].capacity
        if resource == "pods" and "pods" not in cap:
            return None
        return cap.get(resource, 0)

    @cached_property
    def request_matrix(self) -> list[list[int]]:
        """requests[i][r] over `self.resources`."""
        R = self.resources
        return [[1 if r == "pods" else pod.requests.get(r, 0) for r in R] for pod in self.pods]

    @cached_property
    def capacity_matrix(self) -> list[list[int | None]]:
        R = self.resources
        return [[self.capacity(j, r) for r in R] for j in range(self.n_nodes)]

    @cached_property
    def capacity_array(self):
        """`capacity_matrix` as a nodes x resources int64 NumPy array, no limit as int64's max."""
        import numpy as np

        big = np.iinfo(np.int64).max
        rows = [[big if c is None else c for c in row] for row in self.capacity_matrix]
        return np.array(rows, dtype=np.int64).reshape(self.n_nodes, len(self.resources))

    @cached_property
    def priorities(self) -> tuple[int, ...]:
        """Distinct pod priorities, highest first: one objective tier each."""
        return tuple(sorted({p.priority for p in self.pods}, reverse=True))

    @cached_property
    def priority_level(self) -> tuple[int, ...]:
        """Index of each pod's priority in `priorities` (0 = the highest)."""
        level = {p: k for k, p in enumerate(self.priorities)}
        return tuple(level[p.priority] for p in self.pods)

    @cached_property
    def current(self) -> tuple[int | None, ...]:
        """Current node index of each pod (None = pending)."""
        return tuple(None if p.node is None else self.node_index[p.node] for p in self.pods)

    # -- eligibility --------------------------------------------------------------------------
    def _static_ok(self, pod: Pod, node: Node) -> bool:
        if node.unschedulable:
            return False
        for key, value in pod.node_selector.items():
            if node.labels.get(key) != value:
                return False
        if pod.node_affinity is not None:
            if not any(all(req.matches(node.labels) for req in term) for term in pod.node_affinity):
                return False
        for taint in node.taints:
            if taint.effect in ("NoSchedule", "NoExecute") and not any(
                t.tolerates(taint) for t in pod.tolerations
            ):
                return False
        return True

    @staticmethod
    def _signature(pod: Pod) -> str:
        if not pod.node_selector and pod.node_affinity is None and not pod.tolerations:
            return ""  # most pods: no constraint at all
        return json.dumps(
            [pod.node_selector, pod.model_dump(include={"node_affinity", "tolerations"})],
            sort_keys=True,
            default=str,
        )

    @cached_property
    def eligible_by_signature(self) -> dict[str, tuple[bool, ...]]:
        """Per pod signature, whether a pod of it may newly start on each node (not resources)."""
        table: dict[str, tuple[bool, ...]] = {}
        for pod, sig in zip(self.pods, self.pod_signature):
            if sig not in table:
                table[sig] = tuple(self._static_ok(pod, node) for node in self.nodes)
        return table

    @cached_property
    def pod_signature(self) -> tuple[str, ...]:
        """Per pod, the key of its scheduling constraints: pods with one signature may go to the
        same nodes ("" for a pod with none)."""
        return tuple(self._signature(p) for p in self.pods)

    def eligible(self, pod_index: int, node_index: int) -> bool:
        """May pod i be newly scheduled onto node j? (unschedulable, selector, affinity, taints; not resources)"""
        return self.eligible_by_signature[self.pod_signature[pod_index]][node_index]

    def may_stay(self, pod_index: int, node_index: int) -> bool:
        """May pod i remain on node j where it runs now? (only an untolerated NoExecute taint forbids it)"""
        pod = self.pods[pod_index]
        if self.current[pod_index] != node_index:
            return False
        if not pod.movable:
            return True
        return all(
            any(t.tolerates(taint) for t in pod.tolerations)
            for taint in self.nodes[node_index].taints
            if taint.effect == "NoExecute"
        )

    @cached_property
    def staying(self) -> tuple[int | None, ...]:
        """Per pod, its current node if it may stay there (`may_stay`), else None; `may_stay` is asked
        only on the nodes with a NoExecute taint."""
        no_execute = {
            j for j, n in enumerate(self.nodes) if any(t.effect == "NoExecute" for t in n.taints)
        }
        return tuple(
            j if j is not None and (j not in no_execute or self.may_stay(i, j)) else None
            for i, j in enumerate(self.current)
        )

    def allowed(self, pod_index: int, node_index: int) -> bool:
        """May pod i be on node j in a solution (eligibility, staying, movability; not resources)?"""
        cur = self.current[pod_index]
        if not self.pods[pod_index].movable:
            return node_index == cur
        return self.eligible(pod_index, node_index) or (
            cur == node_index and self.may_stay(pod_index, node_index)
        )

    @cached_property
    def candidates(self) -> tuple[tuple[int, ...], ...]:
        """For each pod, the nodes it may be on in some solution (allowed and fits on the empty node)."""
        import numpy as np

        if not self.n_nodes:
            return tuple(() for _ in self.pods)
        caps = self.capacity_array
        by_req: dict[tuple[int, ...], object] = {}
        by_sig: dict[str, object] = {}
        out = []
        for i in range(self.n_pods):
            req = tuple(self.request_matrix[i])
            fits = by_req.get(req)
            if fits is None:
                fits = by_req[req] = np.all(caps >= np.array(req, dtype=np.int64), axis=1)
            sig = self.pod_signature[i]
            elig = by_sig.get(sig)
            if elig is None:
                elig = by_sig[sig] = np.array(self.eligible_by_signature[sig], dtype=bool)
            pod, cur = self.pods[i], self.current[i]
            if not pod.movable:
                out.append((cur,) if fits[cur] else ())
                continue
            mask = fits & elig
            if cur is not None and not mask[cur] and fits[cur] and self.may_stay(i, cur):
                mask = mask.copy()
                mask[cur] = True
            out.append(tuple(np.flatnonzero(mask).tolist()))
        return tuple(out)

    def identical_nodes(self, exclude: set[int] | frozenset[int] = frozenset()) -> list[list[int]]:
        """Classes (two nodes or more) of nodes outside `exclude` that no pod can tell apart: the same
        capacity, labels, taints and cordon. Swapping two of them changes no placement count."""
        classes: dict[tuple, list[int]] = {}
        for j, node in enumerate(self.nodes):
            if j not in exclude:
                key = (
                    tuple(self.capacity_matrix[j]),
                    tuple(sorted(node.labels.items())),
                    node.taints,
                    node.unschedulable,
                )
                classes.setdefault(key, []).append(j)
        return [members for members in classes.values() if len(members) > 1]

    # -- objective ----------------------------------------------------------------------------
    @cached_property
    def objective_terms(self) -> tuple[pod_objective.Term, ...]:
        """The terms of the objective list, in order (see `optkit.problems.pod_objective`)."""
        return pod_objective.terms_of(self.priorities, self.objective)

    @property
    def objective_names(self) -> list[str]:
        return [t.name for t in self.objective_terms]

    def objective_of(self, where: list[int | None] | tuple[int | None, ...]) -> list[int]:
        """The lexicographic objective of a placement given as node index (or None) per pod."""
        return pod_objective.objective(self, where)

    def to_solution(self, where: list[int | None] | tuple[int | None, ...]) -> dict:
        return {
            "assignment": {
                pod.name: (None if j is None else self.nodes[j].name)
                for pod, j in zip(self.pods, where)
            }
        }

    def placement_of(self, solution: dict | PodPackingSolution) -> list[int | None]:
        """Node index (or None) per pod from a solution (assumed well formed)."""
        a = (
            solution.assignment
            if isinstance(solution, PodPackingSolution)
            else solution["assignment"]
        )
        return [None if a.get(p.name) is None else self.node_index[a[p.name]] for p in self.pods]

    def current_solution(self) -> dict:
        """The current placement (the pods' `node` fields) as a solution dict."""
        return self.to_solution(self.current)

    def evaluate_current(self) -> CheckReport:
        """Check the current placement as a solution (it may be infeasible, e.g. overcommitted nodes)."""
        return self.check(self.current_solution())

    # -- checker ------------------------------------------------------------------------------
    def answer_seconds(self) -> float:
        return ANSWER_SECONDS_PER_POD * self.n_pods

    def evaluate(self, solution: PodPackingSolution) -> CheckReport:
        a = solution.assignment
        violations: list[str] = []
        unknown = [name for name in a if name not in self.pod_index]
        if unknown:
            violations.append(f"assignment names unknown pods {unknown[:5]}")
        missing = [p.name for p in self.pods if p.name not in a]
        if missing:
            violations.append(
                f"assignment misses pods {missing[:5]} (give null for an unplaced pod)"
            )
        bad_nodes = sorted({v for v in a.values() if v is not None and v not in self.node_index})
        if bad_nodes:
            violations.append(f"assignment names unknown nodes {bad_nodes[:5]}")
        if violations:
            return CheckReport.infeasible(*violations)
        where = self.placement_of(solution)
        for i, j in enumerate(where):
            pod = self.pods[i]
            if not pod.movable and j != self.current[i]:
                violations.append(f"pod '{pod.name}' is not movable: it must stay on '{pod.node}'")
            elif j is not None and not self.allowed(i, j):
                violations.append(
                    f"pod '{pod.name}' may not run on node '{self.nodes[j].name}' "
                    f"(selector, affinity, taints or unschedulable)"
                )
        R = self.resources
        used = [[0] * len(R) for _ in self.nodes]
        for i, j in enumerate(where):
            if j is not None:
                row = used[j]
                for r, q in enumerate(self.request_matrix[i]):
                    row[r] += q
        for j, row in enumerate(used):
            for r, q in enumerate(row):
                c = self.capacity_matrix[j][r]
                if c is not None and q > c:
                    violations.append(
                        f"node '{self.nodes[j].name}': {R[r]} requested {q} > capacity {c}"
                    )
        metrics = self._metrics(where, used)
        if violations:
            return CheckReport.infeasible(*violations[:20], metrics=metrics)
        return CheckReport(True, self.objective_of(where), metrics)

    def _metrics(self, where: list[int | None], used: list[list[int]]) -> dict:
        placed = {str(p): 0 for p in self.priorities}
        pending = {str(p): 0 for p in self.priorities}
        evictions = moves = 0
        for i, j in enumerate(where):
            key = str(self.pods[i].priority)
            (placed if j is not None else pending)[key] += 1
            cur = self.current[i]
            if cur is not None and j is None:
                evictions += 1
            elif cur is not None and j != cur:
                moves += 1
        util = {}
        for r, name in enumerate(self.resources):
            caps = [self.capacity_matrix[j][r] for j in range(self.n_nodes)]
            if any(c is None for c in caps):
                continue
            total = sum(caps)
            if total > 0:
                util[name] = round(sum(row[r] for row in used) / total, 6)
        return {
            "placed": sum(placed.values()),
            "pending": sum(pending.values()),
            "placed_by_priority": placed,
            "pending_by_priority": pending,
            "evictions": evictions,
            "moves": moves,
            "utilisation": util,
        }


# -- instance generator (the "Priority Matters" evaluation) -------------------------------------

_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated name suffixes


def node_size(requests: list[int], n_nodes: int, util: float | Fraction | str) -> int:
    """max(largest request, ceil(ceil(total / util) / N)), computed exactly (util as a decimal)."""
    u = Fraction(str(util)) if not isinstance(util, Fraction) else util
    total = sum(requests)
    need = math.ceil(Fraction(total) / u)
    return max(max(requests, default=0), -(-need // n_nodes))


def creation_order(problem: PodPacking) -> list[int]:
    """Pod indices in ReplicaSet creation order: numeric `rs-<idx>` of the name (or owner), then file order."""

    def key(i: int) -> tuple[int, int]:
        pod = problem.pods[i]
        m = re.match(r"rs-(\d+)-", pod.owner.split("/", 1)[-1] if pod.owner else pod.name)
        return (int(m.group(1)) if m else 0, i)

    return sorted(range(problem.n_pods), key=key)


GENERATOR_OPTIONS = {
    "seed": Opt("Random seed: each seed gives another instance."),
    "nodes": Opt("Number of identical nodes.", unit="nodes"),
    "pods_per_node": Opt(
        "Pods per node: the instance has nodes x pods_per_node pods.", unit="pods"
    ),
    "priorities": Opt(
        "Number of priority levels K; each ReplicaSet draws its priority in 1..K.", unit="levels"
    ),
    "util": Opt(
        "Target utilisation: nodes are sized so that all requests fill this share of the cluster "
        "(above 1: more is requested than fits, so some pods must stay pending).",
        unit="fraction of capacity",
    ),
    "before": Opt(
        "Start from kube-default's placement of the pods in creation order (false: every pod "
        "pending, nothing placed yet).",
        choices=("true", "false"),
    ),
}


@generator("pod-packing", GENERATOR_OPTIONS)
def generate(
    seed: int = 0,
    nodes: int = 4,
    pods_per_node: int = 4,
    priorities: int = 1,
    util: float = 1.0,
    before: bool = True,
) -> PodPacking:
    """The paper's generator: ReplicaSets (cpu U[100,1000] m, memory U[100,1000] MB, 1-4 replicas,
    priority U{1..K}) until N * pods_per_node pods exist; N identical nodes sized per resource as
    max(largest request, ceil(ceil(total / util) / N)); the current state is kube-default's placement
    in creation order without preemption (`before=false`: every pod pending)."""
    if nodes < 1 or pods_per_node < 1 or priorities < 1 or not util > 0:
        raise InputError(
            "generate pod-packing: need nodes, pods_per_node, priorities >= 1 and util > 0"
        )
    rng = random.Random(seed)
    total = nodes * pods_per_node
    width = max(2, len(str(total)))
    pods: list[dict] = []
    rs = 0
    while len(pods) < total:
        rs += 1
        cpu = rng.randint(100, 1000)
        mem = rng.randint(100_000_000, 1_000_000_000)
        replicas = min(rng.randint(1, 4), total - len(pods))
        prio = rng.randint(1, priorities)
        owner = f"rs-{rs:0{width}d}-p{prio}"
        for _ in range(replicas):
            suffix = "".join(rng.choice(_SUFFIX) for _ in range(5))
            pods.append(
                {
                    "name": f"{owner}-{suffix}",
                    "requests": {"cpu": cpu, "memory": mem},
                    "priority": prio,
                    "owner": f"ReplicaSet/{owner}",
                }
            )
    cpu_cap = node_size([p["requests"]["cpu"] for p in pods], nodes, util)
    mem_cap = node_size([p["requests"]["memory"] for p in pods], nodes, util)
    node_list = [
        {"name": f"node-{j + 1}", "capacity": {"cpu": cpu_cap, "memory": mem_cap}}
        for j in range(nodes)
    ]
    name = f"gen_n{nodes}_ppn{pods_per_node}_k{priorities}_u{util}_s{seed}"
    problem = PodPacking(name=name, nodes=node_list, pods=pods)
    if before:
        from optkit.solve import solve  # the kube-default solver, through the facade

        placed = solve(problem, "kube-default", order="arrival", preemption=False)
        problem = with_placement(problem, problem.placement_of(placed.solution))
    return problem


def with_placement(problem: PodPacking, where: list[int | None]) -> PodPacking:
    """A copy of `problem` whose pods' `node` fields are `where` (node index or None per pod)."""
    data = problem.to_dict()
    for pod, j in zip(data["pods"], where):
        if j is None:
            pod.pop("node", None)
        else:
            pod["node"] = problem.nodes[j].name
    return PodPacking.model_validate(data)


# -- importer: the KWOK runs of the paper ---------------------------------------------------------


def read_kwok(path: Path) -> list[tuple[PodPacking, dict]]:
    """instances.jsonl -> (instance with the real scheduler's placement as current state, row metadata).

    Pods are written in creation order (ReplicaSet index numerically, then file order)."""
    out = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            nodes = [
                {"name": n["name"], "capacity": {"cpu": n["cpu_m"], "memory": n["mem_b"]}}
                for n in row["nodes"]
            ]
            raw = row["pods"]

            def rs_index(k: int, raw: list = raw) -> tuple[int, int]:
                m = re.match(r"rs-(\d+)-", raw[k]["name"])
                return (int(m.group(1)) if m else 0, k)

            pods = []
            for k in sorted(range(len(raw)), key=rs_index):
                p = raw[k]
                owner = re.match(r"(rs-\d+-p\d+)", p["name"])
                pod = {
                    "name": p["name"],
                    "requests": {"cpu": p["cpu_m"], "memory": p["mem_b"]},
                    "priority": int(p["priority"]),
                    "owner": f"ReplicaSet/{owner.group(1)}" if owner else None,
                }
                if p.get("node"):
                    pod["node"] = p["node"]
                pods.append(pod)
            name = f"kwok_{row['combo']}_r{row.get('row_index', lineno)}"
            meta = {k: v for k, v in row.items() if k not in ("nodes", "pods")}
            out.append((PodPacking(name=name, nodes=nodes, pods=pods), meta))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}:{lineno}: not a KWOK pod-packing row: {e}") from None
    return out


@importer("kwok")
def import_kwok(source: Path) -> list[PodPacking]:
    return [inst for inst, _ in read_kwok(Path(source))]
