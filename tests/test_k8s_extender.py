"""The scheduler extender: kube-scheduler's JSON in both nodeCacheCapable modes, over real HTTP."""

import json
import urllib.error
import urllib.request

import pytest

from optkit.k8s.extender import (
    MAX_EXTENDER_PRIORITY,
    Extender,
    ExtenderServer,
    Metrics,
    PinSet,
    PinStore,
    http_extender,
)
from optkit.k8s.pins import ReadOnlyPins

NODES = {
    n: {
        "metadata": {"name": n, "uid": f"uid-{n}", "labels": {"kubernetes.io/hostname": n}},
        "spec": {},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }
    for n in ("kind-worker", "kind-worker2", "kind-worker3")
}


def pod_json(name, owner=None, uid=None, node=None):
    meta = {
        "name": name,
        "namespace": "default",
        "uid": uid or f"uid-{name}",
        "resourceVersion": "812",
        "creationTimestamp": "2026-11-20T10:00:00Z",
        "labels": {"app": "web"},
    }
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner,
                "uid": "rs-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    spec = {
        "containers": [{"name": "app", "image": "nginx", "resources": {"requests": {"cpu": "1"}}}],
        "priority": 100,
        "schedulerName": "default-scheduler",
        "restartPolicy": "Always",
    }
    if node:
        spec["nodeName"] = node
    return {"metadata": meta, "spec": spec, "status": {"phase": "Pending", "qosClass": "Burstable"}}


def args_json(pod, cache_capable):
    """The exact shape kube-scheduler marshals (Go field names; nil pointers -> null)."""
    if cache_capable:
        return json.dumps({"Pod": pod, "Nodes": None, "NodeNames": list(NODES)})
    return json.dumps(
        {"Pod": pod, "Nodes": {"metadata": {}, "items": list(NODES.values())}, "NodeNames": None}
    )


def post(url, body):
    req = urllib.request.Request(
        url,
        data=body.encode() if isinstance(body, str) else body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture
def server():
    pins = PinStore()
    with ExtenderServer(Extender(pins, Metrics()), host="127.0.0.1", port=0) as srv:
        yield srv, pins


def names_of(result, cache_capable):
    if cache_capable:
        assert result["Nodes"] is None
        return result["NodeNames"]
    assert result["NodeNames"] is None
    return [n["metadata"]["name"] for n in result["Nodes"]["items"]]


@pytest.mark.parametrize("cache_capable", [True, False])
def test_unpinned_pod_passes_through_unchanged(server, cache_capable):
    srv, _ = server
    status, result = post(
        srv.url + "/filter", args_json(pod_json("web-abcde", "web"), cache_capable)
    )
    assert status == 200
    assert set(result) == {
        "Nodes",
        "NodeNames",
        "FailedNodes",
        "FailedAndUnresolvableNodes",
        "Error",
    }
    assert names_of(result, cache_capable) == list(NODES)
    assert (
        result["FailedNodes"] == {}
        and result["FailedAndUnresolvableNodes"] == {}
        and result["Error"] == ""
    )
    if not cache_capable:
        assert result["Nodes"]["items"] == list(NODES.values())  # full objects, untouched
    status, scores = post(
        srv.url + "/prioritize", args_json(pod_json("web-abcde", "web"), cache_capable)
    )
    assert status == 200 and scores == [{"Host": n, "Score": 0} for n in NODES]


@pytest.mark.parametrize("cache_capable", [True, False])
def test_pinned_pod_restricted_to_its_planned_node(server, cache_capable):
    srv, pins = server
    pins.set(PinSet("p1", expires_at=4e9, by_name={"default/high": "kind-worker2"}))
    status, result = post(srv.url + "/filter", args_json(pod_json("high"), cache_capable))
    assert status == 200
    assert names_of(result, cache_capable) == ["kind-worker2"]
    assert set(result["FailedAndUnresolvableNodes"]) == {"kind-worker", "kind-worker3"}
    assert "p1" in result["FailedAndUnresolvableNodes"]["kind-worker"]
    status, scores = post(srv.url + "/prioritize", args_json(pod_json("high"), cache_capable))
    assert {h["Host"]: h["Score"] for h in scores} == {
        "kind-worker": 0,
        "kind-worker2": MAX_EXTENDER_PRIORITY,
        "kind-worker3": 0,
    }


@pytest.mark.parametrize("cache_capable", [True, False])
def test_recreated_replicaset_pods_matched_by_owner_and_counted_per_node(server, cache_capable):
    srv, pins = server
    pins.set(
        PinSet(
            "p2",
            4e9,
            by_owner={"default/ReplicaSet/web": {"kind-worker": 1, "kind-worker3": 1}},
            known_uids={"uid-old"},
        )
    )
    first, second, third = (pod_json(f"web-new0{i}", "web") for i in (1, 2, 3))
    # before the controller has seen a new pod, it may go to any node with an unreserved slot
    _, result = post(srv.url + "/filter", args_json(first, cache_capable))
    assert names_of(result, cache_capable) == ["kind-worker", "kind-worker3"]
    # the controller's watch reserves one planned slot per new pod; the extender then steers it
    assert pins.reserve(first) == "kind-worker"
    assert pins.reserve(second) == "kind-worker3"
    assert pins.reserve(first) == "kind-worker"  # a pod seen again keeps its slot
    _, result = post(srv.url + "/filter", args_json(first, cache_capable))
    assert names_of(result, cache_capable) == ["kind-worker"]
    _, result = post(srv.url + "/filter", args_json(second, cache_capable))
    assert names_of(result, cache_capable) == ["kind-worker3"]
    assert set(result["FailedAndUnresolvableNodes"]) == {"kind-worker", "kind-worker2"}
    _, scores = post(srv.url + "/prioritize", args_json(first, cache_capable))
    assert [h["Host"] for h in scores if h["Score"] == MAX_EXTENDER_PRIORITY] == ["kind-worker"]
    # more pods than planned slots: the extra one is not the plan's business
    assert pins.reserve(third) is None
    _, result = post(srv.url + "/filter", args_json(third, cache_capable))
    assert names_of(result, cache_capable) == list(NODES)
    # a pod of the same owner that was in the snapshot is not a recreated one: it passes through
    _, result = post(
        srv.url + "/filter", args_json(pod_json("web-old", "web", uid="uid-old"), cache_capable)
    )
    assert names_of(result, cache_capable) == list(NODES)
    assert pins.observe_bound({**first, "spec": {**first["spec"], "nodeName": "kind-worker"}})
    assert pins.observe_bound({**second, "spec": {**second["spec"], "nodeName": "kind-worker3"}})
    assert pins.current() is None  # all carried out
    _, result = post(srv.url + "/filter", args_json(pod_json("web-new04", "web"), cache_capable))
    assert names_of(result, cache_capable) == list(NODES)


def test_new_pod_waits_while_its_planned_nodes_do_not_fit_yet():
    pins = PinStore()
    pins.set(PinSet("p6", 4e9, by_owner={"default/ReplicaSet/web": {"kind-worker3": 1}}))
    ext = Extender(pins)
    args = json.loads(args_json(pod_json("web-new01", "web"), True))
    args["NodeNames"] = [
        "kind-worker",
        "kind-worker2",
    ]  # kube-scheduler found kind-worker3 full (still draining)
    result = ext.filter(args)
    assert result["NodeNames"] == [] and set(result["FailedAndUnresolvableNodes"]) == {
        "kind-worker",
        "kind-worker2",
    }
    args["NodeNames"] = list(NODES)  # drained
    assert ext.filter(args)["NodeNames"] == ["kind-worker3"]
    assert pins.reserve(args["Pod"]) == "kind-worker3"
    pins.forget(args["Pod"])  # the pod was deleted before binding: its slot is free again
    assert pins.current().reserved == {}


def test_pins_expire():
    now = [1000.0]
    pins = PinStore(clock=lambda: now[0])
    pins.set(PinSet("p3", expires_at=1010.0, by_name={"default/high": "kind-worker"}))
    ext = Extender(pins)
    args = json.loads(args_json(pod_json("high"), True))
    assert ext.filter(args)["NodeNames"] == ["kind-worker"]
    now[0] = 1011.0
    assert ext.filter(args)["NodeNames"] == list(NODES)


def test_pins_file_shared_between_controller_and_server(tmp_path):
    path = tmp_path / "pins.json"
    writer, reader = PinStore(path), PinStore(path, writable=False)
    assert reader.current() is None
    writer.set(PinSet("p4", 4e9, by_name={"default/high": "kind-worker3"}))
    assert Extender(reader).filter(json.loads(args_json(pod_json("high"), True)))["NodeNames"] == [
        "kind-worker3"
    ]
    writer.clear()
    assert reader.current() is None
    with pytest.raises(ReadOnlyPins):  # one writer per pins file
        reader.set(PinSet("p5", 4e9))


def test_bad_requests_and_other_endpoints(server):
    srv, _ = server
    status, result = post(srv.url + "/filter", "{not json")
    assert status == 400 and "bad ExtenderArgs JSON" in result["Error"]
    status, result = post(srv.url + "/filter", json.dumps({"NodeNames": ["a"]}))
    assert status == 200 and "Pod" in result["Error"]
    status, _ = post(srv.url + "/bind", "{}")
    assert status == 404
    # kube-scheduler appends the verb to urlPrefix, which may have a path
    status, result = post(srv.url + "/scheduler/filter", args_json(pod_json("x"), True))
    assert status == 200 and result["NodeNames"] == list(NODES)
    with urllib.request.urlopen(srv.url + "/healthz", timeout=5) as resp:
        assert resp.status == 200 and resp.read().strip() == b"ok"
    with urllib.request.urlopen(srv.url + "/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    for name in (
        "optkit_k8s_plans_total",
        "optkit_k8s_plans_accepted_total",
        "optkit_k8s_pods_placed_total",
        "optkit_k8s_evictions_total",
        "optkit_k8s_solve_seconds_sum",
        "optkit_k8s_solve_seconds_count",
    ):
        assert f"\n{name}" in text
    assert 'optkit_k8s_extender_requests_total{verb="filter"} 2' in text


def test_http_client_matches_in_process_answers(server):
    srv, pins = server
    pins.set(PinSet("p5", 4e9, by_name={"default/high": "kind-worker"}))
    call = http_extender(srv.url)
    for cache_capable in (True, False):
        args = json.loads(args_json(pod_json("high"), cache_capable))
        assert call("filter", args) == srv.extender.filter(args)
        assert call("prioritize", args) == srv.extender.prioritize(args)
