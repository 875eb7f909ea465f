"""The extender's HTTP layer against the real server on 127.0.0.1: size cap, timeouts, desync,
deep JSON, concurrent clients, worker bound, TLS. Every loop is bounded; no latency is asserted."""

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time

import pytest

from optkit.k8s.extender import Extender, ExtenderServer, Limits, Metrics, PinSet, PinStore
from optkit.k8s.httpserver import tls_context

NODES = [f"node-{i}" for i in range(5)]


def pod(name, uid=None, owner=None):
    m = {"name": name, "namespace": "default", "uid": uid or f"uid-{name}"}
    if owner:
        m["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "controller": True}
        ]
    return {"metadata": m, "spec": {"containers": [{"name": "c"}], "priority": 0}}


def filter_body(p, nodes=NODES):
    return json.dumps({"Pod": p, "Nodes": None, "NodeNames": nodes}).encode()


def request(path, body=b"", method="POST", extra=""):
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
    if body or method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + extra + "\r\n").encode() + body


def read_response(f):
    """(status, headers, body) of one response from a buffered socket file; None if closed."""
    line = f.readline()
    if not line:
        return None
    status = int(line.split()[1])
    headers = {}
    while (h := f.readline()) not in (b"\r\n", b"\n", b""):
        k, _, v = h.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers.get("content-length", 0)))
    return status, headers, body


def connect(srv, timeout=5.0):
    host, port = srv.httpd.server_address[:2]
    s = socket.create_connection((host, port), timeout=timeout)
    return s, s.makefile("rb")


def closed_within(sock, f, seconds):
    """True if the server closes the connection (EOF or reset) within `seconds`."""
    sock.settimeout(seconds)
    try:
        while f.read1(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def make_server():
    servers = []

    def make(limits=None, pins=None, ssl_context=None):
        pins = pins or PinStore()
        srv = ExtenderServer(
            Extender(pins, Metrics()), "127.0.0.1", 0, limits=limits, ssl_context=ssl_context
        ).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


def test_keep_alive_connection_answers_each_request_in_order(make_server):
    srv = make_server()
    s, f = connect(srv)
    with s:
        for i in range(20):
            s.sendall(request("/filter", filter_body(pod(f"p{i}"))))
            status, headers, body = read_response(f)
            assert status == 200 and "connection" not in headers
            assert json.loads(body)["NodeNames"] == NODES
        # pipelined: three requests in one write, three answers in order
        s.sendall(
            request("/filter", filter_body(pod("a"), ["node-1"]))
            + request("/healthz", method="GET")
            + request("/prioritize", filter_body(pod("b"), ["node-2"]))
        )
        assert json.loads(read_response(f)[2])["NodeNames"] == ["node-1"]
        assert read_response(f)[2] == b"ok\n"
        assert json.loads(read_response(f)[2]) == [{"Host": "node-2", "Score": 0}]


def test_body_over_the_cap_is_refused_413_unread_and_the_connection_closed(make_server):
    srv = make_server(Limits(max_body=4096))
    s, f = connect(srv)
    with s:
        s.sendall(
            b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n" + b"[" * 1000
        )
        status, headers, body = read_response(f)
        assert status == 413 and headers["connection"] == "close" and b"over the limit" in body
        assert closed_within(s, f, 5)
    # exactly at the cap is fine
    s, f = connect(srv)
    with s:
        args = filter_body(pod("x"))
        padded = args + b" " * (4096 - len(args))
        s.sendall(request("/filter", padded))
        assert read_response(f)[0] == 200
    assert srv.extender.metrics.get("optkit_k8s_extender_rejected_total", reason="too_large") == 1


def test_default_cap_is_16_mib():
    assert Limits().max_body == 16 * 1024 * 1024


def test_expect_100_continue_over_the_cap_is_refused_before_the_body(make_server):
    srv = make_server(Limits(max_body=100))
    s, f = connect(srv)
    with s:
        s.sendall(
            b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert read_response(f)[0] == 413


@pytest.mark.parametrize(
    "head",
    [
        b"POST /filter HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n",
        b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\nab",
        b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    ],
)
def test_bodies_of_unknown_length_are_refused_and_the_connection_closed(make_server, head):
    srv = make_server()
    s, f = connect(srv)
    with s:
        s.sendall(head)
        status, headers, _ = read_response(f)
        assert status in (400, 411, 413) and headers["connection"] == "close"
        assert closed_within(s, f, 5)


def test_half_sent_requests_are_dropped_after_the_read_timeout(make_server):
    srv = make_server(Limits(read_timeout=0.3, idle_timeout=30, workers=4))
    socks = []
    try:
        # headers never finished; a body shorter than its Content-Length; one byte at a time
        for data in (
            b"POST /filter HTTP/1.1\r\nHost: x\r\n",
            request("/filter", b"")[:-2].replace(b"Length: 0", b"Length: 100") + b"\r\n{",
        ):
            s, f = connect(srv)
            s.sendall(data)
            socks.append((s, f))
        for s, f in socks:
            assert closed_within(s, f, 5)
        s, f = connect(srv)
        socks.append((s, f))
        start = time.monotonic()
        closed = False
        for byte in b"POST /filter HTTP/1.1\r\nHost: x\r\n" * 20:  # slow drip
            try:
                s.send(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.01)
            if time.monotonic() - start > 1.0:
                break
        assert closed or closed_within(s, f, 5)
        # the workers are free again: the server answers
        s, f = connect(srv)
        socks.append((s, f))
        s.sendall(request("/healthz", method="GET"))
        assert read_response(f)[0] == 200
    finally:
        for s, _ in socks:
            s.close()


def test_idle_keep_alive_connection_is_closed(make_server):
    srv = make_server(Limits(idle_timeout=0.3))
    s, f = connect(srv)
    with s:
        s.sendall(request("/healthz", method="GET"))
        assert read_response(f)[0] == 200
        assert closed_within(s, f, 5)


def test_body_of_an_unknown_path_is_consumed_not_read_as_a_request(make_server):
    srv = make_server()
    smuggled = request("/healthz", method="GET")
    s, f = connect(srv)
    with s:
        for method, path in (("POST", "/bind"), ("PUT", "/filter"), ("GET", "/metrics")):
            s.sendall(request(path, smuggled, method=method))
            status, _, body = read_response(f)
            assert status in (404, 405, 200)
            s.sendall(request("/filter", filter_body(pod("after"), ["node-3"])))
            status, _, body = read_response(f)
            assert status == 200 and json.loads(body)["NodeNames"] == ["node-3"]
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            f.read1(1)  # nothing more: one answer per request


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"Pod": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b', "NodeNames": []}',
        b"{not json",
        b"\xff\xfe\x00",
        b"1" * 10_000,
        b"",
        b'{"Pod": {"metadata": "x"}, "NodeNames": 5}',
        b'{"Pod": {"metadata": {"name": 1}}, "Nodes": {"items": [1, 2]}}',
        b'{"Pod": [], "NodeNames": ["a"]}',
    ],
)
def test_malformed_deep_or_odd_json_is_400_and_harmless(make_server, body):
    srv = make_server()
    s, f = connect(srv)
    with s:
        for verb in ("filter", "prioritize"):
            s.sendall(request(f"/{verb}", body))
            status, headers, answer = read_response(f)
            result = json.loads(answer)
            if status == 200:  # well-formed JSON without a Pod: kube-scheduler's error field
                assert verb == "filter" and result["Error"] or verb == "prioritize"
            else:
                assert status == 400
                assert result == [] if verb == "prioritize" else result["Error"]
        s.sendall(request("/filter", filter_body(pod("ok"))))
        status, _, answer = read_response(f)
        assert status == 200 and json.loads(answer)["NodeNames"] == NODES


def test_concurrent_keep_alive_clients_get_their_own_answers(make_server):
    pins = PinStore()
    pins.set(PinSet("p", 4e9, by_name={f"default/pinned-{c}": NODES[c % 5] for c in range(16)}))
    srv = make_server(pins=pins)
    errors = []

    def client(c):
        try:
            s, f = connect(srv)
            with s:
                for i in range(25):
                    name = f"pinned-{c}" if i % 2 else f"free-{c}-{i}"
                    s.sendall(request("/filter", filter_body(pod(name))))
                    status, _, body = read_response(f)
                    want = [NODES[c % 5]] if i % 2 else NODES
                    if status != 200 or json.loads(body)["NodeNames"] != want:
                        errors.append((c, i, status, body[:100]))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((c, repr(e)))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert srv.extender.metrics.get("optkit_k8s_extender_requests_total", verb="filter") == 400


def test_connections_beyond_the_worker_pool_get_503(make_server):
    srv = make_server(Limits(workers=2, idle_timeout=30))
    held = [connect(srv) for _ in range(2)]
    try:
        for s, f in held:  # both workers busy with a keep-alive connection
            s.sendall(request("/healthz", method="GET"))
            assert read_response(f)[0] == 200
        s, f = connect(srv)
        with s:
            status, headers, _ = read_response(f) or (None, {}, b"")
            assert status == 503 and headers["connection"] == "close"
        assert srv.extender.metrics.get("optkit_k8s_extender_rejected_total", reason="busy") >= 1
    finally:
        for s, f in held:
            f.close()
            s.close()
    # the workers come back once their connections close
    for _ in range(50):
        s, f = connect(srv)
        with s:
            s.sendall(request("/healthz", method="GET"))
            got = read_response(f)
        if got and got[0] == 200:
            break
        time.sleep(0.05)
    assert got[0] == 200


def test_filter_and_prioritize_change_no_pins(make_server):
    pins = PinStore()
    pins.set(
        PinSet(
            "p",
            4e9,
            by_name={"default/high": "node-1"},
            by_owner={"default/ReplicaSet/web": {"node-2": 1, "node-3": 1}},
        )
    )
    before = pins.current().to_dict()
    srv = make_server(pins=pins)
    s, f = connect(srv)
    with s:
        for i in range(30):  # made-up pods of the planned owner, under fresh uids
            for verb in ("filter", "prioritize"):
                s.sendall(request(f"/{verb}", filter_body(pod(f"web-{i}", f"fake-{i}", "web"))))
                assert read_response(f)[0] == 200
    assert pins.current().to_dict() == before
    # a real new pod of the owner, reserved by the controller, is still steered to its slot
    real = pod("web-real", "uid-real", "web")
    assert pins.reserve(real) == "node-2"
    assert srv.extender.filter(json.loads(filter_body(real)))["NodeNames"] == ["node-2"]


def _self_signed(tmp_path):
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


def test_tls(make_server, tmp_path):
    cert, key = _self_signed(tmp_path)
    srv = make_server(ssl_context=tls_context(cert, key))
    assert srv.url.startswith("https://127.0.0.1:")
    client = ssl.create_default_context(cafile=cert)
    host, port = srv.httpd.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as raw:
        with client.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            f = s.makefile("rb")
            for i in range(3):  # keep-alive over TLS
                s.sendall(request("/filter", filter_body(pod(f"t{i}"))))
                status, _, body = read_response(f)
                assert status == 200 and json.loads(body)["NodeNames"] == NODES
    # plain HTTP on the TLS port gets no answer, and the server goes on
    s, f = connect(srv)
    with s:
        s.sendall(request("/healthz", method="GET"))
        assert closed_within(s, f, 5)
    with socket.create_connection((host, port), timeout=5) as raw:
        with client.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(request("/healthz", method="GET"))
            assert read_response(s.makefile("rb"))[0] == 200


def test_each_response_leaves_in_one_write(make_server, monkeypatch):
    from optkit.k8s import httpserver

    writes = []
    original = httpserver._Writer.write

    def counting(self, data):
        writes.append(len(data))
        return original(self, data)

    monkeypatch.setattr(httpserver._Writer, "write", counting)
    srv = make_server()
    s, f = connect(srv)
    with s:
        for i in range(5):
            s.sendall(request("/filter", filter_body(pod(f"w{i}"))))
            status, _, body = read_response(f)
            assert status == 200
    assert len(writes) == 5 and all(n > len(body) for n in writes)
    assert srv.httpd.limits.workers == 32


def test_stop_closes_open_keep_alive_connections():
    srv = ExtenderServer(
        Extender(PinStore(), Metrics()), "127.0.0.1", 0, limits=Limits(idle_timeout=60)
    ).start()
    s, f = connect(srv)
    with s:
        s.sendall(request("/healthz", method="GET"))
        assert read_response(f)[0] == 200
        srv.stop()  # does not wait for the idle timeout
        assert closed_within(s, f, 5)
    for thread in list(srv.httpd._pool._threads):  # the workers end (bounded wait)
        thread.join(5)
        assert not thread.is_alive()
