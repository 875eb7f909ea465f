"""Build the FlashAttention forward instances (Hopper FA3, Blackwell FA4) from public hardware figures.

Run `python instances/software-pipelining/build_attention.py` to rewrite fa3_hopper.json and
fa4_blackwell.json beside this file. Every cycle count is derived below from the figures named
in the comments; one time unit is 128 SM clock cycles (all counts are rounded to units).
"""

from __future__ import annotations

import json
from pathlib import Path

UNIT = 128  # SM cycles per time unit of the instances

# -- public figures -------------------------------------------------------------------------------
# H100 SXM5 (NVIDIA H100 datasheet / Hopper whitepaper): 989.4 dense BF16 tensor TFLOPS,
# 132 SMs, 1830 MHz boost -> 989.4e12 / (132 * 1.83e9) = 4096 FLOP per SM per cycle.
H100_TC_FLOP_PER_CYCLE = 4096
# Special function units: 16 per SM (4 per SM sub-partition), one exp2 per SFU per cycle; the
# FA3 paper quotes 3.9 TFLOPS of special functions = 3.9e12 / (132 * 1.83e9) = 16 per SM per cycle.
SFU_PER_CYCLE = 16
# FP32 CUDA cores: 128 per SM (Hopper whitepaper).
FP32_PER_CYCLE = 128
# TMA loads of K and V tiles from L2: L2-to-SM bandwidth is not published; ASSUMPTION: 64 B per
# SM per cycle (K/V tiles are shared by all query-tile CTAs of a head, so they hit in L2).
L2_BYTES_PER_CYCLE = 64
# B200 (NVIDIA Blackwell datasheet): 2.25 dense BF16 PFLOPS on 148 SMs, twice Hopper per SM
# per cycle: 8192 FLOP per SM per cycle; the SFU count per SM is unchanged (16 exp2 per cycle),
# which is why FA4 evaluates part of the exponentials with a polynomial on the FMA units.
B200_TC_FLOP_PER_CYCLE = 8192


def units(cycles: float) -> int:
    return max(1, round(cycles / UNIT))


def gemm(m: int, n: int, k: int, flop_per_cycle: int) -> int:
    return units(2 * m * n * k / flop_per_cycle)


def fa3() -> dict:
    d, bc, rows = 128, 128, 64  # head dim, key block per iteration, rows per sub-tile (2 sub-tiles)
    g = gemm(rows, bc, d, H100_TC_FLOP_PER_CYCLE)  # 2*64*128*128/4096 = 512 cycles = 4 units
    load = units(bc * d * 2 / L2_BYTES_PER_CYCLE)  # 32 KiB bf16 tile / 64 B = 512 cycles = 4 units
    exp = units(rows * bc / SFU_PER_CYCLE)  # 8192 exp2 / 16 = 512 cycles = 4 units
    soft = units(
        rows * bc * 3.5 / FP32_PER_CYCLE
    )  # max, scale-subtract FFMA, sum, cvt: ~3.5 op/elem = 224 cycles
    resc = units(
        rows * d / FP32_PER_CYCLE
    )  # O *= exp(m_old - m_new): 8192 FMUL / 128 = 64 cycles -> 1
    acc = rows * bc * 4 // (128 * 4)  # 64x128 fp32 over 128 threads = 64 registers per thread
    p_regs = rows * bc * 2 // (128 * 4)  # P in bf16: 32 registers per thread
    ops = [
        {"name": "LK", "unit": "TMA", "cycles": load, "variable_latency": True, "issue_cycles": 0},
        {"name": "LV", "unit": "TMA", "cycles": load, "variable_latency": True, "issue_cycles": 0},
    ]
    edges = []
    for t in "AB":
        ops += [
            {
                "name": f"S{t}",
                "unit": "TC",
                "cycles": g,
                "regs": acc,
                "issue_cycles": 0,
            },  # S = Q_t K^T (wgmma, async)
            {
                "name": f"M{t}",
                "unit": "ALU",
                "cycles": soft,
                "regs": acc,
            },  # row max, scale, in place on S
            {
                "name": f"E{t}",
                "unit": "SFU",
                "cycles": exp,
                "regs": p_regs,
            },  # P = exp2(S - m), cvt bf16
            {"name": f"R{t}", "unit": "ALU", "cycles": resc},  # rescale O, row sum
            {
                "name": f"O{t}",
                "unit": "TC",
                "cycles": g,
                "regs": acc,
                "issue_cycles": 0,
            },  # O += P V (wgmma)
        ]
        edges += [
            {"from": "LK", "to": f"S{t}", "latency": load + 1},  # TMA transfer plus ~L2 latency
            {
                "from": f"S{t}",
                "to": f"M{t}",
                "latency": g,
                "blocking": True,
                "same_group": True,
            },  # wgmma.wait on S
            {"from": f"M{t}", "to": f"E{t}", "latency": soft, "same_group": True},
            {
                "from": f"R{t}",
                "to": f"M{t}",
                "latency": resc,
                "distance": 1,
            },  # running row max and sum
            {
                "from": f"M{t}",
                "to": f"R{t}",
                "latency": soft,
                "carries_value": False,
            },  # row stats only
            {
                "from": f"E{t}",
                "to": f"O{t}",
                "latency": exp,
                "same_group": True,
            },  # P from registers
            {"from": f"R{t}", "to": f"O{t}", "latency": resc, "same_group": True},  # in place
            {
                "from": f"O{t}",
                "to": f"R{t}",
                "latency": g,
                "distance": 1,
                "same_group": True,
            },  # PV of the last iteration done
            {"from": f"O{t}", "to": f"O{t}", "latency": g, "distance": 1},  # accumulator chain
            {"from": "LV", "to": f"O{t}", "latency": load + 1},
            {
                "from": f"S{t}",
                "to": "LK",
                "latency": g,
                "distance": 2,
                "carries_value": False,
            },  # 2-stage K ring
            {
                "from": f"O{t}",
                "to": "LV",
                "latency": g,
                "distance": 2,
                "carries_value": False,
            },  # V ring
        ]
    return {
        "problem": "software-pipelining",
        "name": "fa3_hopper_fwd",
        "description": (
            "FlashAttention-3 forward main loop on H100 SXM5, head dim 128, 128 query rows as two 64-row "
            "sub-tiles (A, B), 128 keys per iteration; one time unit = 128 SM cycles. From public figures: "
            "989.4 dense BF16 TFLOPS / (132 SMs x 1.83 GHz) = 4096 FLOP/SM/cycle, so each 64x128x128 GEMM "
            "(S = QK^T, O += PV) is 512 cycles = 4 units on TC; 16 SFU exp2 per SM per cycle (FA3 paper: "
            "3.9 TFLOPS special functions), so 64x128 exponentials are 512 cycles = 4 units on SFU; 128 FP32 "
            "lanes per SM: softmax max/scale/sum ~3.5 ops per element = 224 cycles -> 2 units on ALU, O "
            "rescale 64 cycles -> 1 unit; TMA K and V tiles of 32 KiB at an ASSUMED 64 B/SM/cycle from L2 = "
            "4 units each, latency +1 unit. Registers per thread of a 128-thread warp group: a 64x128 fp32 "
            "accumulator is 64, P in bf16 32; setmaxnreg limits 24 (producer) and 240 (consumers) as in "
            "FA3. Producer group 0 runs only the TMA loads; wgmma and TMA are asynchronous (issue_cycles 0); "
            "the softmax waits on its S GEMM (blocking); handing a value between groups costs 1 unit. "
            "Tensor-core bound: ResMII = 4 GEMMs x 4 = 16 units; one consumer group would be busy 22 units "
            "per iteration (two 4-unit waits on S plus 2 x (2 + 4 + 1) of softmax work) and would hold "
            "both 64-register accumulators, so II = 16 needs two consumer groups in ping-pong."
        ),
        "units": {"TC": 1, "SFU": 1, "ALU": 1, "TMA": 1},
        "ops": ops,
        "edges": edges,
        "warp_groups": {
            "count": 3,
            "reg_limit": [24, 240, 240],
            "producer": 0,
            "handoff": 1,
            "producer_exclusive": True,
        },
        "expected": {
            "ii": 16,
            "schedule_length": 30,
            "note": "proven optimal by optkit's cpsat; with one consumer group the optimum is [22, 36]",
        },
    }


def fa4() -> dict:
    d, bc, rows = 128, 128, 128  # two 128-row Q tiles (tcgen05 M = 128), 128 keys per iteration
    g = gemm(rows, bc, d, B200_TC_FLOP_PER_CYCLE)  # 2*128^3/8192 = 512 cycles = 4 units
    load = units(bc * d * 2 / L2_BYTES_PER_CYCLE)  # 4 units
    n_exp = rows * bc  # 16384 exponentials per tile
    exp_sfu = units(0.75 * n_exp / SFU_PER_CYCLE)  # 3/4 on MUFU: 768 cycles = 6 units
    exp_poly = units(
        0.25 * n_exp * 8 / FP32_PER_CYCLE
    )  # 1/4 as a cubic polynomial, ~8 FP32 ops: 256 cycles
    soft = units(n_exp * 3.5 / FP32_PER_CYCLE)  # 448 cycles -> 4 units (rounded from 3.5)
    resc = units(rows * d / FP32_PER_CYCLE)  # 128 cycles = 1 unit
    row = rows * bc * 4 // (128 * 4)  # one row of S per thread: 128 fp32 registers
    ops = [
        {"name": "LK", "unit": "TMA", "cycles": load, "variable_latency": True, "issue_cycles": 0},
        {"name": "LV", "unit": "TMA", "cycles": load, "variable_latency": True, "issue_cycles": 0},
    ]
    edges = []
    for t in "AB":
        ops += [
            {
                "name": f"S{t}",
                "unit": "TC",
                "cycles": g,
                "issue_cycles": 0,
            },  # S in tensor memory (TMEM)
            {
                "name": f"M{t}",
                "unit": "ALU",
                "cycles": soft,
                "regs": row,
            },  # tcgen05.ld S, row max, scale
            {"name": f"E{t}", "unit": "SFU", "cycles": exp_sfu, "regs": row // 2},  # MUFU exp2 part
            {"name": f"X{t}", "unit": "ALU", "cycles": exp_poly},  # polynomial exp2 part, P to TMEM
            {
                "name": f"R{t}",
                "unit": "ALU",
                "cycles": resc,
                "regs": 32,
            },  # correction: O in TMEM rescaled
            {"name": f"O{t}", "unit": "TC", "cycles": g, "issue_cycles": 0},  # O += P V, O in TMEM
        ]
        edges += [
            {"from": "LK", "to": f"S{t}", "latency": load + 1},
            {
                "from": f"S{t}",
                "to": f"M{t}",
                "latency": g,
                "blocking": True,
            },  # accumulator read blocks
            {"from": f"R{t}", "to": f"M{t}", "latency": resc, "distance": 1},
            {"from": f"M{t}", "to": f"E{t}", "latency": soft, "same_group": True},
            {"from": f"M{t}", "to": f"X{t}", "latency": soft, "same_group": True},
            {
                "from": f"M{t}",
                "to": f"R{t}",
                "latency": soft,
                "carries_value": False,
            },  # row stats only
            {"from": f"E{t}", "to": f"O{t}", "latency": exp_sfu},
            {"from": f"X{t}", "to": f"O{t}", "latency": exp_poly},
            {"from": f"R{t}", "to": f"O{t}", "latency": resc},
            {
                "from": f"O{t}",
                "to": f"R{t}",
                "latency": g,
                "distance": 1,
                "blocking": True,
            },  # reads O acc
            {"from": f"O{t}", "to": f"O{t}", "latency": g, "distance": 1},
            {"from": "LV", "to": f"O{t}", "latency": load + 1},
            {"from": f"S{t}", "to": "LK", "latency": g, "distance": 2, "carries_value": False},
            {"from": f"O{t}", "to": "LV", "latency": g, "distance": 2, "carries_value": False},
        ]
    return {
        "problem": "software-pipelining",
        "name": "fa4_blackwell_fwd",
        "description": (
            "FlashAttention-4-style forward main loop on B200, head dim 128, two 128-row Q tiles (A, B), "
            "128 keys per iteration; one time unit = 128 SM cycles. B200: 2.25 dense BF16 PFLOPS on 148 SMs "
            "= 8192 FLOP/SM/cycle (twice Hopper), so each 128x128x128 GEMM is 512 cycles = 4 units; S and O "
            "accumulate in tensor memory (no registers) and reading them (tcgen05.ld) blocks the reading warp "
            "group (blocking edges S->M and O->R). Exponentials: 16384 per tile, 3/4 on the 16 SFU/SM/cycle "
            "(768 cycles = 6 units) and 1/4 as a cubic polynomial on the 128 FP32 lanes (~8 ops each, 256 "
            "cycles = 2 units), the split FA4 describes; softmax max/scale ~3.5 ops per element = 448 cycles "
            "-> 4 units; O correction 1 unit. One thread per row of S: 128 registers for S, 64 for P. "
            "Register limits: 48 producer, 192 for three compute groups (softmax A, softmax B, correction). "
            "TMA tiles as in fa3_hopper_fwd (ASSUMED 64 B/SM/cycle from L2). Handoff 1 unit."
        ),
        "units": {"TC": 1, "SFU": 1, "ALU": 1, "TMA": 1},
        "ops": ops,
        "edges": edges,
        "warp_groups": {
            "count": 4,
            "reg_limit": [48, 192, 192, 192],
            "producer": 0,
            "handoff": 1,
            "producer_exclusive": True,
        },
        "expected": {"ii": 16, "schedule_length": 38, "note": "proven optimal by optkit's cpsat"},
    }


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    for data, fname in ((fa3(), "fa3_hopper.json"), (fa4(), "fa4_blackwell.json")):
        (here / fname).write_text(json.dumps(data, indent=1) + "\n")
        print("wrote", here / fname)
