"""Throughput profiles for `gpu-selection`: from measurements (CSV) and a synthetic roofline set.

A profile is, per GPU type, a table `throughput[i][j]`: the highest request rate (req/s) that one
GPU sustains for requests of input bucket i and output bucket j while meeting the latency SLO
(0 = it cannot). Two ways to get one:

- `profile_from_csv(path, slo)`: from load-test measurements, one row per (gpu, input_bucket,
  output_bucket, request_rate) with latency percentiles and the achieved throughput. A bucket's
  entry is the highest offered rate whose every SLO column is within its limit and whose achieved
  throughput is at least `min_ratio` (0.9) times the offered rate; 0 when no row qualifies or the
  bucket was not measured.
- `roofline_profiles()`: the shipped synthetic set for L4, A10G, A100-80GB and H100 serving a
  Llama-2-7B-sized model in fp16 (a roofline model of continuous batching; see `roofline_rate`).
  Written to `instances/gpu-selection/profiles/roofline-llama2-7b.json` by
  `python -m optkit.problems.gpu_profiles`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from optkit.errors import InputError

# -- measurements -> throughput tables ----------------------------------------------------------

REQUIRED_COLUMNS = ("gpu", "input_bucket", "output_bucket", "request_rate")
ACHIEVED_COLUMNS = ("achieved_rate", "achieved_throughput")


def parse_slo(text: str | dict | None) -> dict[str, float]:
    """`"ttft_p99_ms=2000,tpot_p99_ms=100"` (or a dict) -> {column: limit}."""
    if not text:
        return {}
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        for part in str(text).split(","):
            key, sep, raw = part.strip().partition("=")
            if not sep or not key.strip():
                raise InputError(
                    f"slo: expected COLUMN=LIMIT[,COLUMN=LIMIT...], got {part.strip()!r}"
                )
            items.append((key.strip(), raw))
    out = {}
    for key, raw in items:
        try:
            limit = float(raw)
        except (TypeError, ValueError):
            raise InputError(f"slo: limit of '{key}' is not a number: {raw!r}") from None
        if not math.isfinite(limit) or limit < 0:
            raise InputError(f"slo: limit of '{key}' must be a non-negative number, got {raw!r}")
        out[key] = limit
    return out


def read_measurements(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a measurement CSV (header line first; '#' lines are comments), numbers parsed."""
    p = Path(path)
    try:
        lines = [
            ln
            for ln in p.read_text(encoding="utf-8").splitlines()
            if not ln.lstrip().startswith("#")
        ]
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read: {e}") from None
    reader = csv.DictReader(lines)
    if reader.fieldnames is None:
        raise InputError(
            f"{p}: empty CSV (expected a header with {', '.join(REQUIRED_COLUMNS)}, ...)"
        )
    fields = [f.strip() for f in reader.fieldnames]
    missing = [c for c in REQUIRED_COLUMNS if c not in fields]
    if missing or not any(c in fields for c in ACHIEVED_COLUMNS):
        need = missing + ([] if any(c in fields for c in ACHIEVED_COLUMNS) else ["achieved_rate"])
        raise InputError(f"{p}: missing column(s) {', '.join(need)} (has {', '.join(fields)})")
    rows = []
    for lineno, raw in enumerate(reader, 2):
        row: dict[str, Any] = {}
        for key, value in raw.items():
            key = (key or "").strip()
            value = (value or "").strip()
            if key == "gpu":
                if not value:
                    raise InputError(f"{p}: row {lineno}: column 'gpu' is empty")
                row[key] = value
            elif key in ("input_bucket", "output_bucket"):
                try:
                    row[key] = int(value)
                    if row[key] < 0:
                        raise ValueError
                except ValueError:
                    raise InputError(
                        f"{p}: row {lineno}: column '{key}' must be a bucket index >= 0, "
                        f"got {value!r}"
                    ) from None
            elif key:
                try:
                    row[key] = float(value) if value else None
                except ValueError:
                    raise InputError(
                        f"{p}: row {lineno}: column '{key}' is not a number: {value!r}"
                    ) from None
                if row[key] is not None and (not math.isfinite(row[key]) or row[key] < 0):
                    raise InputError(
                        f"{p}: row {lineno}: column '{key}' must be a finite number >= 0, "
                        f"got {value!r}"
                    )
        rows.append(row)
    return rows


def build_throughput(
    rows: Iterable[dict[str, Any]],
    slo: dict[str, float],
    *,
    min_ratio: float = 0.9,
    shape: tuple[int, int] | None = None,
    source: str = "measurements",
) -> dict[str, list[list[float]]]:
    """Per GPU, per bucket: the highest offered rate meeting every SLO with achieved >= min_ratio x rate.

    Every table has `shape` (default: the largest bucket indices seen + 1); buckets without a
    qualifying row get 0 (cannot serve). An SLO column absent from the rows is an error; an
    empty cell of an SLO column disqualifies its row.
    """
    rows = list(rows)
    if not rows:
        raise InputError(f"{source}: no measurement rows")
    for key in slo:
        if not any(key in r for r in rows):
            raise InputError(f"{source}: SLO column '{key}' is not in the measurements")
    if shape is None:
        shape = (
            max(r["input_bucket"] for r in rows) + 1,
            max(r["output_bucket"] for r in rows) + 1,
        )
    tables: dict[str, list[list[float]]] = {}
    for r in rows:
        table = tables.setdefault(r["gpu"], [[0.0] * shape[1] for _ in range(shape[0])])
        i, j = r["input_bucket"], r["output_bucket"]
        if i >= shape[0] or j >= shape[1]:
            raise InputError(
                f"{source}: bucket ({i}, {j}) of '{r['gpu']}' is outside the {shape[0]}x{shape[1]} grid"
            )
        rate = r.get("request_rate")
        achieved = r.get("achieved_rate", r.get("achieved_throughput"))
        if rate is None or achieved is None or rate <= 0:
            continue
        if achieved < min_ratio * rate:
            continue
        if any(r.get(key) is None or r[key] > limit for key, limit in slo.items()):
            continue
        table[i][j] = max(table[i][j], rate)
    return tables


def profile_from_csv(
    path: str | Path,
    slo: dict[str, float] | str,
    *,
    min_ratio: float = 0.9,
    shape: tuple[int, int] | None = None,
) -> dict[str, list[list[float]]]:
    """`build_throughput` on the rows of a measurement CSV."""
    return build_throughput(
        read_measurements(path),
        parse_slo(slo) if isinstance(slo, str) else slo,
        min_ratio=min_ratio,
        shape=shape,
        source=str(path),
    )


# -- the synthetic roofline set -----------------------------------------------------------------

#: representative (input, output) token counts of the 6 x 6 buckets and their ranges
INPUT_BUCKETS = [(1, 128), (129, 512), (513, 1024), (1025, 2048), (2049, 4096), (4097, 8192)]
OUTPUT_BUCKETS = [(1, 64), (65, 128), (129, 256), (257, 512), (513, 1024), (1025, 2048)]

MODEL = {
    "name": "Llama-2-7B-sized decoder, fp16",
    "params": 6.74e9,
    "bytes_per_param": 2,
    "kv_bytes_per_token": 2 * 32 * 4096 * 2,
}
SLO = {"tpot_ms": 100.0, "ttft_ms": 2000.0}

PRICE_SOURCE = (
    "hourly prices as used by Mélange (Griggs et al., 2024, arXiv:2404.14527): A10G 1.01 and "
    "A100-80GB 3.67 as in Mélange's shipped example (melange/config/example.json); L4 0.70 and "
    "H100 7.5164 as listed in the paper's GPU table (quoted, not re-checked against a cloud "
    "price list; on-demand prices change, pass your own with --prices)"
)

#: memory (GB), memory bandwidth (GB/s), dense fp16 tensor throughput (TFLOP/s), price ($/h)
GPUS = {
    "L4": {"memory_gb": 24, "bandwidth_gbps": 300, "fp16_tflops": 121, "cost_per_hour": 0.70},
    "A10G": {"memory_gb": 24, "bandwidth_gbps": 600, "fp16_tflops": 70, "cost_per_hour": 1.01},
    "A100-80GB": {
        "memory_gb": 80,
        "bandwidth_gbps": 2039,
        "fp16_tflops": 312,
        "cost_per_hour": 3.67,
    },
    "H100": {"memory_gb": 80, "bandwidth_gbps": 3350, "fp16_tflops": 989, "cost_per_hour": 7.5164},
}

#: roofline efficiencies and fixed costs (fractions of peak that serving engines reach)
EFFICIENCY = {
    "bandwidth": 0.8,
    "compute": 0.5,
    "memory_for_weights_and_kv": 0.9,
    "step_overhead_ms": 4.0,
}


def roofline_rate(
    gpu: dict, inp: int, out: int, *, model: dict = MODEL, slo: dict = SLO, eff: dict = EFFICIENCY
) -> float:
    """Highest sustainable req/s of one GPU for requests of `inp` input and `out` output tokens.

    Continuous batching with B requests in flight: a decode step costs
    max(bytes read / bandwidth, flops / compute) + overhead, reading the weights and the KV cache of
    all B requests (average context inp + out/2); a prefill of inp tokens costs max(2 P inp / compute,
    weights / bandwidth) and stalls decoding. At rate r, decoding gets (1 - r p) of the time, so
    r = B / (t(B) out + p B), the time per output token is t(B) / (1 - r p), and the time to first
    token about 2 p. The rate is the best over B with the KV cache fitting in memory, TPOT <= SLO
    and TTFT <= SLO, rounded down to 0.01 req/s (0 when nothing meets the SLO).
    """
    weights = model["params"] * model["bytes_per_param"]
    kv = model["kv_bytes_per_token"]
    bw = gpu["bandwidth_gbps"] * 1e9 * eff["bandwidth"]
    flops = gpu["fp16_tflops"] * 1e12 * eff["compute"]
    free = gpu["memory_gb"] * 1e9 * eff["memory_for_weights_and_kv"] - weights
    context = inp + out / 2
    if free < kv * (inp + out):
        return 0.0
    prefill = max(2 * model["params"] * inp / flops, weights / bw)
    if 2 * prefill * 1e3 > slo["ttft_ms"]:
        return 0.0
    best = 0.0
    for b in range(1, int(free // (kv * context)) + 1):
        step = (
            max((weights + b * context * kv) / bw, 2 * model["params"] * b / flops)
            + eff["step_overhead_ms"] / 1e3
        )
        rate = b / (step * out + prefill * b)
        busy = rate * prefill
        if busy >= 1:
            continue
        if step / (1 - busy) * 1e3 <= slo["tpot_ms"]:
            best = max(best, rate)
    return math.floor(best * 100) / 100


def representative(bucket: tuple[int, int]) -> int:
    """The token count standing for a bucket: the midpoint of its range, rounded down."""
    return (bucket[0] + bucket[1]) // 2


def roofline_profiles() -> dict:
    """The shipped synthetic profile set (the content of roofline-llama2-7b.json)."""
    gpus = {}
    for name, spec in GPUS.items():
        table = [
            [roofline_rate(spec, representative(ib), representative(ob)) for ob in OUTPUT_BUCKETS]
            for ib in INPUT_BUCKETS
        ]
        gpus[name] = {
            "cost_per_hour": spec["cost_per_hour"],
            "specs": {k: v for k, v in spec.items() if k != "cost_per_hour"},
            "throughput": table,
        }
    return {
        "source": "synthetic: optkit.problems.gpu_profiles.roofline_profiles() (a roofline model of "
        "continuous-batching LLM serving; not measurements)",
        "price_source": PRICE_SOURCE,
        "model": MODEL,
        "slo": SLO,
        "efficiency": EFFICIENCY,
        "input_buckets": INPUT_BUCKETS,
        "output_buckets": OUTPUT_BUCKETS,
        "gpus": gpus,
    }


def load_profiles(
    path: str | Path | None = None,
    *,
    slo: str | dict | None = None,
    prices: str | dict | None = None,
    min_ratio: float = 0.9,
) -> dict[str, dict]:
    """{gpu name: {"cost_per_hour", "throughput"}} from the shipped set (path None), a profile JSON
    file of the same layout, or a measurement CSV (with `slo`). Prices: from the file, overridden by
    `prices` ("A10G=1.01,L4=0.7" or a dict); a CSV's GPUs default to the shipped prices by name."""
    shipped = roofline_profiles()["gpus"]
    if path is None or str(path) == "":
        gpus = {n: dict(g) for n, g in shipped.items()}
    elif str(path).lower().endswith(".csv"):
        tables = profile_from_csv(path, parse_slo(slo), min_ratio=min_ratio)
        gpus = {
            n: {"cost_per_hour": shipped.get(n, {}).get("cost_per_hour"), "throughput": t}
            for n, t in tables.items()
        }
    else:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            gpus = {
                n: {"cost_per_hour": g.get("cost_per_hour"), "throughput": g["throughput"]}
                for n, g in data["gpus"].items()
            }
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise InputError(
                f'{path}: not a profile file (expected {{"gpus": {{name: {{"cost_per_hour", '
                f'"throughput"}}}}}}): {e}'
            ) from None
    for name, value in _parse_prices(prices).items():
        if name not in gpus:
            raise InputError(f"prices: unknown GPU type '{name}' (profiles have {', '.join(gpus)})")
        gpus[name]["cost_per_hour"] = value
    for name, g in gpus.items():
        if g.get("cost_per_hour") is None:
            raise InputError(f"prices: no price for GPU type '{name}' (pass --prices {name}=COST)")
    return gpus


def _parse_prices(prices: str | dict | None) -> dict[str, float]:
    if not prices:
        return {}
    if isinstance(prices, dict):
        return {k: float(v) for k, v in prices.items()}
    out = {}
    for part in prices.split(","):
        key, sep, raw = part.strip().partition("=")
        try:
            out[key.strip()] = float(raw)
            if not sep or not key.strip():
                raise ValueError
        except ValueError:
            raise InputError(
                f"prices: expected NAME=COST[,NAME=COST...], got {part.strip()!r}"
            ) from None
    return out


if __name__ == "__main__":  # write the shipped profile set
    import sys

    target = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else (
            Path(__file__).resolve().parents[3]
            / "instances"
            / "gpu-selection"
            / "profiles"
            / "roofline-llama2-7b.json"
        )
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    data = roofline_profiles()
    lines = json.dumps(data, indent=1)
    target.write_text(lines + "\n")
    print(f"wrote {target}")
