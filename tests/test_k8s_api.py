"""The adapter over the official client: models -> API JSON dicts, Eviction bodies, errors -> ApiError."""

import json

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from optkit.k8s.api import ApiError, ClusterAPI, KubernetesAPI
from optkit.k8s.fake import FakeCluster
from optkit.k8s.snapshot import build_snapshot


class StubCore:
    def __init__(self):
        self.evictions = []
        self.fail_with = None

    def list_node(self, _request_timeout=None):
        node = client.V1Node(
            metadata=client.V1ObjectMeta(name="n1", labels={"zone": "a"}),
            spec=client.V1NodeSpec(
                taints=[client.V1Taint(key="gpu", value="1", effect="NoSchedule")]
            ),
            status=client.V1NodeStatus(
                allocatable={"cpu": "3920m", "memory": "15890580Ki", "pods": "110"}
            ),
        )
        return client.V1NodeList(items=[node], metadata=client.V1ListMeta(resource_version="100"))

    def list_pod_for_all_namespaces(self, _request_timeout=None):
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(
                name="web-1",
                namespace="shop",
                uid="u1",
                owner_references=[
                    client.V1OwnerReference(
                        api_version="apps/v1",
                        kind="ReplicaSet",
                        name="web",
                        uid="r",
                        controller=True,
                    )
                ],
            ),
            spec=client.V1PodSpec(
                node_name="n1",
                priority=5,
                containers=[
                    client.V1Container(
                        name="c",
                        resources=client.V1ResourceRequirements(
                            requests={"cpu": "250m", "memory": "64Mi"}
                        ),
                    )
                ],
            ),
            status=client.V1PodStatus(phase="Running"),
        )
        return client.V1PodList(items=[pod], metadata=client.V1ListMeta(resource_version="101"))

    def read_node(self, name, _request_timeout=None):
        if self.fail_with:
            raise self.fail_with
        return self.list_node().items[0]

    def create_namespaced_pod_eviction(self, name, namespace, body, _request_timeout=None):
        if self.fail_with:
            raise self.fail_with
        self.evictions.append(
            (name, namespace, client.ApiClient().sanitize_for_serialization(body))
        )


class StubPolicy:
    def list_pod_disruption_budget_for_all_namespaces(self, _request_timeout=None):
        pdb = client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="web", namespace="shop"),
            spec=client.V1PodDisruptionBudgetSpec(
                min_available=1, selector=client.V1LabelSelector(match_labels={"app": "web"})
            ),
            status=client.V1PodDisruptionBudgetStatus(
                current_healthy=1, desired_healthy=1, disruptions_allowed=0, expected_pods=1
            ),
        )
        return client.V1PodDisruptionBudgetList(
            items=[pdb], metadata=client.V1ListMeta(resource_version="102")
        )


@pytest.fixture
def api():
    a = KubernetesAPI(api_client=client.ApiClient())
    a.core, a.policy = StubCore(), StubPolicy()
    return a


def test_both_implementations_satisfy_the_protocol(api):
    """Every method of the protocol exists on both with the protocol's parameters (names, order,
    defaults), so the planner can be handed either."""
    import inspect

    methods = [
        m for m in vars(ClusterAPI) if not m.startswith("_") and callable(vars(ClusterAPI)[m])
    ]
    assert set(methods) >= {
        "list_nodes",
        "list_pods",
        "list_pdbs",
        "get_node",
        "evict",
        "watch_pods",
    }
    for impl in (type(api), FakeCluster):
        for m in methods:
            want = inspect.signature(getattr(ClusterAPI, m)).parameters
            got = inspect.signature(getattr(impl, m)).parameters
            assert [(p.name, p.default) for p in got.values()] == [
                (p.name, p.default) for p in want.values()
            ], (impl.__name__, m)


def test_lists_become_api_json(api):
    nodes, rv = api.list_nodes()
    assert rv == "100" and nodes[0]["status"]["allocatable"]["cpu"] == "3920m"
    assert nodes[0]["spec"]["taints"] == [{"effect": "NoSchedule", "key": "gpu", "value": "1"}]
    pods, rv = api.list_pods()
    assert rv == "101" and pods[0]["spec"]["nodeName"] == "n1"
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    pdbs, _ = api.list_pdbs()
    assert pdbs[0]["status"]["disruptionsAllowed"] == 0 and pdbs[0]["spec"]["minAvailable"] == 1
    snap = build_snapshot(nodes, pods, pdbs)
    assert snap.instance["pods"][0]["requests"] == {"cpu": 250, "memory": 64 * 2**20}
    assert snap.instance["nodes"][0]["capacity"]["cpu"] == 3920


def test_eviction_body_carries_the_uid_precondition(api):
    api.evict("shop", "web-1", uid="u1")
    name, ns, body = api.core.evictions[0]
    assert (name, ns) == ("web-1", "shop")
    assert body == {
        "deleteOptions": {"preconditions": {"uid": "u1"}},
        "metadata": {"name": "web-1", "namespace": "shop"},
    }


@pytest.mark.parametrize(
    "status, reason",
    [
        (429, "Too Many Requests"),
        (409, "Conflict"),
        (404, "Not Found"),
        (500, "Internal Server Error"),
    ],
)
def test_api_exceptions_become_api_errors(api, status, reason):
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": status,
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        }
    )
    api.core.fail_with = ApiException(status=status, reason=reason, body=body)
    with pytest.raises(ApiError) as e:
        api.evict("shop", "web-1")
    assert e.value.status == status and "disruption budget" in e.value.message
    with pytest.raises(ApiError):
        api.get_node("n1")
