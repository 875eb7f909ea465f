"""The manifests: Pod Security "restricted", RBAC equal to the calls the code makes, TLS, the
NetworkPolicy, managedResources; and the CLI's TLS and bind options."""

import ast
import inspect

import pytest
import yaml

from optkit.cli import main
from optkit.k8s import api as api_module
from optkit.k8s.manifests import API_CALLS, MANAGED_RESOURCE, TLS_SECRET, objects, scheduler_config

#: official client method -> (apiGroup, resource, verb) that RBAC checks for it
CLIENT_CALLS = {
    "list_node": ("", "nodes", "list"),
    "read_node": ("", "nodes", "get"),
    "list_pod_for_all_namespaces": ("", "pods", "list"),
    "create_namespaced_pod_eviction": ("", "pods/eviction", "create"),
    "list_pod_disruption_budget_for_all_namespaces": ("policy", "poddisruptionbudgets", "list"),
}


def calls_in_the_adapter():
    """(group, resource, verb) of every `self.core.X` / `self.policy.X` in `KubernetesAPI`; a
    method handed to `watch.Watch().stream` is a watch."""
    tree = ast.parse(inspect.getsource(api_module.KubernetesAPI))
    found, streamed = set(), set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "self"
            and node.value.attr in ("core", "policy")
        ):
            found.add(node.attr)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "stream":
            streamed.update(a.attr for a in node.args if isinstance(a, ast.Attribute))
    unknown = found - set(CLIENT_CALLS)
    assert not unknown, f"a new API call: add it to CLIENT_CALLS and to the ClusterRole: {unknown}"
    out = {CLIENT_CALLS[m] for m in found}
    out |= {(CLIENT_CALLS[m][0], CLIENT_CALLS[m][1], "watch") for m in streamed}
    return out


def test_rbac_holds_exactly_the_verbs_the_code_calls():
    needed = calls_in_the_adapter()
    assert needed == set(API_CALLS)
    role = next(o for o in objects() if o["kind"] == "ClusterRole")
    granted = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert granted == needed
    assert not any("*" in str(rule) for rule in role["rules"])


def test_the_controller_uses_only_the_adapters_calls():
    """Every ClusterAPI method the planner and controller call is one the adapter implements."""
    from optkit.k8s import planner

    src = inspect.getsource(planner)
    methods = ("list_nodes", "list_pods", "list_pdbs", "get_node", "get_pod", "evict", "watch_pods")
    used = {m for m in methods if f"api.{m}(" in src}
    assert {"list_nodes", "list_pods", "list_pdbs", "evict", "watch_pods"} <= used
    for m in used:
        assert hasattr(api_module.KubernetesAPI, m), m


def deployment_pod(objs):
    return next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]


def test_pod_passes_the_restricted_pod_security_profile():
    objs = objects()
    ns = objs[0]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    spec = deployment_pod(objs)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
    for volume in spec["volumes"]:  # restricted allows these volume types only
        assert set(volume) - {"name"} <= {"secret", "emptyDir", "configMap", "projected"}
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not sc.get("privileged")
        assert "hostPort" not in str(c["ports"])
        assert c["resources"]["limits"]["memory"]


def test_deployment_serves_tls_from_the_secret_on_all_interfaces_of_the_pod():
    spec = deployment_pod(objects())
    args = spec["containers"][0]["args"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--tls-cert") + 1].startswith("/etc/optkit/tls/")
    assert args[args.index("--managed-resource") + 1] == MANAGED_RESOURCE
    assert {"name": "tls", "secret": {"secretName": TLS_SECRET}} in spec["volumes"]
    assert spec["containers"][0]["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_network_policy_admits_only_the_scheduler_addresses():
    policy = next(
        o for o in objects(scheduler_cidrs=("10.0.0.10/32",)) if o["kind"] == "NetworkPolicy"
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"ipBlock": {"cidr": "10.0.0.10/32"}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8888}]
    closed = next(o for o in objects() if o["kind"] == "NetworkPolicy")
    assert closed["spec"]["ingress"] == []  # no address given: nobody


def test_scheduler_config_https_and_managed_resources():
    (ext,) = scheduler_config(namespace="opt")["extenders"]
    assert ext["enableHTTPS"] is True and ext["urlPrefix"].startswith("https://")
    assert ext["tlsConfig"]["serverName"] == "optkit-scheduler.opt.svc"
    assert ext["tlsConfig"]["caFile"] and "insecure" not in ext["tlsConfig"]
    assert ext["managedResources"] == [{"name": MANAGED_RESOURCE, "ignoredByScheduler": True}]
    (every_pod,) = scheduler_config(managed_resource=None)["extenders"]
    assert "managedResources" not in every_pod


def test_manifests_cli_options(capsys):
    args = ["k8s", "manifests", "--scheduler-cidr", "192.168.1.0/24", "--managed-resource", ""]
    assert main(args) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "192.168.1.0/24"}}]
    assert "--managed-resource" not in deployment_pod(docs)["containers"][0]["args"]
    assert main(["k8s", "manifests", "--scheduler-cidr", "not-a-cidr"]) == 2
    assert "not-a-cidr" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--tls-cert", "cert.pem"], "go together"),
        (["--tls-cert", "missing.pem", "--tls-key", "missing.key"], "no such file"),
    ],
)
def test_serve_tls_options_are_checked(extra, message, capsys):
    assert main(["k8s", "serve", "--port", "0", "--max-seconds", "0.1", *extra]) == 2
    assert message in capsys.readouterr().err


def test_serve_binds_loopback_by_default(capsys):
    assert main(["k8s", "serve", "--port", "0", "--max-seconds", "0.1"]) == 0
    assert "listening on http://127.0.0.1:" in capsys.readouterr().err


def test_snapshot_with_a_managed_resource_freezes_pods_that_do_not_request_it():
    from optkit.k8s.fake import FakeCluster
    from optkit.k8s.snapshot import build_snapshot

    c = FakeCluster()
    c.add_node("n1", cpu="4")
    c.add_replicaset("plain", 1, nodes=["n1"], cpu="1")
    c.add_replicaset("opted", 1, nodes=["n1"], cpu="1", extra_requests={MANAGED_RESOURCE: "1"})
    nodes, pods, pdbs = c.list_nodes()[0], c.list_pods()[0], c.list_pdbs()[0]
    snap = build_snapshot(nodes, pods, pdbs, managed_resource=MANAGED_RESOURCE)
    by_owner = {info.owner: info for info in snap.pods.values()}
    assert by_owner["ReplicaSet/plain"].movable is False
    assert by_owner["ReplicaSet/opted"].movable is True
    assert all(MANAGED_RESOURCE not in p["requests"] for p in snap.instance["pods"])
