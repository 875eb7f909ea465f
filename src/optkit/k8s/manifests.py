"""The YAML an operator applies to run optkit next to a stock kube-scheduler (`optkit k8s manifests`)."""

from __future__ import annotations

import yaml

APP = "optkit-scheduler"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:  # no &id001 anchors in manifests
        return True


def objects(
    namespace: str = "optkit",
    image: str = "optkit:latest",
    port: int = 8888,
    cluster_ip: str = "10.96.0.88",
    window: float = 1.0,
) -> list[dict]:
    labels = {"app.kubernetes.io/name": APP}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": APP, "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": APP},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
                {
                    "apiGroups": ["policy"],
                    "resources": ["poddisruptionbudgets"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
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
                        "containers": [
                            {
                                "name": "optkit",
                                "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "args": [
                                    "k8s",
                                    "run",
                                    "--in-cluster",
                                    "--port",
                                    str(port),
                                    "--window",
                                    f"{window:g}",
                                ],
                                "ports": [{"name": "extender", "containerPort": port}],
                                "resources": {
                                    "requests": {"cpu": "500m", "memory": "256Mi"},
                                    "limits": {"memory": "1Gi"},
                                },
                                "readinessProbe": {
                                    "httpGet": {"path": "/healthz", "port": "extender"}
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/healthz", "port": "extender"},
                                    "initialDelaySeconds": 10,
                                },
                                "securityContext": {
                                    "runAsNonRoot": True,
                                    "runAsUser": 65532,
                                    "allowPrivilegeEscalation": False,
                                },
                            }
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
    ]


KUBEADM_SCHEDULER_KUBECONFIG = "/etc/kubernetes/scheduler.conf"
K3S_SCHEDULER_KUBECONFIG = "/var/lib/rancher/k3s/server/cred/scheduler.kubeconfig"


def scheduler_config(
    port: int = 8888, cluster_ip: str = "10.96.0.88", kubeconfig: str = KUBEADM_SCHEDULER_KUBECONFIG
) -> dict:
    """KubeSchedulerConfiguration with optkit as an ignorable extender."""
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig},
        "extenders": [
            {
                "urlPrefix": f"http://{cluster_ip}:{port}",
                "filterVerb": "filter",
                "prioritizeVerb": "prioritize",
                "weight": 5,
                "enableHTTPS": False,
                "nodeCacheCapable": True,
                "ignorable": True,  # scheduling goes on if optkit is down
                "httpTimeout": "2s",
            }
        ],
    }


def scheduler_yaml(
    port: int = 8888, cluster_ip: str = "10.96.0.88", kubeconfig: str = KUBEADM_SCHEDULER_KUBECONFIG
) -> str:
    return yaml.dump(
        scheduler_config(port, cluster_ip, kubeconfig), Dumper=_Dumper, sort_keys=False
    )


def render(
    namespace: str = "optkit",
    image: str = "optkit:latest",
    port: int = 8888,
    cluster_ip: str = "10.96.0.88",
    window: float = 1.0,
) -> str:
    head = (
        "# optkit Kubernetes fallback scheduler: apply with `kubectl apply -f -`.\n"
        f"# The Service has the fixed cluster IP {cluster_ip} (inside the cluster's service CIDR; change it\n"
        "# with --cluster-ip) because kube-scheduler runs on the host network without cluster DNS.\n"
    )
    docs = yaml.dump_all(
        objects(namespace, image, port, cluster_ip, window), Dumper=_Dumper, sort_keys=False
    )
    tail = (
        "# --- NOT for kubectl: kube-scheduler's --config file (e.g. /etc/kubernetes/scheduler-config.yaml\n"
        "# on the control-plane node; see docs/kubernetes.md). Merge `extenders` into an existing one;\n"
        "# `optkit k8s manifests --scheduler-config` prints it without the comment signs.\n"
    )
    sched = scheduler_yaml(port, cluster_ip)
    commented = "".join(f"# {line}\n" for line in sched.splitlines())
    return head + docs + tail + commented
