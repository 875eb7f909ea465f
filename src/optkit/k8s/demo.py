"""A fragmented cluster in memory, re-packed end to end: `python -m optkit.k8s.demo --nodes 20`.

N nodes of 4 CPUs, each half full with two 1-CPU pods of a low-priority ReplicaSet (spread, as
kube-scheduler's least-allocated scoring leaves them), and N/2 pods of 3 CPUs at high priority
that fit nowhere: 2 free CPUs on every node, N in all, none with 3. A re-pack moves one low pod
off half of the nodes. Prints the plan summary and timings (snapshot, solve, act, until every
high-priority pod runs), measured on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import time

from optkit.k8s.extender import Extender, ExtenderServer, Metrics, PinStore, http_extender
from optkit.k8s.fake import FakeCluster
from optkit.k8s.planner import Controller, Planner, PlannerConfig


def fragmented_cluster(
    nodes: int = 10, extender=None, node_cache_capable: bool = True, seed: int = 0
) -> FakeCluster:
    c = FakeCluster(extender=extender, node_cache_capable=node_cache_capable, seed=seed)
    names = [f"node-{j + 1:03d}" for j in range(nodes)]
    for n in names:
        c.add_node(n, cpu="4", memory="16Gi")
    c.add_replicaset(
        "batch",
        2 * nodes,
        nodes=[n for n in names for _ in range(2)],
        cpu="1",
        memory="1Gi",
        priority=10,
    )
    c.add_replicaset("api", max(1, nodes // 2), cpu="3", memory="2Gi", priority=1000)
    c.settle()
    return c


def run_demo(
    nodes: int,
    window: float,
    solver: str,
    params: dict,
    cache_capable: bool = True,
    max_steps: int = 50,
) -> dict:
    pins, metrics = PinStore(), Metrics()
    with ExtenderServer(Extender(pins, metrics), host="127.0.0.1", port=0) as server:
        cluster = fragmented_cluster(nodes, http_extender(server.url), cache_capable)
        planner = Planner(
            cluster,
            PlannerConfig(
                window=window, solver=solver, params=params, debounce=0, cooldown=0, max_delay=0
            ),
            pins,
            metrics,
        )
        t0 = time.monotonic()
        snap = planner.snapshot()
        t_snapshot = time.monotonic() - t0
        plan = planner.plan(snap)
        t_plan = time.monotonic() - t0 - t_snapshot
        t1 = time.monotonic()
        plan = planner.act(plan)
        t_act = time.monotonic() - t1
        controller = Controller(planner)
        steps = 0
        high = max(1, nodes // 2)

        def high_running() -> int:
            return sum(
                1
                for (_, name), p in cluster.pods.items()
                if name.startswith("api-") and p["spec"].get("nodeName")
            )

        while (
            plan.status == "applied"
            and steps < max_steps
            and (high_running() < high or pins.current() is not None)
        ):
            cluster.settle()
            controller.step(0.01)
            steps += 1
        return {
            "nodes": nodes,
            "pods": len(snap.instance["pods"]),
            "solver": solver,
            "window_s": window,
            "plan": plan.status,
            "reason": plan.reason,
            "objective": plan.objective,
            "current_objective": plan.current_objective,
            "evictions": len(plan.evicted),
            "snapshot_s": round(t_snapshot, 3),
            "plan_s": round(t_plan, 3),
            "solve_s": round(plan.solve_s, 3),
            "act_s": round(t_act, 3),
            "settle_steps": steps,
            "high_running": f"{high_running()}/{high}",
            "until_all_running_s": round(time.monotonic() - t0, 3),
        }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[10])
    ap.add_argument("--window", type=float, nargs="+", default=[1.0])
    ap.add_argument("--solver", default="cpsat")
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE")
    ap.add_argument("--node-names", action="store_true", help="nodeCacheCapable=false (full Nodes)")
    args = ap.parse_args(argv)
    from optkit.cli import parse_params

    for n in args.nodes:
        for w in args.window:
            print(
                json.dumps(
                    run_demo(n, w, args.solver, parse_params(args.param), not args.node_names)
                )
            )


if __name__ == "__main__":
    main()
