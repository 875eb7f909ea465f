"""The YAML an operator applies to run optkit next to a stock kube-scheduler (`optkit k8s manifests`)."""

from __future__ import annotations

import yaml

APP = "optkit-scheduler"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:  # no &id001 anchors in manifests
        return True


TLS_SECRET = f"{APP}-tls"
TLS_DIR = "/etc/optkit/tls"
MANAGED_RESOURCE = "optkit.io/managed"

#: every call `KubernetesAPI` makes, as RBAC sees it: (apiGroup, resource, verb)
API_CALLS = (
    ("", "nodes", "get"),  # get_node: a target re-checked before each eviction
    ("", "nodes", "list"),  # list_nodes: snapshots
    ("", "pods", "list"),  # list_pods: snapshots, the watch's start
    ("", "pods", "watch"),  # watch_pods
    ("", "pods/eviction", "create"),  # evict
    ("policy", "poddisruptionbudgets", "list"),  # list_pdbs
)


def rbac_rules() -> list[dict]:
    """ClusterRole rules holding exactly the verbs of `API_CALLS`."""
    rules: dict[tuple[str, str], list[str]] = {}
    for group, resource, verb in API_CALLS:
        rules.setdefault((group, resource), []).append(verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": verbs}
        for (group, resource), verbs in rules.items()
    ]


def service_dns(namespace: str) -> str:
    return f"{APP}.{namespace}.svc"


def _container(port: int, window: float, managed_resource: str | None) -> dict:
    args = ["k8s", "run", "--in-cluster", "--host", "0.0.0.0", "--port", str(port)]
    args += ["--window", f"{window:g}"]
    args += ["--tls-cert", f"{TLS_DIR}/tls.crt", "--tls-key", f"{TLS_DIR}/tls.key"]
    if managed_resource:
        args += ["--managed-resource", managed_resource]
    probe = {"httpGet": {"path": "/healthz", "port": "extender", "scheme": "HTTPS"}}
    return {
        "name": "optkit",
        "image": "IMAGE",
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "ports": [{"name": "extender", "containerPort": port}],
        "resources": {
            "requests": {"cpu": "500m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        "readinessProbe": probe,
        "livenessProbe": {**probe, "initialDelaySeconds": 10},
        "volumeMounts": [
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": {  # Pod Security "restricted"
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def objects(
    namespace: str = "optkit",
    image: str = "optkit:latest",
    port: int = 8888,
    cluster_ip: str = "10.96.0.88",
    window: float = 1.0,
    scheduler_cidrs: tuple[str, ...] = (),
    managed_resource: str | None = MANAGED_RESOURCE,
) -> list[dict]:
    """Namespace (restricted Pod Security), RBAC, the Deployment (TLS from the Secret
    `optkit-scheduler-tls`), its Service, and a NetworkPolicy admitting only `scheduler_cidrs`."""
    labels = {"app.kubernetes.io/name": APP}
    container = {**_container(port, window, managed_resource), "image": image}
    policy_from = [{"ipBlock": {"cidr": c}} for c in scheduler_cidrs]
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": APP, "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": APP},
            "rules": rbac_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": APP},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": APP,
            },
            "subjects": [{"kind": "ServiceAccount", "name": APP, "namespace": namespace}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": APP, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,  # one controller: plans must not race each other
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": APP,
                        "priorityClassName": "system-cluster-critical",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container],
                        "volumes": [
                            {"name": "tls", "secret": {"secretName": TLS_SECRET}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": APP, "namespace": namespace, "labels": labels},
            "spec": {
                "selector": labels,
                "clusterIP": cluster_ip,
                "ports": [{"name": "extender", "port": port, "targetPort": "extender"}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": APP, "namespace": namespace},
            "spec": {
                "podSelector": {"matchLabels": labels},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": policy_from, "ports": [{"protocol": "TCP", "port": port}]}]
                if policy_from
                else [],
            },
        },
    ]


KUBEADM_SCHEDULER_KUBECONFIG = "/etc/kubernetes/scheduler.conf"
K3S_SCHEDULER_KUBECONFIG = "/var/lib/rancher/k3s/server/cred/scheduler.kubeconfig"


def scheduler_config(
    port: int = 8888,
    cluster_ip: str = "10.96.0.88",
    kubeconfig: str = KUBEADM_SCHEDULER_KUBECONFIG,
    namespace: str = "optkit",
    ca_file: str = "/etc/kubernetes/optkit-ca.crt",
    managed_resource: str | None = MANAGED_RESOURCE,
) -> dict:
    """KubeSchedulerConfiguration with optkit as an ignorable HTTPS extender, consulted only for
    pods that request `managed_resource` (an extended resource the scheduler ignores)."""
    extender: dict = {
        "urlPrefix": f"https://{cluster_ip}:{port}",
        "filterVerb": "filter",
        "prioritizeVerb": "prioritize",
        "weight": 5,
        "enableHTTPS": True,
        "tlsConfig": {"caFile": ca_file, "serverName": service_dns(namespace)},
        "nodeCacheCapable": True,
        "ignorable": True,  # scheduling goes on if optkit is down
        "httpTimeout": "2s",
    }
    if managed_resource:
        extender["managedResources"] = [{"name": managed_resource, "ignoredByScheduler": True}]
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig},
        "extenders": [extender],
    }


def scheduler_yaml(**kwargs: object) -> str:
    return yaml.dump(scheduler_config(**kwargs), Dumper=_Dumper, sort_keys=False)  # type: ignore[arg-type]


def render(
    namespace: str = "optkit",
    image: str = "optkit:latest",
    port: int = 8888,
    cluster_ip: str = "10.96.0.88",
    window: float = 1.0,
    scheduler_cidrs: tuple[str, ...] = (),
    managed_resource: str | None = MANAGED_RESOURCE,
    kubeconfig: str = KUBEADM_SCHEDULER_KUBECONFIG,
) -> str:
    head = (
        "# optkit Kubernetes fallback scheduler: apply with `kubectl apply -f -`.\n"
        f"# The Service has the fixed cluster IP {cluster_ip} (inside the cluster's service CIDR; change\n"
        "# it with --cluster-ip) because kube-scheduler runs on the host network without cluster DNS.\n"
        f"# Create the Secret {TLS_SECRET} (type kubernetes.io/tls) first: docs/kubernetes.md.\n"
    )
    if not scheduler_cidrs:
        head += (
            "# The NetworkPolicy admits no one: give the control-plane nodes' addresses with\n"
            "# --scheduler-cidr (kube-scheduler calls from the host network).\n"
        )
    docs = yaml.dump_all(
        objects(
            namespace, image, port, cluster_ip, window, tuple(scheduler_cidrs), managed_resource
        ),
        Dumper=_Dumper,
        sort_keys=False,
    )
    tail = (
        "# --- NOT for kubectl: kube-scheduler's --config file (e.g. /etc/kubernetes/scheduler-config.yaml\n"
        "# on the control-plane node; see docs/kubernetes.md). Merge `extenders` into an existing one;\n"
        "# `optkit k8s manifests --scheduler-config` prints it without the comment signs.\n"
    )
    sched = scheduler_yaml(
        port=port,
        cluster_ip=cluster_ip,
        kubeconfig=kubeconfig,
        namespace=namespace,
        managed_resource=managed_resource,
    )
    commented = "".join(f"# {line}\n" for line in sched.splitlines())
    return head + docs + tail + commented
