"""Expert placement benchmark: our solvers side by side with DeepSeek's EPLB on the same instances.

    .venv/bin/python -m benchmarks.expert_placement            # quick: 1 seed per setting
    .venv/bin/python -m benchmarks.expert_placement --seeds 3  # more seeds

Writes the "expert-placement" section of docs/benchmarks.md. Instances come from the generator
(`optkit generate expert-placement --shape ...`), plus the EPLB README example from ../shared.
"""

from __future__ import annotations

import argparse
import time

import optkit
from benchmarks._common import SHARED, machine, markdown_table, write_section
from optkit.backends.heuristics.expert_placement import traffic_lower_bound
from optkit.problems.expert_placement import generate, read_eplb_example


def _run(problem, solver, **kw):
    t = time.perf_counter()
    r = optkit.solve(problem, solver, threads=1, seed=0, **kw)
    return r, time.perf_counter() - t


def _run_median(problem, solver, repeats=3, **kw):
    """Solve `repeats` times (the solvers are deterministic): the first result, the median `runtime_s`."""
    runs = [optkit.solve(problem, solver, threads=1, seed=0, **kw) for _ in range(repeats)]
    assert all(r.solution == runs[0].solution for r in runs), "expected a deterministic solver"
    return runs[0], sorted(r.runtime_s for r in runs)[repeats // 2]


def _fmt(x, nd=4):
    return "-" if x is None else f"{x:.{nd}f}"


def readme_example() -> str:
    problem, expected = read_eplb_example(SHARED / "expert_placement/eplb_readme_example.json")
    rows = []
    for label, solver, kw in [
        ("eplb (hierarchical, num_groups=4)", "eplb", {"num_groups": 4}),
        ("eplb (global, num_groups=1)", "eplb", {"num_groups": 1}),
        ("eplb (global, repair=true)", "eplb", {"num_groups": 1, "repair": True}),
        ("greedy-affinity", "greedy-affinity", {"num_groups": 4}),
        ("cpsat (10 s)", "cpsat", {"time_limit": 10.0}),
        ("mip (10 s)", "mip", {"time_limit": 10.0}),
    ]:
        r, dt = _run(problem, solver, **kw)
        if r.status.value == "error":
            rows.append([label, "error: " + (r.message or "")[:60], "-", "-", "-", f"{dt:.2f}"])
            continue
        b = r.metrics["balancedness_per_layer"]
        rows.append(
            [
                label,
                r.status.value,
                f"{b[0]:.3f} / {b[1]:.3f}",
                f"{r.metrics['balancedness']:.4f}",
                _fmt(r.bound, 2),
                f"{dt:.2f}",
            ]
        )
    same = (
        "yes"
        if optkit.solve(problem, "eplb", num_groups=4).solution["slots"]
        == [list(x) for x in expected["slots"]]
        else "NO"
    )
    return (
        f"EPLB README example (2 layers, 12 experts, 16 slots, 8 GPUs on 2 nodes). Our `eplb` "
        f"reproduces the published output slot for slot: **{same}** (balancedness "
        f"{expected['balancedness_mean_over_max']}).\n\n"
        + markdown_table(
            ["solver", "status", "balancedness layer 0 / 1", "load-summed", "bound", "time (s)"],
            rows,
        )
    )


def deepseek(seeds: int, strengths: list[float]) -> str:
    rows = []
    notes = []
    for strength in strengths:
        for seed in range(seeds):
            t = time.perf_counter()
            p = generate(seed=seed, shape="deepseek-v3", affinity_strength=strength)
            gen_s = time.perf_counter() - t
            base, _ = _run(p, "eplb", num_groups=8, repair=True)  # also converts the arrays once
            faithful, _ = _run(p, "eplb", num_groups=8)
            glob, _ = _run(p, "eplb", num_groups=1, repair=True)
            ga, ga_s = _run_median(p, "greedy-affinity", num_groups=8)
            gag, gag_s = _run_median(p, "greedy-affinity", num_groups=8, traffic="gpu")
            ga1, ga1_s = _run_median(p, "greedy-affinity", num_groups=1)
            t = time.perf_counter()
            lb = traffic_lower_bound(p)
            lb_s = time.perf_counter() - t
            comb = traffic_lower_bound(p, lp=False)
            dup = base.stats.get("same_gpu_replicas_before_repair", 0)
            for label, r, ref, secs in [
                ("eplb hierarchical (repaired)", base, base.metrics, base.runtime_s),
                ("greedy-affinity num_groups=8 (vs hierarchical)", ga, base.metrics, ga_s),
                (
                    "greedy-affinity num_groups=8 traffic=gpu (vs hierarchical)",
                    gag,
                    base.metrics,
                    gag_s,
                ),
                ("eplb global (repaired)", glob, glob.metrics, glob.runtime_s),
                ("greedy-affinity num_groups=1 (vs global)", ga1, glob.metrics, ga1_s),
            ]:
                m = r.metrics
                rows.append(
                    [
                        f"a={strength} s={seed}",
                        label,
                        f"{m['balancedness']:.4f}",
                        f"{m['balancedness_min']:.4f}",
                        f"{m['local_share']:.3f}",
                        f"{m['cross_gpu_traffic'] / ref['cross_gpu_traffic']:.3f}",
                        f"{lb['cross_gpu_min'] / ref['cross_gpu_traffic']:.3f}",
                        f"{m['cross_node_traffic'] / ref['cross_node_traffic']:.3f}",
                        f"{secs:.2f}",
                    ]
                )
            rows.append(
                [
                    f"a={strength} s={seed}",
                    "eplb hierarchical (faithful)",
                    "infeasible"
                    if faithful.status.value == "error"
                    else f"{faithful.metrics['balancedness']:.4f}",
                    f"{dup} replicas share a GPU" if dup else "-",
                    "",
                    "",
                    "",
                    "",
                    f"gen {gen_s:.1f}",
                ]
            )
            notes.append(
                f"a={strength} s={seed}: local share <= {lb['local_share_max']:.3f} (LP, {lb_s:.1f} s; "
                f"rows/columns only: {comb['local_share_max']:.3f}), so cross-GPU traffic >= "
                f"{lb['cross_gpu_min'] / base.metrics['cross_gpu_traffic']:.3f}x hierarchical EPLB's"
            )
    return (
        "DeepSeek-V3-like traces (58 layers x 256 experts, top-8, 32 GPUs on 4 nodes, 288 slots, "
        "4096 tokens; `a` = `--affinity-strength`, default 2). Traffic ratios are relative to the EPLB "
        "policy named in the row (hierarchical with DeepSeek's 8 expert groups, or global), repaired: "
        "faithful EPLB puts replicas of one expert on the same GPU on every one of these instances, "
        'see the last row of each block. "lower bound" is `traffic_lower_bound` (the b-matching LP '
        "bound of docs/expert_placement.md): no placement at all, whatever its balance, has less "
        "cross-GPU traffic. `traffic=gpu` scores GPU-local tokens only (the default weighs node-local "
        "tokens by the link costs, i.e. minimises `comm_cost`). Time = the solver's `runtime_s`, for "
        "greedy-affinity the median of 3 identical runs (the instance's arrays already converted "
        "by the EPLB runs before it; the first conversion adds about 0.2 s).\n\n"
        + markdown_table(
            [
                "instance",
                "solver",
                "balancedness (load-summed)",
                "worst layer",
                "local share",
                "cross-GPU / EPLB",
                "lower bound on cross-GPU / EPLB",
                "cross-node / EPLB",
                "time (s)",
            ],
            rows,
        )
        + "\n\nBounds: "
        + "; ".join(notes)
        + "."
    )


def mixtral(seeds: int) -> str:
    rows = []
    for gpus in (4, 8):
        for seed in range(seeds):
            p = generate(
                seed=seed, shape="mixtral", gpus=gpus, slots_per_gpu=8 // gpus, comm_weight=0.05
            )
            # a hard wall clock: HiGHS 1.14 stays ~85 s in its root cut loop on these models, past its limit
            exact = {"time_limit": 10.0, "hard_limit": True}
            for solver, kw in [
                ("eplb", {}),
                ("greedy-affinity", {}),
                ("dp", exact),
                ("cpsat", exact),
                ("mip", exact),
            ]:
                r, dt = _run(p, solver, **kw)
                m = r.metrics or {}
                rows.append(
                    [
                        f"{gpus} GPUs s={seed}",
                        solver,
                        r.status.value,
                        _fmt(r.objective, 2),
                        _fmt(r.bound, 2),
                        _fmt(m.get("balancedness")),
                        _fmt(m.get("cross_gpu_traffic"), 0),
                        f"{dt:.2f}",
                    ]
                )
    return (
        "Mixtral-8x7B-like traces (32 layers x 8 experts, top-2, 4096 tokens, `comm_weight` 0.05, "
        "one node; exact solvers with a 10 s limit, enforced as a wall clock: `hard_limit=True`).\n\n"
        + markdown_table(
            [
                "instance",
                "solver",
                "status",
                "objective",
                "bound",
                "balancedness",
                "cross-GPU tokens",
                "time (s)",
            ],
            rows,
        )
    )


def qwen(seeds: int) -> str:
    rows = []
    for seed in range(seeds):
        p = generate(seed=seed, shape="qwen-moe")
        base, _ = _run(p, "eplb", repair=True)
        for solver, kw in [("eplb", {"repair": True}), ("greedy-affinity", {})]:
            r, dt = _run(p, solver, **kw)
            m = r.metrics
            rows.append(
                [
                    f"s={seed}",
                    solver,
                    f"{m['balancedness']:.4f}",
                    f"{m['balancedness_min']:.4f}",
                    f"{m['cross_gpu_traffic'] / base.metrics['cross_gpu_traffic']:.3f}",
                    f"{dt:.2f}",
                ]
            )
    return (
        "Qwen-MoE-like traces (48 layers x 128 experts, top-8, 16 GPUs on 2 nodes, 144 slots; EPLB global "
        "policy).\n\n"
        + markdown_table(
            ["instance", "solver", "balancedness", "worst layer", "cross-GPU / EPLB", "time (s)"],
            rows,
        )
    )


def next_window() -> str:
    rows = []
    for shape, kw, groups in [("deepseek-v3", {"affinity_strength": 4.0}, 8), ("mixtral", {}, 1)]:
        now = generate(seed=0, shape=shape, window=0, **kw)
        nxt = generate(seed=0, shape=shape, window=1, **kw)
        ref_now = optkit.solve(nxt, "eplb", num_groups=groups, repair=True).metrics
        for solver, skw in [
            ("eplb", {"num_groups": groups, "repair": True}),
            ("greedy-affinity", {"num_groups": groups}),
        ]:
            plan = optkit.solve(now, solver, **skw).solution
            m = nxt.check(plan).metrics
            fresh = optkit.solve(nxt, solver, **skw).metrics
            rows.append(
                [
                    shape,
                    solver,
                    f"{m['balancedness']:.4f}",
                    f"{fresh['balancedness']:.4f}",
                    f"{m['cross_gpu_traffic'] / ref_now['cross_gpu_traffic']:.3f}",
                    f"{fresh['cross_gpu_traffic'] / ref_now['cross_gpu_traffic']:.3f}",
                ]
            )
    return (
        "Plan on window 0, serve window 1 (`--window 0` vs `--window 1`: popularity drifts, tokens "
        "resampled). Traffic relative to EPLB re-planned on window 1.\n\n"
        + markdown_table(
            [
                "shape",
                "solver",
                "balancedness (stale plan)",
                "balancedness (re-planned)",
                "cross-GPU / EPLB (stale)",
                "cross-GPU / EPLB (re-planned)",
            ],
            rows,
        )
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument(
        "--strengths", default="2,4,8", help="affinity strengths of the DeepSeek-like traces"
    )
    ap.add_argument(
        "--only",
        default=None,
        help=f"comma-separated blocks to rerun ({', '.join(BLOCKS)}); the others are kept as they "
        "are in docs/benchmarks.md, and the rerun blocks name their own command",
    )
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    only = [b.strip() for b in args.only.split(",")] if args.only else list(BLOCKS)
    unknown = [b for b in only if b not in BLOCKS]
    if unknown:
        ap.error(f"--only: unknown block(s) {unknown}; choose from {', '.join(BLOCKS)}")
    cmd = (
        "OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.expert_placement"
        + (f" --seeds {args.seeds}" if args.seeds != 1 else "")
        + (f" --strengths {args.strengths}" if args.strengths != "2,4,8" else "")
    )
    run = {
        "readme": readme_example,
        "deepseek": lambda: deepseek(args.seeds, [float(x) for x in args.strengths.split(",")]),
        "mixtral": lambda: mixtral(args.seeds),
        "qwen": lambda: qwen(args.seeds),
        "window": next_window,
    }
    kept = _existing_blocks() if args.only else {}
    parts = []
    for key in BLOCKS:
        if key in only:
            text = run[key]()
            if args.only:
                text += (
                    f"\n\n(Block rerun on its own: `{cmd} --only {key}`, {machine()}, "
                    f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.)"
                )
            parts.append(text)
        elif key in kept:
            parts.append(kept[key])
    text = "\n\n".join(
        [
            "## Expert placement (MoE)",
            (
                f"Command: `{cmd}` ({machine()}; a 2-core machine shared with other jobs, so times are "
                "pessimistic and noisy; threads=1 everywhere)."
            ),
            *parts,
        ]
    )
    print(text)
    if not args.no_write:
        write_section("expert-placement", text)


#: block key -> the words its text starts with (to find it again in docs/benchmarks.md)
BLOCKS = {
    "readme": "EPLB README example",
    "deepseek": "DeepSeek-V3-like traces",
    "mixtral": "Mixtral-8x7B-like traces",
    "qwen": "Qwen-MoE-like traces",
    "window": "Plan on window 0",
}


def _existing_blocks() -> dict[str, str]:
    """The blocks of the current expert-placement section of docs/benchmarks.md, by key."""
    import re

    from benchmarks._common import DOC

    m = re.search(
        r"<!-- begin expert-placement -->(.*?)<!-- end expert-placement -->",
        DOC.read_text() if DOC.exists() else "",
        re.DOTALL,
    )
    if not m:
        return {}
    body = m.group(1)
    starts = sorted(
        (body.find("\n" + head), key) for key, head in BLOCKS.items() if body.find("\n" + head) >= 0
    )
    out = {}
    for i, (pos, key) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(body)
        out[key] = body[pos:end].strip()
    return out


if __name__ == "__main__":
    main()
