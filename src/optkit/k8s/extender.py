"""The scheduler extender: how a plan's placements reach a stock kube-scheduler.

kube-scheduler POSTs `ExtenderArgs` to `<urlPrefix>/<filterVerb>` and `<urlPrefix>/<prioritizeVerb>`
(k8s.io/kube-scheduler/extender/v1; Go field names, no JSON tags)::

    ExtenderArgs          {"Pod": v1.Pod, "Nodes": v1.NodeList | null, "NodeNames": [str] | null}
    ExtenderFilterResult  {"Nodes": v1.NodeList | null, "NodeNames": [str] | null,
                           "FailedNodes": {node: reason}, "FailedAndUnresolvableNodes": {node: reason},
                           "Error": str}
    HostPriorityList      [{"Host": str, "Score": int}]   # 0..MaxExtenderPriority (10)

With `nodeCacheCapable: true` the scheduler sends `NodeNames` and reads `NodeNames` back; without,
it sends and reads full `Nodes`. A pod pinned by the active plan is restricted to its planned node
(the other candidates go to `FailedAndUnresolvableNodes`, so preemption leaves them alone); a new
pod of an owner with planned replicas is restricted to the slot the controller reserved for it,
or, before the controller has seen it, to the nodes where the owner has planned slots nobody
reserved; every other pod passes through unchanged. `filter` and `prioritize` only read the pins
(`optkit.k8s.pins`): no request can reserve or release anything.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.request
from typing import Any, ClassVar
from urllib.parse import urlsplit

from optkit.k8s.httpserver import BoundedHTTPServer, Limits, Response
from optkit.k8s.pins import PinSet, PinStore, owner_key
from optkit.k8s.snapshot import meta

__all__ = [
    "MAX_EXTENDER_PRIORITY",
    "Extender",
    "ExtenderServer",
    "Limits",
    "Metrics",
    "PinSet",
    "PinStore",
    "http_extender",
    "owner_key",
]

MAX_EXTENDER_PRIORITY = 10


# -- metrics ----------------------------------------------------------------------------------------


class Metrics:
    """Counters for /metrics (Prometheus text format 0.0.4)."""

    HELP: ClassVar[dict[str, tuple[str, str]]] = {
        "optkit_k8s_plans_total": ("counter", "Plans computed"),
        "optkit_k8s_plans_accepted_total": (
            "counter",
            "Plans better than the current placement and still valid",
        ),
        "optkit_k8s_plans_rejected_total": ("counter", "Plans not carried out, by reason"),
        "optkit_k8s_pods_placed_total": ("counter", "Pinned pods bound to their planned node"),
        "optkit_k8s_evictions_total": ("counter", "Evictions, by result"),
        "optkit_k8s_solve_seconds": ("summary", "Wall-clock time of the solver per plan"),
        "optkit_k8s_extender_requests_total": ("counter", "Extender calls, by verb"),
        "optkit_k8s_extender_rejected_total": (
            "counter",
            "HTTP requests refused (too_large, bad_json, busy)",
        ),
        "optkit_k8s_plans_aborted_total": (
            "counter",
            "Plans stopped while evicting, by reason",
        ),
        "optkit_k8s_pinned_pods": ("gauge", "Placements of the active plan not carried out yet"),
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple], float] = {}

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        with self._lock:
            k = (name, tuple(sorted(labels.items())))
            self._values[k] = self._values.get(k, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = value

    def observe(self, name: str, value: float) -> None:
        self.inc(name + "_sum", value)
        self.inc(name + "_count")

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> str:
        with self._lock:
            values = dict(self._values)
        lines = []
        for name, (kind, text) in self.HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            names = (name + "_sum", name + "_count") if kind == "summary" else (name,)
            for n in names:
                series = sorted((lab, v) for (m, lab), v in values.items() if m == n) or [((), 0.0)]
                for lab, v in series:
                    label = (
                        "{" + ",".join(f'{k}="{_escape(val)}"' for k, val in lab) + "}"
                        if lab
                        else ""
                    )
                    lines.append(f"{n}{label} {_num(v)}")
        return "\n".join(lines) + "\n"


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


# -- the extender -----------------------------------------------------------------------------------


class Extender:
    """Answers kube-scheduler's `filter` and `prioritize` calls from the pins of the active plan."""

    def __init__(self, pins: PinStore | None = None, metrics: Metrics | None = None):
        self.pins = pins or PinStore()
        self.metrics = metrics or Metrics()

    def handle(self, verb: str, args: Any) -> Any:
        if verb == "filter":
            return self.filter(args)
        if verb == "prioritize":
            return self.prioritize(args)
        raise ValueError(f"unknown verb {verb!r}")

    @staticmethod
    def _candidates(args: dict) -> tuple[list[str], bool]:
        """Candidate node names and whether they came as NodeNames (nodeCacheCapable)."""
        names = args.get("NodeNames")
        if names is not None:
            if not isinstance(names, list):
                raise TypeError("NodeNames is not a list")
            return names, True  # not copied: a pod that passes through gets the same list back
        items = ((args.get("Nodes") or {}).get("items")) or []
        return [meta(n).get("name") for n in items], False

    def filter(self, args: Any) -> dict:
        self.metrics.inc("optkit_k8s_extender_requests_total", verb="filter")
        if not isinstance(args, dict) or not isinstance(args.get("Pod"), dict):
            return {
                "Nodes": None,
                "NodeNames": None,
                "FailedNodes": {},
                "FailedAndUnresolvableNodes": {},
                "Error": "ExtenderArgs: field 'Pod' is missing",
            }
        names, by_name = self._candidates(args)
        targets, why = self.pins.target_nodes(args["Pod"])
        keep = names if targets is None else [n for n in names if n in targets]
        failed = {} if targets is None else {n: why for n in names if n not in targets}
        result: dict[str, Any] = {
            "Nodes": None,
            "NodeNames": None,
            "FailedNodes": {},
            "FailedAndUnresolvableNodes": failed,
            "Error": "",
        }
        if by_name:
            result["NodeNames"] = keep
        else:
            kept = set(keep)
            nodes = args.get("Nodes") or {}
            result["Nodes"] = {
                **{k: v for k, v in nodes.items() if k != "items"},
                "items": [n for n in nodes.get("items") or [] if meta(n).get("name") in kept],
            }
        return result

    def prioritize(self, args: Any) -> list[dict]:
        self.metrics.inc("optkit_k8s_extender_requests_total", verb="prioritize")
        if not isinstance(args, dict) or not isinstance(args.get("Pod"), dict):
            return []
        names, _ = self._candidates(args)
        targets, _ = self.pins.target_nodes(args["Pod"])
        return [
            {"Host": n, "Score": MAX_EXTENDER_PRIORITY if targets and n in targets else 0}
            for n in names
        ]


# -- HTTP -------------------------------------------------------------------------------------------

JSON = "application/json"


def _json(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value).encode(), JSON)


class ExtenderServer:
    """`Extender` over HTTP: POST .../filter, .../prioritize; GET /healthz, /metrics.

    Served by `BoundedHTTPServer` under `limits` (body size, timeouts, workers), over TLS when
    `ssl_context` is given. A body that is not JSON, or nested deeper than the parser allows, is
    answered 400 in the verb's own result type; nothing else changes.
    """

    def __init__(
        self,
        extender: Extender,
        host: str = "127.0.0.1",
        port: int = 8888,
        health: Any = None,
        limits: Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.extender = extender
        self.health = health or (lambda: (True, "ok"))
        self.httpd = BoundedHTTPServer(
            (host, port), self.answer, limits, ssl_context, on_reject=self._rejected
        )
        self.scheme = "https" if ssl_context is not None else "http"
        self._thread: threading.Thread | None = None

    def _rejected(self, reason: str) -> None:
        self.extender.metrics.inc("optkit_k8s_extender_rejected_total", reason=reason)

    def answer(self, method: str, target: str, body: bytes) -> Response:
        """The response to one request (the body already read whole)."""
        path = urlsplit(target).path.rstrip("/")
        if method == "GET" and path.endswith("/healthz"):
            ok, text = self.health()
            return Response(200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8")
        if method == "GET" and path.endswith("/metrics"):
            text = self.extender.metrics.render()
            return Response(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
        verb = path.rsplit("/", 1)[-1]
        if verb not in ("filter", "prioritize"):
            return _json(404, {"Error": f"unknown path {path or '/'}"})
        if method != "POST":
            return Response(405, b"POST only\n", "text/plain")
        try:
            args = json.loads(body) if body.strip() else None
            if args is None:
                raise ValueError("empty body")
        except (ValueError, RecursionError) as e:
            self._rejected("bad_json")
            why = "nested too deep" if isinstance(e, RecursionError) else str(e)[:200]
            return _json(
                400, {"Error": f"bad ExtenderArgs JSON: {why}"} if verb == "filter" else []
            )
        try:
            return _json(200, self.extender.handle(verb, args))
        except (RecursionError, TypeError, AttributeError, KeyError, ValueError) as e:
            # JSON, but not shaped like ExtenderArgs (a list where an object belongs, ...)
            self._rejected("bad_json")
            why = f"malformed ExtenderArgs ({type(e).__name__})"
            return _json(400, {"Error": why} if verb == "filter" else [])

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> ExtenderServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(2.0)

    def __enter__(self) -> ExtenderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_extender(url_prefix: str, timeout: float = 5.0):
    """A client that calls an extender the way kube-scheduler does (for `FakeCluster(extender=...)`)."""

    def call(verb: str, args: dict) -> Any:
        req = urllib.request.Request(
            f"{url_prefix.rstrip('/')}/{verb}",
            data=json.dumps(args).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    return call
