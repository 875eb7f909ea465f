"""`optkit k8s run | serve | plan | manifests`, added to the main app by `register(app)`.

Importable without the `kubernetes` package (the optional extra `optkit[k8s]`): the client is
imported inside the commands that talk to a cluster, which exit 3 with the install hint when it
is missing.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

err = Console(stderr=True, soft_wrap=True)

k8s_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Kubernetes fallback scheduler: re-pack the cluster when pods stay pending.",
)


def _stdout() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=140)


def _log(msg: str) -> None:
    err.print(f"optkit k8s: {msg}", highlight=False, markup=False)


def _api(kubeconfig: Path | None, context: str | None, in_cluster: bool) -> Any:
    from optkit.k8s.api import KubernetesAPI

    return KubernetesAPI(str(kubeconfig) if kubeconfig else None, context, in_cluster)


def _config(
    window: float,
    solver: str,
    threads: int,
    seed: int,
    param: list[str],
    dry_run: bool,
    **more: Any,
) -> Any:
    from optkit.cli import parse_params
    from optkit.errors import InputError
    from optkit.k8s.planner import PlannerConfig
    from optkit.registry import get_solver

    if not window > 0:
        raise InputError(f"--window must be positive, got {window}")
    spec = get_solver("pod-packing", solver)
    params = spec.resolve_params(parse_params(param))
    return PlannerConfig(
        window=window,
        solver=solver,
        threads=threads,
        seed=seed,
        params=params,
        dry_run=dry_run,
        **more,
    )


def print_plan(plan: Any, console: Console | None = None) -> None:
    """The plan as a table of the pods it places, moves or evicts."""
    console = console or _stdout()
    table = Table(
        title=f"plan {plan.id}: {plan.status}" + (f" ({plan.reason})" if plan.reason else "")
    )
    for col in ("pod", "priority", "action", "from", "to"):
        table.add_column(col)
    for a in plan.actions:
        table.add_row(a.pod, str(a.priority), a.kind, a.source or "-", a.target or "-")
    console.print(table)
    console.print(
        f"objective {plan.objective} (current {plan.current_objective}), solver "
        f"{plan.solver_status}, {plan.solve_s:.2f} s",
        highlight=False,
    )


def _on_sigterm(stop: threading.Event) -> Any:
    """SIGTERM (kubectl delete, rollout) stops the loop cleanly (main thread only); returns the
    previous handler, for `_restore`."""
    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return None


def _restore(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


WindowOpt = typer.Option(1.0, "--window", help="seconds the solver may use (hard wall clock)")
SolverOpt = typer.Option("cpsat", "--solver", "-s", help="pod-packing solver")
ThreadsOpt = typer.Option(1, "--threads", help="solver threads")
SeedOpt = typer.Option(0, "--seed", help="solver seed")
ParamOpt = typer.Option([], "--param", "-p", help="solver parameter KEY=VALUE (repeatable)")
KubeconfigOpt = typer.Option(None, "--kubeconfig", help="kubeconfig file (default ~/.kube/config)")
ContextOpt = typer.Option(None, "--context", help="kubeconfig context")
InClusterOpt = typer.Option(False, "--in-cluster", help="use the pod's service account")
MaxBodyOpt = typer.Option(
    16 * 1024 * 1024, "--max-body", help="largest request body in bytes (larger: 413)"
)
ReadTimeoutOpt = typer.Option(
    10.0, "--read-timeout", help="seconds for one whole request once it has started"
)
IdleTimeoutOpt = typer.Option(
    60.0, "--idle-timeout", help="seconds a keep-alive connection may wait between requests"
)
WorkersOpt = typer.Option(
    32, "--workers", help="connections served at once (more: 503); at least the scheduler's"
)


HostOpt = typer.Option(
    "127.0.0.1", "--host", help="address to listen on (0.0.0.0 inside a pod, behind TLS)"
)
TlsCertOpt = typer.Option(None, "--tls-cert", help="PEM certificate chain: serve HTTPS")
TlsKeyOpt = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert")


def _tls(cert: Path | None, key: Path | None) -> Any:
    """An SSL context from --tls-cert/--tls-key (both or neither), or None."""
    from optkit.errors import InputError

    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise InputError("--tls-cert and --tls-key go together")
    import ssl

    from optkit.k8s.httpserver import tls_context

    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise InputError(f"{path}: {flag}: no such file")
    try:
        return tls_context(str(cert), str(key))
    except (ssl.SSLError, OSError, ValueError) as e:
        raise InputError(f"{cert}, {key}: --tls-cert/--tls-key: not a usable pair ({e})") from None


def _limits(max_body: int, read_timeout: float, idle_timeout: float, workers: int) -> Any:
    from optkit.errors import InputError
    from optkit.k8s.httpserver import Limits

    for name, value in (
        ("--max-body", max_body),
        ("--read-timeout", read_timeout),
        ("--idle-timeout", idle_timeout),
        ("--workers", workers),
    ):
        if not value > 0:
            raise InputError(f"{name} must be positive, got {value}")
    return Limits(
        max_body=max_body,
        read_timeout=read_timeout,
        idle_timeout=idle_timeout,
        write_timeout=read_timeout,
        workers=workers,
    )


@k8s_app.command()
def run(
    window: float = WindowOpt,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="print each plan (table and JSON), change nothing"
    ),
    solver: str = SolverOpt,
    threads: int = ThreadsOpt,
    seed: int = SeedOpt,
    param: list[str] = ParamOpt,
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    in_cluster: bool = InClusterOpt,
    host: str = HostOpt,
    port: int = typer.Option(8888, "--port", help="extender port (0: do not serve the extender)"),
    tls_cert: Path | None = TlsCertOpt,
    tls_key: Path | None = TlsKeyOpt,
    managed_resource: str | None = typer.Option(
        None,
        "--managed-resource",
        help="the scheduler's managedResources entry: only pods requesting it are moved",
    ),
    pins_file: Path | None = typer.Option(
        None, "--pins-file", help="also write the pins here (for `serve`)"
    ),
    debounce: float = typer.Option(
        2.0, "--debounce", help="seconds of quiet after the last Unschedulable event"
    ),
    cooldown: float = typer.Option(5.0, "--cooldown", help="minimum seconds between two plans"),
    plan_ttl: float = typer.Option(
        120.0, "--plan-ttl", help="seconds after which a plan's pins are dropped"
    ),
    max_plans: int | None = typer.Option(None, "--max-plans", help="stop after this many plans"),
    max_seconds: float | None = typer.Option(
        None, "--max-seconds", help="stop after this many seconds"
    ),
    max_body: int = MaxBodyOpt,
    read_timeout: float = ReadTimeoutOpt,
    idle_timeout: float = IdleTimeoutOpt,
    workers: int = WorkersOpt,
) -> None:
    """The controller: watch pending pods, plan within the window, evict, pin (and serve the extender)."""
    from optkit.k8s.extender import Extender, ExtenderServer, Metrics, PinStore
    from optkit.k8s.planner import Controller, Planner

    config = _config(
        window,
        solver,
        threads,
        seed,
        param,
        dry_run,
        debounce=debounce,
        cooldown=cooldown,
        plan_ttl=plan_ttl,
        managed_resource=managed_resource or None,
    )
    limits = _limits(max_body, read_timeout, idle_timeout, workers)
    tls = _tls(tls_cert, tls_key)
    api = _api(kubeconfig, context, in_cluster)
    pins, metrics = PinStore(pins_file), Metrics()
    planner = Planner(api, config, pins, metrics, log=_log)
    controller = Controller(planner)
    if dry_run:
        original = planner.act

        def act_and_print(plan: Any) -> Any:
            plan = original(plan)
            print_plan(plan)
            print(plan.to_json())
            return plan

        planner.act = act_and_print  # type: ignore[method-assign]
    stop = threading.Event()
    previous = _on_sigterm(stop)
    server = None
    if port:

        def health():
            return (
                (True, "ok")
                if not controller.last_error
                else (True, f"ok (last error: {controller.last_error})")
            )

        server = ExtenderServer(
            Extender(pins, metrics), host, port, health=health, limits=limits, ssl_context=tls
        ).start()
        _log(f"extender listening on {server.url}")
    _log(f"watching pods (window {window:g} s, solver {solver}{', dry run' if dry_run else ''})")
    try:
        controller.run(stop, max_plans=max_plans, max_seconds=max_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        _restore(previous)
        if server:
            server.stop()


@k8s_app.command()
def serve(
    host: str = HostOpt,
    port: int = typer.Option(8888, "--port", help="port"),
    tls_cert: Path | None = TlsCertOpt,
    tls_key: Path | None = TlsKeyOpt,
    pins_file: Path | None = typer.Option(
        None, "--pins-file", help="pins written by `run --pins-file`"
    ),
    max_seconds: float | None = typer.Option(
        None, "--max-seconds", help="stop after this many seconds"
    ),
    max_body: int = MaxBodyOpt,
    read_timeout: float = ReadTimeoutOpt,
    idle_timeout: float = IdleTimeoutOpt,
    workers: int = WorkersOpt,
) -> None:
    """The scheduler extender alone: /filter, /prioritize, /healthz, /metrics.

    Without a controller in the same process it follows the pins file that `optkit k8s run
    --pins-file` writes (e.g. on a shared volume); with no pins every pod passes through unchanged.
    """
    from optkit.k8s.extender import Extender, ExtenderServer, PinStore

    limits = _limits(max_body, read_timeout, idle_timeout, workers)
    server = ExtenderServer(
        Extender(PinStore(pins_file, writable=False)),
        host,
        port,
        limits=limits,
        ssl_context=_tls(tls_cert, tls_key),
    )
    stop = threading.Event()
    previous = _on_sigterm(stop)
    server.start()
    _log(f"extender listening on {server.url}")
    try:
        stop.wait(max_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        _restore(previous)
        server.stop()


@k8s_app.command()
def plan(
    window: float = WindowOpt,
    solver: str = SolverOpt,
    threads: int = ThreadsOpt,
    seed: int = SeedOpt,
    param: list[str] = ParamOpt,
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    in_cluster: bool = InClusterOpt,
    from_file: Path | None = typer.Option(
        None,
        "--from-file",
        "-f",
        help="plan from a dump (`kubectl get nodes,pods,pdb -A -o json`) instead of a live cluster",
    ),
    instance: Path | None = typer.Option(
        None, "--instance", help="also write the pod-packing instance here"
    ),
    as_json: bool = typer.Option(False, "--json", help="print only the JSON"),
) -> None:
    """One shot: snapshot, plan, print the plan as a table and as JSON. Changes nothing."""
    from optkit.io import write_text
    from optkit.k8s.planner import Planner
    from optkit.k8s.snapshot import build_snapshot, split_list

    config = _config(window, solver, threads, seed, param, True)
    if from_file is not None:
        from optkit.errors import InputError
        from optkit.io import read_data

        data = read_data(from_file)
        if not isinstance(data, dict):
            raise InputError(f"{from_file}: expected a JSON object (a v1 List)")
        try:
            nodes, pods, pdbs = split_list([data])
            snapshot = build_snapshot(nodes, pods, pdbs, name=from_file.stem)
        except InputError as e:
            raise InputError(f"{from_file}: {e}") from None
        planner = Planner(None, config, log=_log)  # type: ignore[arg-type]
    else:
        planner = Planner(_api(kubeconfig, context, in_cluster), config, log=_log)
        snapshot = planner.snapshot()
    if instance is not None:
        write_text(instance, json.dumps(snapshot.instance, indent=1) + "\n")
    result = planner.plan(snapshot)
    if result.status == "planned":
        result.status = "dry-run"
        result.pins = planner._pins_of(result)
    if not as_json:
        print_plan(result, Console(stderr=True, width=140))
        for key, why in sorted(snapshot.skipped.items()):
            _log(f"left out {key}: {why}")
    print(result.to_json())


@k8s_app.command()
def manifests(
    namespace: str = typer.Option("optkit", "--namespace", "-n", help="namespace for optkit"),
    image: str = typer.Option("optkit:latest", "--image", help="container image with optkit[k8s]"),
    port: int = typer.Option(8888, "--port", help="extender port"),
    cluster_ip: str = typer.Option(
        "10.96.0.88",
        "--cluster-ip",
        help="fixed Service IP that kube-scheduler (host network) can reach",
    ),
    window: float = typer.Option(1.0, "--window", help="--window of the controller"),
    scheduler_config: bool = typer.Option(
        False,
        "--scheduler-config",
        help="print only the KubeSchedulerConfiguration (extenders entry)",
    ),
    scheduler_cidr: list[str] = typer.Option(
        [],
        "--scheduler-cidr",
        help="address range of the control-plane nodes, the only callers the NetworkPolicy "
        "admits (repeatable)",
    ),
    managed_resource: str = typer.Option(
        "optkit.io/managed",
        "--managed-resource",
        help="extended resource a pod requests to be steered by optkit ('' : every pod)",
    ),
    scheduler_kubeconfig: str = typer.Option(
        "/etc/kubernetes/scheduler.conf",
        "--scheduler-kubeconfig",
        help="kube-scheduler's own kubeconfig (k3s: "
        "/var/lib/rancher/k3s/server/cred/scheduler.kubeconfig)",
    ),
) -> None:
    """Print what an operator applies (RBAC, Deployment, Service) and the scheduler's extender config."""
    import ipaddress

    from optkit.errors import InputError
    from optkit.k8s.manifests import render, scheduler_yaml

    for cidr in scheduler_cidr:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise InputError(f"--scheduler-cidr: not an address range: {cidr!r}") from None
    managed = managed_resource or None
    if scheduler_config:
        sys.stdout.write(
            scheduler_yaml(
                port=port,
                cluster_ip=cluster_ip,
                kubeconfig=scheduler_kubeconfig,
                namespace=namespace,
                managed_resource=managed,
            )
        )
    else:
        sys.stdout.write(
            render(
                namespace,
                image,
                port,
                cluster_ip,
                window,
                tuple(scheduler_cidr),
                managed,
                scheduler_kubeconfig,
            )
        )


def register(app: typer.Typer) -> None:
    """Add `optkit k8s` to the main app."""
    app.add_typer(k8s_app, name="k8s")
