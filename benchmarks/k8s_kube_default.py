"""kube-default against the real kube-scheduler on the KWOK runs, one scheduler rule at a time.

    .venv/bin/python -m benchmarks.k8s_kube_default

Every KWOK scenario where the real scheduler left pods pending is replayed from an empty cluster
(every pod pending) by `kube_schedule` under a set of rules: the queue order (creation order, or
PrioritySort: priority, then creation), DefaultPreemption, retrying unschedulable pods after
the others when a pod is deleted and at the periodic flush, and the default PodTopologySpread
score. For each set: the pods left pending over all scenarios against the real scheduler's, and
the scenarios whose pending pods per priority equal the real ones. Writes the section
"kubernetes-kube-default" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import time

from benchmarks._common import SHARED, machine, markdown_table, write_section
from optkit.backends.heuristics.pod_packing import kube_schedule
from optkit.problems.pod_packing import read_kwok, with_placement

#: (label, kube_schedule keyword arguments), one rule changed at a time
RULES = [
    (
        "creation order, LeastAllocated + Balanced only",
        dict(order="arrival", preemption=False, retry=False, spread=False),
    ),
    ("+ PodTopologySpread score", dict(order="arrival", preemption=False, retry=False)),
    ("+ DefaultPreemption", dict(order="arrival", preemption=True, retry=False)),
    ("+ unschedulable pods retried after the others", dict(order="arrival", preemption=True)),
    ("PrioritySort queue, no preemption", dict(order="priority", preemption=False)),
    ("PrioritySort queue + DefaultPreemption + retry", dict(order="priority", preemption=True)),
]


def pending_by_priority(inst, where) -> collections.Counter:
    return collections.Counter(inst.pods[i].priority for i, j in enumerate(where) if j is None)


def compare(rows) -> tuple[str, list[list]]:
    real = sum(sum(pending_by_priority(inst, inst.current).values()) for inst, _ in rows)
    table = []
    for label, kwargs in RULES:
        started = time.perf_counter()
        total = equal = 0
        for inst, _ in rows:
            where = kube_schedule(with_placement(inst, [None] * inst.n_pods), **kwargs)
            pend = pending_by_priority(inst, where)
            total += sum(pend.values())
            equal += pend == pending_by_priority(inst, inst.current)
        table.append(
            [
                label,
                total,
                f"{(total - real) / real:+.1%}",
                f"{equal} ({equal / len(rows):.0%})",
                f"{time.perf_counter() - started:.1f}",
            ]
        )
    header = (
        f"{len(rows)} KWOK scenarios with pending pods; the real kube-scheduler left {real} pods "
        "pending in all."
    )
    return header, table


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    rows = read_kwok(SHARED / "podpacking" / "kwok" / "instances.jsonl")
    rows = [(inst, meta) for inst, meta in rows if any(j is None for j in inst.current)]
    header, table = compare(rows)
    text = (
        "## kubernetes: kube-default against the real scheduler (KWOK)\n\n"
        "`.venv/bin/python -m benchmarks.k8s_kube_default` on "
        f"{machine()} (a shared machine: times are indicative).\n\n{header}\n\n"
        + markdown_table(
            ["rules", "pending", "vs real", "pending by priority equal", "s"],
            table,
        )
    )
    print(text)
    write_section("kubernetes-kube-default", text)


if __name__ == "__main__":
    main()
