"""Trigger, plan, check, act: the controller of the fallback scheduler.

- Trigger: pods pending with `PodScheduled=False, reason=Unschedulable` (from a pod watch); a
  burst is debounced (`debounce` seconds of quiet, at most `max_delay` after the first event);
  one plan at a time (no new plan while the pins of the last one are live), and at most one plan
  per `cooldown` seconds.
- Plan: snapshot -> pod-packing instance -> `optkit.solve(..., time_limit=window, hard_limit=True,
  initial_solution=current placement)`. Only the answer's assignment is used: the problem's
  checker recomputes its objective, and every departure of a running pod that the checker does
  not need (the assignment is as good with the pod left home) is undone. Accepted only if it is
  better than the current placement by the problem's own comparison (`problem.better`), it
  respects every PodDisruptionBudget's `disruptionsAllowed` (if not, the excess pods are frozen
  and the solver runs again, `budget_retries` times), and it still holds on a fresh snapshot
  taken just before acting.
- Act: pins first (so that pods recreated at once are caught), then evictions through the
  Eviction API, node by node. Before each one, the node it frees and the pod's target node are
  read again: gone or changed aborts the plan and clears its pins. A 429 (a PDB), a 409 (the
  pod changed) or a persistent 5xx stops the plan; nothing already done is undone, and only the
  pins whose planned node was fully freed are kept. Pins expire after `plan_ttl` seconds, and
  are dropped when a node they point to goes away or is cordoned (`check_pins`).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from optkit.errors import InputError, OptkitError
from optkit.k8s.api import ApiError, ClusterAPI
from optkit.k8s.extender import Metrics
from optkit.k8s.pins import PinSet, PinStore
from optkit.k8s.snapshot import Snapshot, build_snapshot, is_unschedulable, meta, node_entry

_ids = itertools.count(1)


@dataclass
class PlannerConfig:
    window: float = 1.0  # seconds of wall clock for the solver (hard limit)
    solver: str = "cpsat"
    threads: int = 1
    seed: int = 0
    params: dict = field(default_factory=dict)
    dry_run: bool = False
    debounce: float = 2.0
    max_delay: float = 10.0
    cooldown: float = 5.0
    plan_ttl: float = 120.0
    retries: int = 2  # extra tries of an eviction that got a 5xx
    budget_retries: int = (
        1  # solves again (each within `window`) when a plan needs more than a PDB allows
    )
    retry_backoff: float = 0.2
    scheduler_name: str = "default-scheduler"
    max_prune: int = 500  # departures tried for "is it needed?" (one checker call each)
    pin_check_s: float = 5.0  # how often the controller re-checks the nodes of live pins
    managed_resource: str | None = None  # the scheduler's managedResources entry, if any


@dataclass
class Action:
    pod: str
    priority: int
    source: str | None
    target: str | None

    @property
    def kind(self) -> str:
        if self.source is None:
            return "place"
        if self.target is None:
            return "evict"
        return "move"


@dataclass
class Plan:
    id: str
    status: str  # planned | rejected | invalidated | dry-run | applied | partial | failed
    reason: str = ""
    snapshot: Snapshot | None = None
    problem: Any = None
    assignment: dict[str, str | None] = field(default_factory=dict)
    objective: Any = None
    current_objective: Any = None
    solver_status: str | None = None
    solve_s: float = 0.0
    actions: list[Action] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    not_evicted: list[str] = field(default_factory=list)
    pins: PinSet | None = None

    @property
    def evictions(self) -> list[Action]:
        """Pods to evict (moved or dropped), node by node, lowest priority first."""
        out = [a for a in self.actions if a.source is not None]
        return sorted(out, key=lambda a: (a.source, a.priority, a.pod))

    def to_dict(self) -> dict:
        return {
            "plan": self.id,
            "status": self.status,
            "reason": self.reason,
            "objective": self.objective,
            "current_objective": self.current_objective,
            "solver_status": self.solver_status,
            "solve_s": round(self.solve_s, 3),
            "actions": [
                {
                    "pod": a.pod,
                    "priority": a.priority,
                    "action": a.kind,
                    "from": a.source,
                    "to": a.target,
                }
                for a in self.actions
            ],
            "evicted": self.evicted,
            "not_evicted": self.not_evicted,
            "pins": (
                {
                    k: v
                    for k, v in self.pins.to_dict().items()
                    if k not in ("known_uids", "reserved")
                }
                if self.pins
                else None
            ),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)


class Planner:
    """One plan, end to end: `plan()` then `act(plan)` (or `plan_and_act()`)."""

    def __init__(
        self,
        api: ClusterAPI,
        config: PlannerConfig | None = None,
        pins: PinStore | None = None,
        metrics: Metrics | None = None,
        solve: Callable[..., Any] | None = None,
        log: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.api = api
        self.config = config or PlannerConfig()
        self.pins = pins or PinStore()
        self.metrics = metrics or Metrics()
        self._solve = solve
        self.log = log or (lambda msg: None)
        self.sleep = sleep

    # -- snapshot -------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        nodes, _ = self.api.list_nodes()
        pods, rv = self.api.list_pods()
        pdbs, _ = self.api.list_pdbs()
        return build_snapshot(
            nodes,
            pods,
            pdbs,
            scheduler_name=self.config.scheduler_name,
            resource_version=rv,
            managed_resource=self.config.managed_resource,
        )

    @staticmethod
    def problem_of(snapshot: Snapshot) -> Any:
        from optkit.problem import Problem

        return Problem.from_dict(snapshot.instance, source="cluster snapshot")

    # -- plan -----------------------------------------------------------------------------------
    def plan(self, snapshot: Snapshot | None = None) -> Plan:
        """Solve within the window; the plan is `planned` only if it beats the current placement."""
        plan = Plan(f"p{int(time.time())}-{next(_ids)}", "rejected")
        snap = snapshot or self.snapshot()
        problem = self.problem_of(snap)
        plan.snapshot, plan.problem = snap, problem
        current = problem.current_solution()
        report = problem.check(current)
        if not report.feasible:
            # e.g. pods bound with spec.nodeName past the scheduler: any plan would have to evict to
            # repair what the kubelets run happily; we do not take that decision
            return self._reject(
                plan,
                "the current placement breaks the model's rules ("
                + "; ".join(report.violations[:2])
                + "); not planning",
            )
        plan.current_objective = report.objective
        solve = self._solve
        if solve is None:
            from optkit.solve import solve
        self.metrics.inc("optkit_k8s_plans_total")
        for attempt in range(1 + self.config.budget_retries):
            started = time.monotonic()
            try:
                result = solve(
                    problem,
                    self.config.solver,
                    time_limit=self.config.window,
                    hard_limit=True,
                    threads=self.config.threads,
                    seed=self.config.seed,
                    initial_solution=current,
                    **self.config.params,
                )
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 - a failing solver means no plan, never a crash
                plan.solve_s += time.monotonic() - started
                return self._reject(plan, f"solver failed: {type(e).__name__}: {e}")
            plan.solve_s += time.monotonic() - started
            self.metrics.observe("optkit_k8s_solve_seconds", time.monotonic() - started)
            plan.solver_status = result.status.value
            if not result.status.has_solution:
                return self._reject(
                    plan,
                    f"no solution within the {self.config.window:g} s window "
                    f"({result.status.value}, {result.termination.value}"
                    f"{': ' + result.message if result.message else ''})",
                )
            answer = self._checked(problem, snap, result.solution)
            if isinstance(answer, str):
                return self._reject(plan, answer)
            plan.assignment, plan.objective = answer
            if not problem.better(plan.objective, plan.current_objective):
                return self._reject(
                    plan,
                    f"not better than the current placement "
                    f"({plan.objective} vs {plan.current_objective})",
                )
            why = self._budget_problem(snap, plan.assignment)
            if not why:
                break
            if attempt == self.config.budget_retries:
                return self._reject(plan, why)
            # a PDB allows fewer disruptions than the plan needs: keep the first ones it allows
            # movable, freeze the rest of its pods, and solve again
            problem = self._freeze_excess(problem, snap, plan.assignment)
            plan.problem = problem
            self.log(f"plan {plan.id}: {why}; solving again with the excess pods frozen")
        plan.actions = self._actions(snap, plan.assignment)
        plan.status = "planned"
        return plan

    def _reject(self, plan: Plan, reason: str, status: str = "rejected") -> Plan:
        plan.status, plan.reason = status, reason
        self.metrics.inc("optkit_k8s_plans_rejected_total", reason=status)
        self.log(f"plan {plan.id} {status}: {reason}")
        return plan

    def _checked(
        self, problem: Any, snap: Snapshot, solution: Any
    ) -> tuple[dict[str, str | None], Any] | str:
        """The solver's answer as the checker sees it, with every move or eviction that its
        placements do not need undone: (assignment, checker objective), or why it is unusable."""
        try:
            report = problem.check(solution)
            assignment = dict(solution["assignment"])
        except Exception as e:  # noqa: BLE001 - whatever a solver returns, it is only a proposal
            return f"the solver's answer is unreadable ({type(e).__name__})"
        if not report.feasible:
            return "the solver's answer breaks the model's rules: " + "; ".join(
                report.violations[:2]
            )
        return self._only_needed(problem, snap, assignment, report.objective)

    def _only_needed(
        self, problem: Any, snap: Snapshot, assignment: dict[str, str | None], objective: Any
    ) -> tuple[dict[str, str | None], Any]:
        """Put back every running pod whose departure the checker's objective does not need
        (a feasible assignment at least as good without it), most important pods first."""
        leaving = sorted(
            (k for k, i in snap.pods.items() if i.node is not None and assignment.get(k) != i.node),
            key=lambda k: (-snap.pods[k].priority, k),
        )
        for key in leaving[: self.config.max_prune]:
            trial = {**assignment, key: snap.pods[key].node}
            report = problem.check({"assignment": trial})
            if report.feasible and not problem.better(objective, report.objective):
                assignment, objective = trial, report.objective
        return assignment, objective

    @staticmethod
    def _actions(snap: Snapshot, assignment: dict[str, str | None]) -> list[Action]:
        out = []
        for key, info in snap.pods.items():
            target = assignment.get(key)
            if target != info.node:
                out.append(Action(key, info.priority, info.node, target))
        return sorted(out, key=lambda a: (-a.priority, a.pod))

    def _freeze_excess(
        self, problem: Any, snap: Snapshot, assignment: dict[str, str | None]
    ) -> Any:
        frozen: set[str] = set()
        for b in snap.budgets:
            bound = [k for k in sorted(b.pods) if k in snap.pods and snap.pods[k].node is not None]
            leaving = [k for k in bound if assignment.get(k) != snap.pods[k].node]
            if len(leaving) > b.disruptions_allowed:
                keep = set(leaving[: b.disruptions_allowed])
                frozen.update(k for k in bound if k not in keep)
        data = problem.to_dict()
        for pod in data["pods"]:
            if pod["name"] in frozen:
                pod["movable"] = False
        return type(problem).from_dict(data, source="cluster snapshot")

    @staticmethod
    def _budget_problem(snap: Snapshot, assignment: dict[str, str | None]) -> str | None:
        for b in snap.budgets:
            leaving = [
                k
                for k in b.pods
                if k in snap.pods
                and snap.pods[k].node is not None
                and assignment.get(k) != snap.pods[k].node
            ]
            if len(leaving) > b.disruptions_allowed:
                return (
                    f"PodDisruptionBudget {b.key} allows {b.disruptions_allowed} disruption(s), "
                    f"the plan needs {len(leaving)}"
                )
        return None

    # -- check against a fresh snapshot ----------------------------------------------------------
    def recheck(self, plan: Plan) -> str | None:
        """None if the plan still holds on a fresh snapshot, else why not."""
        fresh = self.snapshot()
        old = plan.snapshot
        assert old is not None
        for key, info in old.pods.items():
            now = fresh.pods.get(key)
            if now is None:
                if info.node is not None:
                    return f"pod {key} is gone"
                continue  # a pending pod went away: its planned place stays free
            if now.uid != info.uid:
                return f"pod {key} was replaced"
            if now.node != info.node:
                return f"pod {key} is now on {now.node or 'no node'} (was {info.node or 'pending'})"
        problem = self.problem_of(fresh)
        assignment = {}
        for p in problem.pods:
            assignment[p.name] = plan.assignment.get(p.name, p.node)
        report = problem.check({"assignment": assignment})
        if not report.feasible:
            return "no longer feasible: " + "; ".join(report.violations[:2])
        current = problem.check(problem.current_solution())
        if not current.feasible:
            return "the current placement now breaks the model's rules: " + "; ".join(
                current.violations[:2]
            )
        assignment, objective = self._only_needed(problem, fresh, assignment, report.objective)
        if not problem.better(objective, current.objective):
            return (
                f"no longer better than the current placement ({objective} vs {current.objective})"
            )
        why = self._budget_problem(fresh, assignment)
        if why:
            return why
        plan.snapshot, plan.problem, plan.assignment = fresh, problem, assignment
        plan.objective = objective
        plan.actions = self._actions(fresh, assignment)
        return None

    # -- act -------------------------------------------------------------------------------------
    def _pins_of(self, plan: Plan) -> PinSet:
        snap = plan.snapshot
        assert snap is not None
        pins = PinSet(
            plan.id,
            time.time() + self.config.plan_ttl,
            known_uids={i.uid for i in snap.pods.values() if i.uid},
        )
        for a in plan.actions:
            if a.target is None:
                continue
            info = snap.pods[a.pod]
            if a.source is None or (info.owner or "").startswith("StatefulSet/"):
                pins.by_name[a.pod] = (
                    a.target
                )  # pending pods, and pods recreated under the same name
            elif info.owner:
                counts = pins.by_owner.setdefault(f"{info.namespace}/{info.owner}", {})
                counts[a.target] = counts.get(a.target, 0) + 1
        return pins

    def act(self, plan: Plan) -> Plan:
        """Re-check, pin, evict. The plan's status becomes applied, partial, failed (an eviction
        refused), aborted (a node it needs gone or changed: pins cleared) or invalidated."""
        if plan.status != "planned":
            return plan
        why = self.recheck(plan)
        if why:
            return self._reject(plan, why, "invalidated")
        self.metrics.inc("optkit_k8s_plans_accepted_total")
        plan.pins = self._pins_of(plan)
        if self.config.dry_run:
            plan.status = "dry-run"
            return plan
        self.pins.set(plan.pins)
        todo = plan.evictions
        for i, a in enumerate(todo):
            changed = self._target_changed(plan, a)
            if changed is not None:
                reason, why = changed
                plan.not_evicted = [x.pod for x in todo[i:]]
                return self._abort(plan, reason, f"before evicting {a.pod}: {why}")
            info = plan.snapshot.pods[a.pod]  # type: ignore[union-attr]
            error = self._evict(info.namespace, info.name, info.uid)
            if error is None:
                plan.evicted.append(a.pod)
                continue
            plan.not_evicted = [x.pod for x in todo[i:]]
            failure = f"eviction of {a.pod} failed: {error}"
            self._trim_pins(plan)
            plan.status = "partial" if plan.evicted else "failed"
            plan.reason = failure
            self.metrics.inc("optkit_k8s_plans_aborted_total", reason="eviction_refused")
            self.log(f"plan {plan.id} stopped: {failure}")
            self.metrics.set("optkit_k8s_pinned_pods", self._pending_pins(plan.pins))
            return plan
        plan.status = "applied"
        self.log(
            f"plan {plan.id} applied: {len(plan.evicted)} eviction(s), "
            f"{sum(1 for a in plan.actions if a.target)} placement(s) pinned"
        )
        self.metrics.set("optkit_k8s_pinned_pods", self._pending_pins(plan.pins))
        return plan

    def _abort(self, plan: Plan, reason: str, why: str) -> Plan:
        """Stop acting on a plan: no more evictions, and no pins (they may point nowhere)."""
        self.pins.clear()
        plan.status, plan.reason = "aborted", why
        self.metrics.inc("optkit_k8s_plans_aborted_total", reason=reason)
        self.metrics.set("optkit_k8s_pinned_pods", 0)
        self.log(f"plan {plan.id} aborted: {why}")
        return plan

    def _target_changed(self, plan: Plan, action: Action) -> tuple[str, str] | None:
        """(reason, why) if a node this eviction serves (the node it frees, the node the pod goes
        to) is gone or no longer the node the plan was made for; None if both still are."""
        snap = plan.snapshot
        assert snap is not None
        planned = {n["name"]: n for n in snap.instance["nodes"]}
        for name in dict.fromkeys(n for n in (action.source, action.target) if n):
            try:
                now = node_entry(self.api.get_node(name))
            except ApiError as e:
                if e.status == 404:
                    return "node_gone", f"node {name} is gone"
                return "api_error", f"cannot re-check node {name}: {e}"
            except OptkitError as e:  # a node optkit can no longer read
                return "node_changed", f"node {name}: {e}"
            if now != planned.get(name):
                return "node_changed", f"node {name} changed since the plan"
        return None

    def check_pins(self) -> str | None:
        """Drop the live pins if a node they point to is gone or changed; why, or None."""
        pins = self.pins.current()
        if pins is None:
            return None
        nodes = set(pins.by_name.values())
        nodes |= {n for counts in pins.by_owner.values() for n, c in counts.items() if c > 0}
        for name in sorted(nodes):
            try:
                node = node_entry(self.api.get_node(name))
            except ApiError as e:
                if e.status != 404:
                    return None  # cannot tell now: try again later
                why, reason = f"pinned node {name} is gone", "node_gone"
            else:
                if not node.get("unschedulable") and not any(
                    t["effect"] in ("NoSchedule", "NoExecute") for t in node.get("taints", [])
                ):
                    continue
                why, reason = f"pinned node {name} is cordoned or tainted", "node_changed"
            self.pins.clear()
            self.metrics.inc("optkit_k8s_plans_aborted_total", reason=reason)
            self.metrics.set("optkit_k8s_pinned_pods", 0)
            self.log(f"plan {pins.plan_id}: {why}; pins dropped")
            return why
        return None

    def _evict(self, namespace: str, name: str, uid: str | None) -> str | None:
        """Evict one pod; None on success (or if it is gone already), else what stopped it."""
        for attempt in range(self.config.retries + 1):
            try:
                self.api.evict(namespace, name, uid)
                self.metrics.inc("optkit_k8s_evictions_total", result="ok")
                return None
            except ApiError as e:
                if e.status == 404:
                    self.metrics.inc("optkit_k8s_evictions_total", result="gone")
                    return None
                self.metrics.inc("optkit_k8s_evictions_total", result=str(e.status))
                if e.status >= 500 and attempt < self.config.retries:
                    self.sleep(self.config.retry_backoff * (2**attempt))
                    continue
                return str(e)
        return "retries exhausted"  # pragma: no cover

    def _trim_pins(self, plan: Plan) -> None:
        """After a stop: keep pins only to nodes that every planned departure has left."""
        pins = plan.pins
        assert pins is not None
        stuck = {a.source for a in plan.actions if a.pod in plan.not_evicted}
        pins.by_name = {
            k: n for k, n in pins.by_name.items() if n not in stuck and k not in plan.not_evicted
        }
        # replacements of pods that were not evicted will not come
        for a in plan.actions:
            info = plan.snapshot.pods[a.pod]  # type: ignore[union-attr]
            if a.pod in plan.not_evicted and a.target and info.owner:
                counts = pins.by_owner.get(f"{info.namespace}/{info.owner}", {})
                if counts.get(a.target, 0) > 0:
                    counts[a.target] -= 1
        for counts in pins.by_owner.values():
            for n in list(counts):
                if n in stuck:
                    counts[n] = 0
        self.pins.set(pins if not pins.empty() else None)

    @staticmethod
    def _pending_pins(pins: PinSet | None) -> int:
        if pins is None:
            return 0
        return len(pins.by_name) + sum(
            c for counts in pins.by_owner.values() for c in counts.values()
        )

    def plan_and_act(self) -> Plan:
        plan = self.plan()
        return self.act(plan) if plan.status == "planned" else plan


class Controller:
    """Watches pods, triggers plans, ticks off pins as pods get bound. Bounded loops throughout."""

    def __init__(self, planner: Planner, clock: Callable[[], float] = time.monotonic):
        self.planner = planner
        self.api = planner.api
        self.pins = planner.pins
        self.metrics = planner.metrics
        self.config = planner.config
        self.clock = clock
        self.first_trigger: float | None = None
        self.last_trigger: float | None = None
        self.last_plan: float | None = None
        self.plans: list[Plan] = []
        self.resource_version: str | None = None
        self.healthy = True
        self.last_error = ""
        self.last_pin_check: float | None = None

    def handle_event(self, kind: str, pod: dict) -> None:
        if kind == "DELETED":
            self.pins.forget(pod)
            return
        if (pod.get("spec") or {}).get("nodeName"):
            if self.pins.observe_bound(pod):
                self.metrics.inc("optkit_k8s_pods_placed_total")
                self.metrics.set(
                    "optkit_k8s_pinned_pods", Planner._pending_pins(self.pins.current())
                )
            return
        self.pins.reserve(pod)  # a new pod of a planned owner: one of the owner's planned slots
        if is_unschedulable(pod):
            now = self.clock()
            if self.first_trigger is None:
                self.first_trigger = now
            self.last_trigger = now

    def due(self) -> bool:
        if self.first_trigger is None or self.last_trigger is None:
            return False
        now = self.clock()
        if self.pins.current() is not None:
            return False  # one plan at a time
        if self.last_plan is not None and now - self.last_plan < self.config.cooldown:
            return False
        return (
            now - self.last_trigger >= self.config.debounce
            or now - self.first_trigger >= self.config.max_delay
        )

    def resync(self) -> None:
        """List pods (not a watch): triggers for pods already pending, and the watch's start."""
        pods, rv = self.api.list_pods()
        self.resource_version = rv
        for pod in pods:
            self.handle_event("ADDED", pod)

    def step(self, watch_s: float = 0.5) -> Plan | None:
        """Read events for up to `watch_s` seconds, then plan and act if due."""
        try:
            if self.resource_version is None:
                self.resync()
            for kind, pod in self.api.watch_pods(self.resource_version, watch_s):
                self.resource_version = meta(pod).get("resourceVersion") or self.resource_version
                self.handle_event(kind, pod)
        except ApiError as e:
            self.last_error = str(e)
            if e.status == 410:
                self.resource_version = None  # too old: list again
            return None
        now = self.clock()
        if self.last_pin_check is None or now - self.last_pin_check >= self.config.pin_check_s:
            self.last_pin_check = now
            self.planner.check_pins()
        if not self.due():
            return None
        self.first_trigger = self.last_trigger = None
        self.last_plan = self.clock()
        try:
            plan = self.planner.plan_and_act()
        except OptkitError as e:  # API errors, or a cluster object optkit cannot read
            self.last_error = str(e)
            self.planner.log(f"planning skipped: {e}")
            return None
        self.plans.append(plan)
        return plan

    def run(
        self,
        stop: threading.Event | None = None,
        max_plans: int | None = None,
        max_seconds: float | None = None,
        watch_s: float = 0.5,
    ) -> list[Plan]:
        stop = stop or threading.Event()
        end = None if max_seconds is None else self.clock() + max_seconds
        while not stop.is_set():
            if end is not None and self.clock() >= end:
                break
            if max_plans is not None and len(self.plans) >= max_plans:
                break
            try:
                self.step(watch_s)
            except Exception as e:  # noqa: BLE001 - a long-running service logs and goes on
                self.last_error = f"{type(e).__name__}: {e}"
                self.planner.log(f"controller error: {self.last_error}")
                self.resource_version = None
                stop.wait(1.0)
        return self.plans
