"""`optkit report`: tables (Markdown and HTML) and plots of a batch's results file.

Plots (matplotlib, extra `plot`), per problem kind:
- a Dolan-Moré performance profile on the time to reach the reference objective (the known optimum,
  else the best objective any solver of the file found on that instance);
- the mean primal gap to that reference over time (from the improving solutions each task recorded;
  a task with no solution yet counts as gap 1), for numeric objectives;
- one solution drawn (pictures.py): the best one found on the first instance.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

from optkit.batch.records import latest, load_results, resolve_instance
from optkit.batch.summary import HEADER, summarize
from optkit.errors import OptkitError, SolverUnavailable
from optkit.problem import kinds
from optkit.render import OBJECTIVES, objective_line

PLOT_HINT = "pip install 'optkit[plot]'"
TIME_FLOOR = 1e-3  # seconds: runtimes below count as this much in ratios and log axes


def import_pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SolverUnavailable(
            f"optkit report: plots need matplotlib ({PLOT_HINT}); "
            f"or pass --no-plots for tables only"
        ) from None
    return plt


# -- what the tables and plots compute ----------------------------------------------------------


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _sense(problem: str) -> str:
    try:
        return kinds()[problem].sense
    except (KeyError, OptkitError):
        return "min"


def _better(a: Any, b: Any, sense: str) -> bool:
    try:
        return a < b if sense == "min" else a > b
    except TypeError:
        return False


def _same(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))
    return a == b


def references(lines: list[dict], sense: str) -> dict[str, Any]:
    """Per instance path: the known optimum if recorded, else the best objective in the file."""
    ref: dict[str, Any] = {}
    known: dict[str, Any] = {}
    for d in lines:
        key = d["instance_path"]
        if d.get("known_optimum") is not None:
            known[key] = d["known_optimum"]
        if d.get("status") in ("optimal", "feasible") and d.get("objective") is not None:
            if key not in ref or _better(d["objective"], ref[key], sense):
                ref[key] = d["objective"]
    ref.update(known)
    return ref


def primal_gap(objective: Any, reference: Any) -> float:
    """0 at the reference, 1 without a solution or across a sign change (Berthold's primal gap)."""
    if objective is None or not _number(objective) or not _number(reference):
        return 1.0
    if _same(objective, reference):
        return 0.0
    if objective * reference < 0:
        return 1.0
    return min(1.0, abs(objective - reference) / max(abs(objective), abs(reference)))


def profile_times(lines: list[dict], ref: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per solver, per instance: seconds to reach the reference objective, or inf."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for d in lines:
        key, solver = d["instance_path"], d["solver"]
        t = math.inf
        if (
            d.get("status") in ("optimal", "feasible")
            and key in ref
            and _same(d.get("objective"), ref[key])
        ):
            reached = [when for when, obj in d.get("trajectory") or [] if _same(obj, ref[key])]
            t = max(TIME_FLOOR, float(reached[0] if reached else d.get("runtime_s") or 0.0))
        out[solver][key] = t
    return out


def performance_profile(times: dict[str, dict[str, float]]) -> dict[str, list[float]]:
    """Per solver, sorted ratios t_s / min_s t_s over the instances (inf where not solved)."""
    instances = sorted({k for per in times.values() for k in per})
    best = {k: min(per.get(k, math.inf) for per in times.values()) for k in instances}
    return {
        s: sorted(
            per.get(k, math.inf) / best[k] if best[k] < math.inf else math.inf for k in instances
        )
        for s, per in times.items()
    }


def gap_curve(lines: list[dict], ref: dict[str, Any], grid: list[float]) -> list[float]:
    """Mean primal gap over `lines` at each time of `grid`, from their trajectories."""
    total = [0.0] * len(grid)
    for d in lines:
        points = d.get("trajectory") or (
            [[d.get("runtime_s") or 0.0, d["objective"]]]
            if d.get("status") in ("optimal", "feasible")
            else []
        )
        reference = ref.get(d["instance_path"])
        for i, t in enumerate(grid):
            current = None
            for when, obj in points:
                if when <= t:
                    current = obj
            total[i] += primal_gap(current, reference)
    return [x / max(1, len(lines)) for x in total]


# -- the report ---------------------------------------------------------------------------------


def make_report(
    results: str | os.PathLike, folder: str | os.PathLike, plots: bool = True
) -> list[Path]:
    """Write report.md, report.html and the plots into `folder`; return the files written."""
    results = Path(results)
    base = results.resolve().parent
    lines = latest(load_results(results), base=base)
    plt = import_pyplot() if plots else None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for d in lines:
        by_problem[str(d.get("problem"))].append(d)

    doc = _Doc(f"Batch report: {results.name}")
    doc.para(
        f"{len(lines)} result(s) from `{results}`: {len(by_problem)} problem kind(s), "
        f"{len({d['instance_path'] for d in lines})} instance(s). Gaps are to the known optimum "
        f"where an `optima.json` gave one, else the solver's own proven gap."
    )
    doc.heading("Summary", 2)
    doc.table(HEADER, [s.row() for s in summarize(lines)])
    written: list[Path] = []
    for problem, plines in sorted(by_problem.items()):
        sense = _sense(problem)
        ref = references(plines, sense)
        doc.heading(problem, 2)
        doc.heading("Objective per instance", 3)
        if problem in OBJECTIVES:
            doc.para(f"Objective (minimised): {OBJECTIVES[problem]}.")
        solvers = sorted({d["solver"] for d in plines})
        rows = []
        cells: dict[tuple[str, str], dict] = {(d["instance_path"], d["solver"]): d for d in plines}
        for key in sorted({d["instance_path"] for d in plines}):
            name = next(
                d.get("instance") or Path(key).stem for d in plines if d["instance_path"] == key
            )
            row = [str(name)]
            for s in solvers:
                d = cells.get((key, s))
                row.append(_cell(d, ref.get(key)))
            known = next(
                (
                    d.get("known_optimum")
                    for d in plines
                    if d["instance_path"] == key and d.get("known_optimum") is not None
                ),
                None,
            )
            row.append("" if known is None else str(known))
            rows.append(row)
        doc.table(["instance", *solvers, "known optimum"], rows[:500])
        if len(rows) > 500:
            doc.para(f"(first 500 of {len(rows)} instances)")
        doc.para(
            "`*` optimal (proven), `=` equals the reference (known optimum or best found), "
            "`!` error, `inf` proven infeasible, `-` no solution."
        )
        errors = [d for d in plines if d.get("status") == "error"]
        if errors:
            doc.heading("Errors", 3)
            doc.table(
                ["instance", "solver", "message"],
                [
                    [str(d.get("instance")), d["solver"], str(d.get("message"))[:200]]
                    for d in errors[:50]
                ],
            )
        if plt is None:
            continue
        slug = problem.replace("/", "_")
        for title, filename, draw in (
            (
                "Performance profile",
                f"profile_{slug}.png",
                partial(_draw_profile, lines=plines, ref=ref, problem=problem),
            ),
            (
                "Primal gap over time",
                f"gap_{slug}.png",
                partial(_draw_gap, lines=plines, ref=ref, problem=problem),
            ),
        ):
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            try:
                why_not = draw(ax)
                if why_not:
                    doc.heading(title, 3)
                    doc.para(why_not)
                    continue
                fig.tight_layout()
                fig.savefig(folder / filename, dpi=110, bbox_inches="tight")
                written.append(folder / filename)
                doc.heading(title, 3)
                doc.image(filename, f"{title}, {problem}")
            finally:
                plt.close(fig)
        picture = _draw_solution(
            plt, problem, plines, ref, sense, base, folder / f"solution_{slug}.png"
        )
        doc.heading("One solution", 3)
        if isinstance(picture, Path):
            written.append(picture)
            doc.image(picture.name, f"solution of {problem}")
        else:
            doc.para(picture)
    md, htm = folder / "report.md", folder / "report.html"
    md.write_text(doc.markdown())
    htm.write_text(doc.html(folder))
    return [md, htm, *written]


def _cell(d: dict | None, reference: Any) -> str:
    if d is None:
        return ""
    status = d.get("status")
    if status == "error":
        return "!"
    if status == "infeasible":
        return "inf"
    if status not in ("optimal", "feasible"):
        return "-"
    obj = d.get("objective")
    text = f"{obj:.6g}" if isinstance(obj, float) else str(obj)
    if status == "optimal":
        text += " *"
    elif reference is not None and _same(obj, reference):
        text += " ="
    return text


#: per solver line, so that lines on top of each other stay told apart
MARKERS = ("o", "s", "^", "D", "v", "x", "P", "*")
LINESTYLES = ("-", "--", ":", "-.")


def _line_style(k: int, points: int) -> dict[str, Any]:
    """Marker, line style and marker positions of the k-th solver's line; the markers of different
    solvers sit at different points, so identical lines still show every solver's marker."""
    every = max(2, points // 10)
    return {
        "marker": MARKERS[k % len(MARKERS)],
        "linestyle": LINESTYLES[k % len(LINESTYLES)],
        "markersize": 5,
        "markevery": (k % every, every),
        "alpha": 0.9,
    }


def _draw_profile(ax: Any, lines: list[dict], ref: dict[str, Any], problem: str = "") -> str | None:
    ratios = performance_profile(profile_times(lines, ref))
    finite = [r for rs in ratios.values() for r in rs if r < math.inf]
    if not finite:
        return "No solver reached a reference objective: no performance profile."
    top = max(2.0, max(finite) * 1.5)
    for k, (solver, rs) in enumerate(sorted(ratios.items())):
        xs, ys = [1.0], [0.0]
        for i, r in enumerate(rs):
            if r < math.inf:
                xs.append(r)
                ys.append((i + 1) / len(rs))
        xs.append(top)
        ys.append(ys[-1])
        reached = sum(r < math.inf for r in rs)
        label = f"{solver} (reached {reached} of {len(rs)})"
        ax.step(xs, ys, where="post", label=label, **_line_style(k, len(xs)))
    ax.set_xscale("log", base=2)
    ax.set_xlim(1, top)
    ax.set_ylim(-0.04, 1.04)  # lines at 0 and 1 stay visible off the frame
    ax.set_xlabel("tau: time within a factor tau of the fastest solver")
    ax.set_ylabel("share of instances")
    ax.set_title(
        f"{problem}: performance profile (time to reach the reference objective)", fontsize=9
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return None


def _draw_gap(ax: Any, lines: list[dict], ref: dict[str, Any], problem: str = "") -> str | None:
    numeric = [d for d in lines if d.get("objective") is None or _number(d.get("objective"))]
    if not numeric or not any(_number(v) for v in ref.values()):
        return "The objective is not a number (lexicographic): no gap plot; see the table above."
    longest = max(max(TIME_FLOOR, float(d.get("runtime_s") or 0.0)) for d in numeric)
    grid = [TIME_FLOOR * (longest * 1.05 / TIME_FLOOR) ** (i / 99) for i in range(100)]
    by_solver: dict[str, list[dict]] = defaultdict(list)
    for d in numeric:
        by_solver[d["solver"]].append(d)
    for k, (solver, ds) in enumerate(sorted(by_solver.items())):
        curve = [100 * g for g in gap_curve(ds, ref, grid)]
        ax.step(grid, curve, where="post", label=solver, **_line_style(k, len(grid)))
    ax.set_xscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel("mean primal gap to the reference, %")
    ax.set_title(f"{problem}: primal gap over time (100 % = no solution yet)", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return None


def _draw_solution(
    plt: Any,
    problem: str,
    lines: list[dict],
    ref: dict[str, Any],
    sense: str,
    base: Path,
    target: Path,
) -> Path | str:
    from optkit.batch.pictures import PICTURES, figure_size
    from optkit.io import read_data

    draw = PICTURES.get(problem)
    if draw is None:
        return f"No picture for problem '{problem}'."
    solved = [d for d in lines if d.get("status") in ("optimal", "feasible") and d.get("solution")]
    if not solved:
        return "No solution to draw."
    first = min(d["instance_path"] for d in solved)
    best = None
    for d in solved:
        if d["instance_path"] == first and (
            best is None or _better(d["objective"], best["objective"], sense)
        ):
            best = d
    assert best is not None
    try:
        instance = read_data(resolve_instance(best["instance_path"], base))
    except OptkitError as e:
        return f"Cannot draw a solution: the instance file is not readable here ({e})."
    fig = plt.figure(figsize=figure_size(problem, instance, best["solution"]), layout="constrained")
    try:
        draw(fig, instance, best["solution"])
        fig.suptitle(
            f"{best.get('instance')} solved by {best['solver']} ({best['status']})\n"
            + objective_line(instance, best),
            fontsize=10,
        )
        fig.savefig(target, dpi=110, bbox_inches="tight")
    except Exception as e:  # noqa: BLE001 - a picture must never sink the report
        return f"Cannot draw the solution of {best.get('instance')}: {type(e).__name__}: {e}"
    finally:
        plt.close(fig)
    return target


class _Doc:
    """The same report as Markdown and as a self-contained HTML page."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[tuple[str, Any]] = [("h", (1, title))]

    def heading(self, text: str, level: int) -> None:
        self.parts.append(("h", (level, text)))

    def para(self, text: str) -> None:
        self.parts.append(("p", text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.parts.append(("t", (header, rows)))

    def image(self, filename: str, alt: str) -> None:
        self.parts.append(("i", (filename, alt)))

    def markdown(self) -> str:
        out = []
        for kind, value in self.parts:
            if kind == "h":
                out.append("#" * value[0] + " " + value[1])
            elif kind == "p":
                out.append(value)
            elif kind == "t":
                header, rows = value

                def esc(s):
                    return str(s).replace("|", "\\|").replace("\n", " ")

                lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
                out.append("\n".join(lines))
            else:
                out.append(f"![{value[1]}]({value[0]})")
        return "\n\n".join(out) + "\n"

    def html(self, folder: Path | None = None) -> str:
        """One self-contained page: images from `folder` are embedded as data URIs (linked when
        the file is not there), `code` spans become <code> elements."""
        e = html.escape
        body = []
        for kind, value in self.parts:
            if kind == "h":
                body.append(f"<h{value[0]}>{_inline(value[1])}</h{value[0]}>")
            elif kind == "p":
                body.append(f"<p>{_inline(value)}</p>")
            elif kind == "t":
                header, rows = value
                head = "".join(f"<th>{_inline(str(h))}</th>" for h in header)
                trs = "".join(
                    "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            else:
                src = _data_uri(folder / value[0]) if folder else None
                body.append(
                    f'<figure><img src="{e(src or value[0])}" alt="{e(value[1])}">'
                    f"<figcaption>{e(value[1])}</figcaption></figure>"
                )
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
            "td:first-child,th:first-child{text-align:left}th{background:#eee}"
            "code{background:#f3f3f3;padding:0 3px;border-radius:3px}"
            "figure{margin:1em 0}img{max-width:100%}figcaption{font-size:0.8em;color:#555}"
        )
        return (
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{e(self.title)}</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
        )


def _inline(text: str) -> str:
    """Escape `text` for HTML, with `code` spans (the Markdown backticks) as <code> elements."""
    pieces = text.split("`")
    if len(pieces) % 2 == 0:  # an unpaired backtick: keep it literally
        return html.escape(text)
    return "".join(
        f"<code>{html.escape(p)}</code>" if k % 2 else html.escape(p) for k, p in enumerate(pieces)
    )


def _data_uri(path: Path) -> str | None:
    """The PNG at `path` as a data: URI, or None when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
