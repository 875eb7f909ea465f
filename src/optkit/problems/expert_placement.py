"""MoE expert placement: experts (and replicas of hot experts) onto GPUs, layer by layer.

Instance (spec, `"problem": "expert-placement"`):

- `gpus`, `slots_per_gpu`: each GPU holds at most `slots_per_gpu` expert replicas per layer
  (the memory budget); physical slot `s` of a layer lives on GPU `s // slots_per_gpu`.
- `load[l][e]`: tokens routed to expert `e` of layer `l` (all layers have the same number of experts).
- `affinity[l][e][f]` (optional, one E x E matrix per consecutive layer pair `l -> l+1`): tokens
  routed to expert `e` at layer `l` and to expert `f` at layer `l+1`.
- `gpu_node` (optional): node index of each GPU (default: all GPUs on node 0).
- `link_cost` (optional): `{"intra_node": c_in, "inter_node": c_out}`, the cost of one token
  crossing GPUs inside a node and across nodes (default 1 and 1).
- `comm_weight` (optional, default 0): weight of the communication cost in the objective.

Solution: `{"slots": [[expert id or -1 (empty) per physical slot] per layer]}`. Every expert has
at least one replica per layer; two replicas of one expert on the same GPU are infeasible.

Model of a placement (what the checker computes):

- An expert's load is split evenly over its `r` replicas: each replica serves `load / r` tokens.
  GPU load = sum of the shares of the replicas it holds; the layer's bottleneck is its busiest GPU.
- Tokens between consecutive layers are dispatched locality-aware: the `affinity[l][e][f]` tokens
  leave `e`'s replicas in proportion `p_e(g) = [e on g] / r_e` and arrive at `f`'s replicas in
  proportion `p_f(g)`; they move along the cheapest transport between the two distributions. On
  this two-level (GPU, node) network that is: the share staying on its GPU is
  `sum_g min(p_e(g), p_f(g))`, the share staying in its node is `sum_n min(P_e(n), P_f(n))`
  (`P` = per-node sums), so
  `cross_gpu = A (1 - sum_g min)`, `cross_node = A (1 - sum_n min)`,
  `comm cost = c_in (cross_gpu - cross_node) + c_out cross_node`.
  Without replication this is the usual "tokens whose two experts sit on different GPUs".
- Objective (minimise): `sum_l max_g load[l][g] + comm_weight * comm cost`, rounded to 6 decimals.

Metrics: `balancedness` (EPLB's mean/max GPU load, load-summed over layers: sum_l mean_l /
sum_l max_l), `balancedness_per_layer`, `balancedness_min` (worst layer), `max_gpu_load`,
`sum_max_gpu_load`, `cross_gpu_traffic`, `cross_node_traffic`, `comm_cost`, `local_share`
(share of affinity tokens that stay on their GPU), `replicas`, `empty_slots`,
`same_gpu_replicas` (always 0 in a feasible solution).

Helpers for solvers (all numpy, documented below): `load_array`, `affinity_array`,
`node_of_gpu`, `num_nodes`, `num_slots`, `gpu_of_slot`, `replica_matrix(slots)`,
`gpu_loads(slots)`, `layer_max_loads(slots)`, `traffic(slots)`, `objective_of(slots)`,
`link_costs`.
"""

from __future__ import annotations

import math
import random
from functools import cached_property
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from optkit.errors import InputError
from optkit.problem import (
    CheckReport,
    Int,
    Model,
    NonNegInt,
    Problem,
    bounded,
)
from optkit.registry import GeneratorOption as Opt
from optkit.registry import generator

OBJECTIVE_DECIMALS = 6

# Input ranges (docs/expert_placement.md): every solver, CP-SAT's integer scaling included, computes
# with numbers in these ranges without overflow, and a solution stays a few million slots at most.
MAX_GPUS = 4096
MAX_SLOTS_PER_GPU = 256
#: physical slots of one layer (gpus x slots_per_gpu)
MAX_SLOTS = 65_536
#: slots over all layers (layers x gpus x slots_per_gpu): the size of a solution
MAX_TOTAL_SLOTS = 4_000_000
MAX_LOAD = 1e9
MAX_COST = 1e6
Load = bounded(0, MAX_LOAD, integer=False)
Cost = bounded(0, MAX_COST, integer=False)


class LinkCost(Model):
    """Cost of one token crossing GPUs inside a node, and across nodes."""

    intra_node: Cost = 1
    inter_node: Cost = 1


class ExpertPlacementSolution(Model):
    slots: tuple[tuple[Int, ...], ...]


class ExpertPlacement(Problem):
    """Place each layer's experts (with replicas) into `gpus * slots_per_gpu` physical slots."""

    kind = "expert-placement"
    Solution = ExpertPlacementSolution

    problem: str = "expert-placement"
    gpus: bounded(1, MAX_GPUS)
    slots_per_gpu: bounded(1, MAX_SLOTS_PER_GPU)
    load: tuple[tuple[Load, ...], ...] = Field(min_length=1)
    affinity: tuple[tuple[tuple[Load, ...], ...], ...] | None = None
    gpu_node: tuple[NonNegInt, ...] | None = None
    link_cost: LinkCost | None = None
    comm_weight: Cost | None = None
    #: the model's expert groups (DeepSeek's n_group), which EPLB's hierarchical policy packs onto
    #: nodes; solvers with a `num_groups` parameter default to it
    num_groups: bounded(1, MAX_GPUS) | None = None

    @model_validator(mode="after")
    def _shapes(self) -> ExpertPlacement:
        n_layers = len(self.load)
        n_exp = len(self.load[0])
        if n_exp == 0:
            raise ValueError("field 'load.0': a layer needs at least one expert")
        for l, row in enumerate(self.load):
            if len(row) != n_exp:
                raise ValueError(f"field 'load.{l}': has {len(row)} experts, layer 0 has {n_exp}")
        total = self.gpus * self.slots_per_gpu
        if total > MAX_SLOTS or n_layers * total > MAX_TOTAL_SLOTS:
            raise ValueError(
                f"field 'slots_per_gpu': {self.gpus} GPUs x {self.slots_per_gpu} slots x "
                f"{n_layers} layers = {n_layers * total} slots; at most {MAX_SLOTS} per layer "
                f"and {MAX_TOTAL_SLOTS} in all"
            )
        if total < n_exp:
            raise ValueError(
                f"field 'slots_per_gpu': {self.gpus} GPUs x {self.slots_per_gpu} slots = {total} slots "
                f"per layer, fewer than the {n_exp} experts (every expert needs a slot)"
            )
        if self.affinity is not None:
            if len(self.affinity) != n_layers - 1:
                raise ValueError(
                    f"field 'affinity': needs one matrix per consecutive layer pair "
                    f"({n_layers - 1}), got {len(self.affinity)}"
                )
            for l, mat in enumerate(self.affinity):
                if len(mat) != n_exp:
                    raise ValueError(
                        f"field 'affinity.{l}': has {len(mat)} rows, expected {n_exp} (experts)"
                    )
                for i, row in enumerate(mat):
                    if len(row) != n_exp:
                        raise ValueError(
                            f"field 'affinity.{l}.{i}': has {len(row)} columns, "
                            f"expected {n_exp} (experts)"
                        )
        if self.gpu_node is not None:
            if len(self.gpu_node) != self.gpus:
                raise ValueError(
                    f"field 'gpu_node': has {len(self.gpu_node)} entries, gpus is {self.gpus}"
                )
            used = sorted(set(self.gpu_node))
            if used != list(range(len(used))):
                raise ValueError(
                    f"field 'gpu_node': node indices must be 0..{len(used) - 1} "
                    f"without gaps, got {used}"
                )
        return self

    # -- derived data (numpy; cached) ---------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.load)

    @property
    def num_experts(self) -> int:
        return len(self.load[0])

    @property
    def num_slots(self) -> int:
        """Physical slots per layer (`gpus * slots_per_gpu`)."""
        return self.gpus * self.slots_per_gpu

    def gpu_of_slot(self, s: int) -> int:
        return s // self.slots_per_gpu

    @cached_property
    def load_array(self) -> np.ndarray:
        """`[L, E]` float array of the loads."""
        return np.asarray(self.load, dtype=float)

    @cached_property
    def affinity_array(self) -> np.ndarray | None:
        """`[L-1, E, E]` float array of the affinity matrices, or None."""
        if self.affinity is None or self.num_layers < 2:
            return None
        return np.asarray(self.affinity, dtype=float).reshape(
            self.num_layers - 1, self.num_experts, self.num_experts
        )

    @cached_property
    def node_of_gpu(self) -> np.ndarray:
        """`[G]` int array: node of each GPU."""
        return np.asarray(
            self.gpu_node if self.gpu_node is not None else [0] * self.gpus, dtype=int
        )

    @property
    def num_nodes(self) -> int:
        return int(self.node_of_gpu.max()) + 1

    @property
    def link_costs(self) -> tuple[float, float]:
        """(intra-node, inter-node) cost of one token crossing GPUs."""
        lc = self.link_cost or LinkCost()
        return float(lc.intra_node), float(lc.inter_node)

    @property
    def weight(self) -> float:
        """`comm_weight` (0 when absent)."""
        return float(self.comm_weight or 0)

    # -- evaluation helpers (used by the checker and by solvers) ------------------------------
    def replica_matrix(self, slots: Any) -> np.ndarray:
        """`[L, E, G]` int array: replicas of expert e on GPU g in layer l (slots must be in range)."""
        arr = np.asarray(slots, dtype=int).reshape(self.num_layers, self.num_slots)
        L, E, G = self.num_layers, self.num_experts, self.gpus
        X = np.zeros((L, E + 1, G), dtype=int)  # row E collects the empty slots (-1)
        gpu = np.arange(self.num_slots) // self.slots_per_gpu
        for l in range(L):
            np.add.at(X[l], (np.where(arr[l] < 0, E, arr[l]), gpu), 1)
        return X[:, :E, :]

    @property
    def max_replicas(self) -> int:
        """The most replicas one expert can have: one per GPU, and no more than the spare slots allow."""
        return max(1, min(self.gpus, self.num_slots - self.num_experts + 1))

    def slots_of(self, X: np.ndarray) -> list[list[int]]:
        """The slot rows of an `[L, E, G]` 0/1 replica array (the inverse of `replica_matrix`):
        each GPU's experts in increasing order, then its empty slots (-1)."""
        S = self.slots_per_gpu
        rows = []
        for l in range(X.shape[0]):
            row = []
            for g in range(self.gpus):
                es = [int(e) for e in np.flatnonzero(X[l, :, g])]
                row += es + [-1] * (S - len(es))
            rows.append(row)
        return rows

    def gpu_loads(self, slots: Any) -> np.ndarray:
        """`[L, G]` float array: token load of each GPU per layer (loads split evenly over replicas)."""
        return self._gpu_loads(self.replica_matrix(slots))

    def _gpu_loads(self, X: np.ndarray) -> np.ndarray:
        r = X.sum(axis=2)
        share = np.divide(self.load_array, r, out=np.zeros_like(self.load_array), where=r > 0)
        return np.einsum("le,leg->lg", share, X)

    def layer_max_loads(self, slots: Any) -> np.ndarray:
        """`[L]` float array: the busiest GPU's load in each layer."""
        return self.gpu_loads(slots).max(axis=1)

    def traffic(self, slots: Any) -> dict[str, float]:
        """Cross-GPU and cross-node tokens between consecutive layers, and their cost."""
        return self._traffic(self.replica_matrix(slots))

    def _traffic(self, X: np.ndarray) -> dict[str, float]:
        A = self.affinity_array
        c_in, c_out = self.link_costs
        if A is None:
            return {
                "cross_gpu_traffic": 0.0,
                "cross_node_traffic": 0.0,
                "comm_cost": 0.0,
                "local_share": 1.0,
                "affinity_total": 0.0,
            }
        Xb = (X > 0).astype(float)
        r = np.maximum(Xb.sum(axis=2), 1.0)  # [L, E]
        nodes = self.node_of_gpu
        N = self.num_nodes
        node_onehot = np.zeros((self.gpus, N))
        node_onehot[np.arange(self.gpus), nodes] = 1.0
        P = np.einsum("leg,gn->len", Xb, node_onehot) / r[:, :, None]  # [L, E, N]
        cross_gpu = cross_node = total = 0.0
        for l in range(self.num_layers - 1):
            a = A[l]
            tot = a.sum()
            if tot == 0:
                continue
            overlap = Xb[l] @ Xb[l + 1].T  # GPUs holding both e and f
            stay_gpu = overlap * np.minimum.outer(1.0 / r[l], 1.0 / r[l + 1])
            if N == 1:
                stay_node = np.ones_like(stay_gpu)
            else:
                stay_node = np.zeros_like(stay_gpu)
                for n in range(N):
                    stay_node += np.minimum.outer(P[l, :, n], P[l + 1, :, n])
            cross_gpu += float((a * (1.0 - np.minimum(stay_gpu, 1.0))).sum())
            cross_node += float((a * (1.0 - np.minimum(stay_node, 1.0))).sum())
            total += float(tot)
        cross_gpu = max(cross_gpu, 0.0)
        cross_node = min(max(cross_node, 0.0), cross_gpu)
        cost = c_in * (cross_gpu - cross_node) + c_out * cross_node
        return {
            "cross_gpu_traffic": cross_gpu,
            "cross_node_traffic": cross_node,
            "comm_cost": cost,
            "local_share": 1.0 - cross_gpu / total if total > 0 else 1.0,
            "affinity_total": total,
        }

    def objective_of(self, slots: Any) -> float:
        """The objective of a (feasible) placement, exactly as the checker computes it."""
        X = self.replica_matrix(slots)
        return self._objective(self._gpu_loads(X).max(axis=1), self._traffic(X)["comm_cost"])

    def _objective(self, layer_max: np.ndarray, comm_cost: float) -> float:
        return round(float(layer_max.sum()) + self.weight * comm_cost, OBJECTIVE_DECIMALS)

    # -- checker ------------------------------------------------------------------------------
    def evaluate(self, solution: ExpertPlacementSolution) -> CheckReport:
        L, E, S, G = self.num_layers, self.num_experts, self.num_slots, self.gpus
        slots = solution.slots
        if len(slots) != L:
            return CheckReport.infeasible(f"slots: has {len(slots)} layers, the instance has {L}")
        bad = []
        for l, row in enumerate(slots):
            if len(row) != S:
                bad.append(
                    f"slots[{l}]: has {len(row)} entries, expected {S} ({G} GPUs x "
                    f"{self.slots_per_gpu} slots)"
                )
            elif any(not -1 <= e < E for e in row):
                bad.append(f"slots[{l}]: expert ids must be in -1..{E - 1} (-1 = empty slot)")
        if bad:
            return CheckReport.infeasible(*bad[:5])
        X = self.replica_matrix(slots)
        r = X.sum(axis=2)
        violations = []
        dup = int(np.maximum(X - 1, 0).sum())
        if dup:
            l, e, g = (int(v) for v in np.argwhere(X > 1)[0])
            violations.append(
                f"{dup} replica(s) share a GPU with another replica of the same expert "
                f"(e.g. layer {l}, expert {e}, GPU {g})"
            )
        missing = np.argwhere(r == 0)
        if len(missing):
            l, e = (int(v) for v in missing[0])
            violations.append(
                f"{len(missing)} (layer, expert) pair(s) have no replica "
                f"(e.g. layer {l}, expert {e})"
            )
        if violations:
            return CheckReport.infeasible(*violations, metrics={"same_gpu_replicas": dup})
        loads = self._gpu_loads(X)
        layer_max = loads.max(axis=1)
        layer_mean = self.load_array.sum(axis=1) / G
        per_layer = [float(m / x) if x > 0 else 1.0 for m, x in zip(layer_mean, layer_max)]
        tr = self._traffic(X)
        sum_max = float(layer_max.sum())
        objective = self._objective(layer_max, tr["comm_cost"])
        metrics = {
            "balancedness": float(layer_mean.sum() / sum_max) if sum_max > 0 else 1.0,
            "balancedness_min": min(per_layer),
            "balancedness_per_layer": [round(b, 6) for b in per_layer],
            "max_gpu_load": float(layer_max.max()),
            "sum_max_gpu_load": sum_max,
            "cross_gpu_traffic": tr["cross_gpu_traffic"],
            "cross_node_traffic": tr["cross_node_traffic"],
            "comm_cost": tr["comm_cost"],
            "local_share": tr["local_share"],
            "replicas": int(r.sum()),
            "empty_slots": int(L * S - r.sum()),
            "same_gpu_replicas": 0,
        }
        return CheckReport(True, objective, metrics)


# -- instance generator --------------------------------------------------------------------------

#: shape name -> (layers, experts, top-k, gpus, nodes, slots per GPU)
SHAPES: dict[str, tuple[int, int, int, int, int, int]] = {
    "mixtral": (32, 8, 2, 4, 1, 2),  # Mixtral-8x7B: 32 layers x 8 experts, top-2
    "deepseek-v3": (58, 256, 8, 32, 4, 9),  # DeepSeek-V3: 58 MoE layers x 256 routed experts, top-8
    "qwen-moe": (48, 128, 8, 16, 2, 9),  # Qwen3-30B-A3B-like: 48 layers x 128 experts, top-8
    "tiny": (3, 4, 2, 2, 1, 2),
}


GENERATOR_OPTIONS = {
    "seed": Opt("Random seed of the model (popularity, token types): each seed, another trace."),
    "shape": Opt(
        "Model and cluster preset: layers, experts, top-k, GPUs, nodes and slots per GPU "
        "(options left at 0 take the preset's values).",
        choices=tuple(SHAPES),
    ),
    "layers": Opt("MoE layers (0: the shape's).", unit="layers"),
    "experts": Opt("Routed experts per layer (0: the shape's).", unit="experts"),
    "top_k": Opt("Experts each token is routed to per layer (0: the shape's).", unit="experts"),
    "gpus": Opt("GPUs holding the experts (0: the shape's).", unit="GPUs"),
    "nodes": Opt("Nodes the GPUs are spread over, equally (0: the shape's).", unit="nodes"),
    "slots_per_gpu": Opt(
        "Expert slots per GPU; slots beyond the experts hold replicas (0: the shape's, or just "
        "enough for the experts).",
        unit="slots",
    ),
    "tokens": Opt("Tokens in the routing trace.", unit="tokens"),
    "skew": Opt(
        "How uneven expert popularity is: sigma of the log-normal, or the Zipf exponent.",
        unit="dimensionless",
    ),
    "distribution": Opt("Law of expert popularity.", choices=("lognormal", "zipf")),
    "affinity_strength": Opt(
        "How strongly a token's type ties its experts across consecutive layers (0: layers "
        "independent).",
        unit="logit scale",
    ),
    "token_types": Opt("Latent token types (0: max(4, 2 x GPUs)).", unit="types"),
    "window": Opt(
        "Time window: popularity drifts from window to window, so a plan made on window w can be "
        "scored on window w+1.",
        unit="windows",
    ),
    "drift": Opt("Step of the popularity random walk per window.", unit="logit scale"),
    "comm_weight": Opt(
        "Weight of the communication cost against load balance in the objective (0: balance only).",
        unit="load per token hop",
    ),
    "intra_node_cost": Opt("Cost of a token crossing GPUs inside a node.", unit="per token"),
    "inter_node_cost": Opt("Cost of a token crossing nodes.", unit="per token"),
    "with_affinity": Opt(
        "Record layer-to-layer co-routing counts (needed for the communication term).",
        choices=("true", "false"),
    ),
}


@generator("expert-placement", GENERATOR_OPTIONS)
def generate(
    seed: int = 0,
    shape: str = "mixtral",
    layers: int = 0,
    experts: int = 0,
    top_k: int = 0,
    gpus: int = 0,
    nodes: int = 0,
    slots_per_gpu: int = 0,
    tokens: int = 4096,
    skew: float = 1.0,
    distribution: str = "lognormal",
    affinity_strength: float = 2.0,
    token_types: int = 0,
    window: int = 0,
    drift: float = 0.3,
    comm_weight: float = 0.05,
    intra_node_cost: float = 1.0,
    inter_node_cost: float = 4.0,
    with_affinity: bool = True,
) -> ExpertPlacement:
    """A routing trace of `tokens` tokens through an MoE model of the given `shape`.

    The model (fixed by `seed`): per-layer expert popularity (log-normal with sigma `skew`, or Zipf
    with exponent `skew`), and `token_types` latent token types with their own per-layer expert
    preferences (strength `affinity_strength`; 0 = layers independent). Each token draws a type and,
    per layer, its top-k experts by Gumbel-top-k sampling of popularity + preference logits, so
    consecutive layers' choices are correlated as in real traces. `load` counts tokens per expert;
    `affinity[l][e][f]` counts tokens choosing `e` at layer l and `f` at layer l+1.
    `window` picks the time window: popularity drifts as a random walk (step `drift`) from window
    to window and the tokens are resampled, so a plan from window w can be scored on window w+1.
    Options left at 0 take the shape's values.
    """
    if shape not in SHAPES:
        raise InputError(
            f"generate expert-placement: option --shape: one of {', '.join(SHAPES)}, got {shape!r}"
        )
    if distribution not in ("lognormal", "zipf"):
        raise InputError("generate expert-placement: option --distribution: 'lognormal' or 'zipf'")
    L0, E0, k0, G0, N0, S0 = SHAPES[shape]
    L, E, k = layers or L0, experts or E0, top_k or k0
    G, N = gpus or G0, nodes or (N0 if not gpus else 1)
    if slots_per_gpu:
        S = slots_per_gpu
    elif experts or gpus:
        S = -(-E // G) + (S0 - E0 // G0 if E0 % G0 == 0 and S0 > E0 // G0 else 0)
    else:
        S = S0
    if min(L, E, k, G, N, S, tokens, window + 1) < 1 or k > E or G % N or skew < 0 or drift < 0:
        raise InputError(
            "generate expert-placement: need layers, experts, top_k, gpus, nodes, slots, tokens >= 1, "
            "top_k <= experts, gpus divisible by nodes, window, skew, drift >= 0"
        )
    if G * S < E:
        raise InputError(f"generate expert-placement: {G} GPUs x {S} slots < {E} experts")
    T = token_types or max(4, 2 * G)
    rng = np.random.default_rng(seed)
    if distribution == "lognormal":
        base = rng.normal(0.0, skew, size=(L, E))
    else:
        ranks = np.stack([rng.permutation(E) + 1 for _ in range(L)])
        base = -skew * np.log(ranks)
    prefs = rng.normal(0.0, 1.0, size=(T, L, E)) * affinity_strength
    type_p = rng.dirichlet(np.ones(T) * 2.0)
    wrng = np.random.default_rng([seed, window + 1])
    walk = np.zeros((L, E))
    drift_rng = np.random.default_rng([seed, 10**6])
    for _ in range(window):
        walk += drift_rng.normal(0.0, drift, size=(L, E))
    logits_l = base + walk
    types = wrng.choice(T, size=tokens, p=type_p)
    choice = np.empty((L, tokens, k), dtype=np.int64)
    for l in range(L):
        logits = logits_l[l][None, :] + prefs[types, l, :] + wrng.gumbel(size=(tokens, E))
        choice[l] = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    load = np.zeros((L, E), dtype=np.int64)
    for l in range(L):
        load[l] = np.bincount(choice[l].ravel(), minlength=E)
    affinity = None
    if with_affinity and L > 1:
        affinity = np.zeros((L - 1, E, E), dtype=np.int64)
        for l in range(L - 1):
            a = np.repeat(choice[l], k, axis=1).ravel()
            b = np.tile(choice[l + 1], (1, k)).ravel()
            affinity[l] = np.bincount(a * E + b, minlength=E * E).reshape(E, E)
    gpu_node = [g // (G // N) for g in range(G)] if N > 1 else None
    name = f"ep_{shape}_L{L}_E{E}_k{k}_G{G}_N{N}_S{S}_t{tokens}_s{seed}_w{window}"
    return ExpertPlacement(
        name=name,
        gpus=G,
        slots_per_gpu=S,
        load=load.tolist(),
        affinity=affinity.tolist() if affinity is not None else None,
        gpu_node=gpu_node,
        link_cost=LinkCost(intra_node=intra_node_cost, inter_node=inter_node_cost)
        if N > 1
        else None,
        comm_weight=comm_weight or None,
    )


def read_eplb_example(path: Any) -> tuple[ExpertPlacement, dict]:
    """The EPLB README example file -> (instance, its expected EPLB output block)."""
    import json
    from pathlib import Path

    data = json.loads(Path(path).read_text())
    inst = ExpertPlacement(
        name="eplb_readme_example",
        gpus=data["gpus"],
        slots_per_gpu=data["slots_per_gpu"],
        load=data["load"],
        gpu_node=data.get("gpu_node"),
    )
    return inst, data["eplb_hierarchical_output"]


def brute_force(
    problem: ExpertPlacement, max_states: int = 2_000_000
) -> tuple[float, list[list[int]]]:
    """Optimum by exhaustive search over all placements (tiny instances only; for tests)."""
    import itertools

    L, E, G, S = problem.num_layers, problem.num_experts, problem.gpus, problem.slots_per_gpu
    # per layer: every way to give each GPU a set of at most S distinct experts covering all experts
    subsets = [c for size in range(S + 1) for c in itertools.combinations(range(E), size)]
    layer_options = []
    for combo in itertools.product(subsets, repeat=G):
        if set().union(*map(set, combo)) == set(range(E)):
            layer_options.append([e for c in combo for e in list(c) + [-1] * (S - len(c))])
    if len(layer_options) ** L > max_states:
        raise ValueError(f"brute force: {len(layer_options)}^{L} placements is too many")
    best, best_sol = math.inf, None
    for sol in itertools.product(layer_options, repeat=L):
        obj = problem.objective_of(sol)
        if obj < best:
            best, best_sol = obj, [list(x) for x in sol]
    return best, best_sol


def random_placement(problem: ExpertPlacement, seed: int = 0) -> list[list[int]]:
    """A random feasible placement (each expert once, round-robin over shuffled GPUs); for tests."""
    rng = random.Random(seed)
    out = []
    for _ in range(problem.num_layers):
        row = [-1] * problem.num_slots
        order = list(range(problem.num_experts))
        rng.shuffle(order)
        for i, e in enumerate(order):
            g, j = i % problem.gpus, i // problem.gpus
            row[g * problem.slots_per_gpu + j] = e
        out.append(row)
    return out
