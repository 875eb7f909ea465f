"""Write `fragmented_cluster.json`: the demo's fragmented cluster as `kubectl get nodes,pods,pdb -A
-o json` would print it (a v1 List), for `optkit k8s plan -f` without a cluster.

Run from the repository root: `python instances/k8s/make_dump.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

from optkit.k8s.demo import fragmented_cluster


def cluster_dump(nodes: int = 4) -> dict:
    """The demo cluster (nodes of 4 CPUs, each half full with 1-CPU low-priority pods; N/2 pending
    3-CPU high-priority pods) as one v1 List of its nodes, pods and PodDisruptionBudgets."""
    cluster = fragmented_cluster(nodes)
    cluster.add_pdb("batch", {"app": "batch"}, min_available=nodes)
    items = [
        *cluster.list_nodes()[0],
        *cluster.list_pods()[0],
        *cluster.list_pdbs()[0],
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}}


if __name__ == "__main__":
    target = Path(__file__).resolve().parent / "fragmented_cluster.json"
    target.write_text(json.dumps(cluster_dump(), indent=1) + "\n")
    print(f"wrote {target}")
