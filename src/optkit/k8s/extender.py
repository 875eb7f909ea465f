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
pod of an owner with planned replicas is restricted to the nodes where that owner still has
planned, unfilled slots; every other pod passes through unchanged.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from optkit.k8s.snapshot import meta, owner_of

MAX_EXTENDER_PRIORITY = 10


# -- pins -------------------------------------------------------------------------------------------


@dataclass
class PinSet:
    """The placements one plan still has to see carried out."""

    plan_id: str
    expires_at: float  # time.time() seconds
    by_name: dict[str, str] = field(default_factory=dict)  # "ns/name" -> node
    by_owner: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # "ns/Kind/name" -> node -> count
    known_uids: set[str] = field(default_factory=set)  # pods of the snapshot: not "recreated"
    # new pod uid -> (owner, node) it was steered to and is not bound yet: kube-scheduler binds pods
    # back to back, faster than we see bindings, so a slot is reserved at filter time
    assumed: dict[str, tuple[str, str]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not self.by_name and not any(
            c for counts in self.by_owner.values() for c in counts.values()
        )

    def free_slots(self, owner: str, exclude_uid: str | None = None) -> dict[str, int]:
        """Planned slots of `owner` per node, minus those bound or reserved by other pods."""
        free = dict(self.by_owner.get(owner, {}))
        for uid, (o, node) in self.assumed.items():
            if o == owner and uid != exclude_uid and node in free:
                free[node] -= 1
        return {n: c for n, c in free.items() if c > 0}

    def to_dict(self) -> dict:
        return {
            "plan_id": self.plan_id,
            "expires_at": self.expires_at,
            "by_name": self.by_name,
            "by_owner": self.by_owner,
            "known_uids": sorted(self.known_uids),
            "assumed": {u: list(v) for u, v in self.assumed.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> PinSet:
        return cls(
            d["plan_id"],
            float(d["expires_at"]),
            dict(d.get("by_name") or {}),
            {k: dict(v) for k, v in (d.get("by_owner") or {}).items()},
            set(d.get("known_uids") or []),
            {u: (v[0], v[1]) for u, v in (d.get("assumed") or {}).items()},
        )


def owner_key(pod: dict) -> str | None:
    owner = owner_of(pod)
    return f"{meta(pod).get('namespace') or 'default'}/{owner}" if owner else None


class PinStore:
    """Thread-safe pins of the active plan, shared by the controller and the extender.

    With `path`, every change is written there as JSON and a store without a controller
    (`optkit k8s serve --pins-file`) reloads it when the file changes.
    """

    def __init__(self, path: str | Path | None = None, clock: Any = time.time):
        self._lock = threading.Lock()
        self._pins: PinSet | None = None
        self.path = Path(path) if path else None
        self._mtime: float | None = None
        self.clock = clock

    def set(self, pins: PinSet | None) -> None:
        with self._lock:
            self._pins = pins
            self._save()

    def clear(self) -> None:
        self.set(None)

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(self._pins.to_dict() if self._pins else None))
        tmp.replace(self.path)
        self._mtime = self.path.stat().st_mtime

    def _reload(self) -> None:
        if self.path is None or not self.path.exists():
            return
        mtime = self.path.stat().st_mtime
        if mtime != self._mtime:
            try:
                data = json.loads(self.path.read_text())
                self._pins = PinSet.from_dict(data) if data else None
                self._mtime = mtime
            except (ValueError, KeyError, OSError):
                pass  # a half-written file: keep what we had, try again next time

    def current(self) -> PinSet | None:
        """The live pins (None once expired or all carried out)."""
        with self._lock:
            self._reload()
            if self._pins is not None and (
                self._pins.expires_at <= self.clock() or self._pins.empty()
            ):
                self._pins = None
                self._save()
            return self._pins

    def target_nodes(
        self, pod: dict, candidates: list[str] | None = None
    ) -> tuple[set[str] | None, str]:
        """The nodes a pod is pinned to (None: not pinned) and why.

        A new pod of an owner with planned slots is steered to one node: its reserved slot if it
        has one among `candidates`, else the first candidate with a free slot (reserved now),
        else the nodes with free slots (none of which fits yet: the pod waits).
        """
        pins = self.current()
        if pins is None or (pod.get("spec") or {}).get("nodeName"):
            return None, ""
        key = f"{meta(pod).get('namespace') or 'default'}/{meta(pod).get('name')}"
        with self._lock:
            if key in pins.by_name:
                return {
                    pins.by_name[key]
                }, f"optkit plan {pins.plan_id} places {key} on {pins.by_name[key]}"
            owner, uid = owner_key(pod), meta(pod).get("uid") or key
            if not owner or owner not in pins.by_owner or uid in pins.known_uids:
                return None, ""
            free = pins.free_slots(owner, exclude_uid=uid)
            if not free:
                pins.assumed.pop(uid, None)
                return None, ""
            held = pins.assumed.get(uid)
            if held and held[1] in free and (candidates is None or held[1] in candidates):
                node = held[1]
            else:
                node = next((n for n in (candidates or []) if n in free), None)
            why = f"optkit plan {pins.plan_id} places new {owner} pods on "
            if node is None:
                pins.assumed.pop(uid, None)
                return set(free), why + str(sorted(free))
            if held != (owner, node):
                pins.assumed[uid] = (owner, node)
                self._save()
            return {node}, why + node

    def observe_bound(self, pod: dict) -> bool:
        """A pod got bound to a node: tick off its pin; True if it was one."""
        node = (pod.get("spec") or {}).get("nodeName")
        with self._lock:
            pins = self._pins
            if pins is None or not node:
                return False
            key = f"{meta(pod).get('namespace') or 'default'}/{meta(pod).get('name')}"
            uid = meta(pod).get("uid") or key
            hit = False
            if key in pins.by_name:
                hit = (
                    pins.by_name.pop(key) == node
                )  # bound elsewhere: the pin cannot be honoured now
            else:
                pins.assumed.pop(uid, None)
                counts = pins.by_owner.get(owner_key(pod) or "")
                if counts and counts.get(node, 0) > 0 and uid not in pins.known_uids:
                    counts[node] -= 1
                    hit = True
                pins.known_uids.add(uid)  # count each new pod once
            self._save()
            return hit

    def forget(self, pod: dict) -> None:
        """A pod went away: release the slot it had reserved."""
        with self._lock:
            if self._pins is not None and self._pins.assumed.pop(meta(pod).get("uid") or "", None):
                self._save()


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
        if args.get("NodeNames") is not None:
            return [str(n) for n in args["NodeNames"]], True
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
        targets, why = self.pins.target_nodes(args["Pod"], names)
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
        targets, _ = self.pins.target_nodes(args["Pod"], names)
        return [
            {"Host": n, "Score": MAX_EXTENDER_PRIORITY if targets and n in targets else 0}
            for n in names
        ]


# -- HTTP -------------------------------------------------------------------------------------------


class ExtenderServer:
    """`Extender` over HTTP: POST .../filter, .../prioritize; GET /healthz, /metrics."""

    def __init__(
        self, extender: Extender, host: str = "127.0.0.1", port: int = 8888, health: Any = None
    ):
        self.extender = extender
        self.health = health or (lambda: (True, "ok"))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *a: Any) -> None:  # quiet; metrics count calls
                pass

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?")[0].rstrip("/")
                if path.endswith("/healthz") or path == "/healthz":
                    ok, text = outer.health()
                    self._send(
                        200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8"
                    )
                elif path.endswith("/metrics"):
                    self._send(
                        200,
                        outer.extender.metrics.render().encode(),
                        "text/plain; version=0.0.4; charset=utf-8",
                    )
                else:
                    self._send(404, b"not found\n", "text/plain")

            def do_POST(self) -> None:
                verb = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
                if verb not in ("filter", "prioritize"):
                    self._send(404, b'{"Error": "unknown verb"}', "application/json")
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    args = json.loads(self.rfile.read(length) or b"null")
                except (ValueError, json.JSONDecodeError) as e:
                    body = {"Error": f"bad ExtenderArgs JSON: {e}"} if verb == "filter" else []
                    self._send(400, json.dumps(body).encode(), "application/json")
                    return
                try:
                    answer = outer.extender.handle(verb, args)
                except Exception as e:  # noqa: BLE001 - never take the scheduler down with us
                    self._send(
                        500,
                        json.dumps({"Error": f"{type(e).__name__}: {e}"}).encode(),
                        "application/json",
                    )
                    return
                self._send(200, json.dumps(answer).encode(), "application/json")

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

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
