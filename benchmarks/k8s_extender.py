"""The scheduler extender under load, on loopback: latency, memory, and an oversized body.

    .venv/bin/python -m benchmarks.k8s_extender                 # 100,000 calls
    .venv/bin/python -m benchmarks.k8s_extender --calls 20000   # quicker

`optkit k8s serve` runs in its own process on 127.0.0.1 (its memory is read from /proc). 16 client
threads, each on its own keep-alive connection, POST kube-scheduler's `filter` for a realistic
pod with 1,000 NodeNames (nodeCacheCapable), a tenth of them for a pod the active plan pins. The
client reads each answer whole and checks it. Then one client declares a 1 GB body and sends it
until the answer comes (at most 1 s of sending): the time to the 413 and the server's memory
after. Writes the section "kubernetes" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks._common import machine, markdown_table, write_section

NODES = [f"node-{i:04d}" for i in range(1000)]
CLIENTS = 16


def pod(name: str) -> dict:
    """A pod as kube-scheduler sends it: metadata, one container with env, resources, probes."""
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": "123456",
            "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "7c9d8f6b5"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7c9d8f6b5",
                    "uid": "rs-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example.com/web:1.2.3",
                    "env": [{"name": f"VAR_{k}", "value": "x" * 40} for k in range(10)],
                    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                }
            ],
            "priority": 1000,
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
            ],
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


def request(name: str) -> bytes:
    body = json.dumps({"Pod": pod(name), "Nodes": None, "NodeNames": NODES}).encode()
    head = (
        "POST /filter HTTP/1.1\r\nHost: optkit\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def read_answer(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """(status, body) of one response; `buf` keeps bytes read past it."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    buf[:] = rest[length:]
    return status, rest[:length]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(pins_file: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "optkit", "k8s", "serve", "--port", str(port)]
    args += ["--pins-file", str(pins_file), "--max-seconds", "3600"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the extender did not start")


def expected(port: int) -> dict[bytes, bytes]:
    """The answer to each request, checked once; the load compares bytes."""
    out = {}
    for name, want in (("pinned", 1), ("free", len(NODES))):
        sock = socket.create_connection(("127.0.0.1", port))
        with sock:
            sock.sendall(request(name))
            status, body = read_answer(sock, bytearray())
        assert status == 200 and len(json.loads(body)["NodeNames"]) == want, (status, body[:80])
        out[request(name)] = body
    return out


def load(
    port: int, calls: int, checkpoints: int, pid: int, clients: int = CLIENTS
) -> tuple[list[float], list]:
    """`clients` keep-alive clients, `calls` filter calls in all; latencies (s), RSS at checkpoints."""
    pinned, free = request("pinned"), request("free")
    answers = expected(port)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    done = [0]
    lock = threading.Lock()
    rss = [(0, rss_mib(pid))]
    step = max(1, calls // checkpoints)

    def client(c: int) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        mine = latencies[c]
        try:
            for k in range(calls // clients):
                req = pinned if k % 10 == 0 else free
                started = time.perf_counter()
                sock.sendall(req)
                status, body = read_answer(sock, buf)
                mine.append(time.perf_counter() - started)
                if status != 200 or body != answers[req]:
                    errors.append(f"client {c}: {status} {body[:80]!r}")
                    return
                with lock:
                    done[0] += 1
                    if done[0] % step == 0:
                        rss.append((done[0], rss_mib(pid)))
        finally:
            sock.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return [x for xs in latencies for x in xs], rss


def oversized(port: int, pid: int, declared: int = 10**9) -> dict:
    """Declare `declared` bytes, send until the answer comes (at most 1 s): status, seconds."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"POST /filter HTTP/1.1\r\nHost: optkit\r\nContent-Length: {declared}\r\n\r\n".encode()
    )
    chunk, sent, started = b"x" * 65536, 0, time.perf_counter()
    sock.setblocking(False)
    answer = b""
    while time.perf_counter() - started < 1.0 and b"\r\n" not in answer:
        try:
            answer += sock.recv(4096)
            continue
        except BlockingIOError:
            pass
        except OSError:
            break
        try:
            sent += sock.send(chunk)
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:  # the server closed after answering
            pass
    elapsed = time.perf_counter() - started
    sock.setblocking(True)
    sock.settimeout(2)
    try:
        answer += sock.recv(4096)
    except OSError:
        pass
    sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    return {"status": status, "seconds": elapsed, "sent_mib": sent / 2**20, "rss": rss_mib(pid)}


def percentiles(seconds: list[float]) -> str:
    q = statistics.quantiles(sorted(seconds), n=100)
    return " / ".join(f"{x * 1000:.2f}" for x in (q[49], q[89], q[98], max(seconds)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000, help="filter calls in all (16 clients)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pins = Path(tmp) / "pins.json"
        pins.write_text(
            json.dumps(
                {"plan_id": "bench", "expires_at": 4e9, "by_name": {"default/pinned": NODES[7]}}
            )
        )
        proc, port = start_server(pins)
        try:
            rss_start = rss_mib(proc.pid)
            load(port, 1600, 1, proc.pid)
            alone, _ = load(port, 2000, 1, proc.pid, clients=1)
            started, cpu = time.perf_counter(), cpu_seconds(proc.pid)
            lat, rss = load(port, args.calls, 10, proc.pid)
            wall, cpu = time.perf_counter() - started, cpu_seconds(proc.pid) - cpu
            big = oversized(port, proc.pid)
            after, _ = load(port, 160, 1, proc.pid)  # still answering
        finally:
            proc.terminate()
            proc.wait(10)
    rows = [
        ["one client, 2,000 calls: p50 / p90 / p99 / max ms", percentiles(alone)],
        [
            "16 keep-alive clients: calls",
            f"{len(lat):,} in {wall:.1f} s ({len(lat) / wall:,.0f}/s)",
        ],
        ["16 keep-alive clients: p50 / p90 / p99 / max ms", percentiles(lat)],
        ["server CPU per call, ms (16 clients)", f"{cpu / len(lat) * 1000:.3f}"],
        [
            "server RSS MiB: start, after warm-up, then every tenth of the calls",
            ", ".join(f"{r:.0f}" for r in [rss_start] + [r for _, r in rss]),
        ],
        [
            "1 GB body: status, seconds to the answer, MiB sent meanwhile",
            f"{big['status']}, {big['seconds']:.3f}, {big['sent_mib']:.1f}",
        ],
        ["server RSS MiB after the 1 GB body", f"{big['rss']:.0f}"],
        ["calls answered after it", f"{len(after)} of 160"],
    ]
    text = (
        "## kubernetes: the scheduler extender on loopback\n\n"
        f"`.venv/bin/python -m benchmarks.k8s_extender --calls {args.calls}` on {machine()}; "
        "a shared machine (other jobs running), server and clients on the same cores, so the "
        "latencies are an upper bound. `filter` with 1,000 NodeNames and a realistic pod "
        f"({len(request('free')) // 1024} KiB per request), answered from `optkit k8s serve` "
        "in its own process.\n\n" + markdown_table(["measure", "value"], rows)
    )
    print(text)
    write_section("kubernetes", text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
