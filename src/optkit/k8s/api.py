"""The one narrow interface between optkit and a Kubernetes API server.

Objects travel as plain dicts shaped like the API's JSON (camelCase keys, as `kubectl get -o json`
prints them). `KubernetesAPI` implements `ClusterAPI` over the official `kubernetes` client
(imported lazily: it is the optional extra `optkit[k8s]`); `optkit.k8s.fake.FakeCluster` implements
it in memory for tests and demos. The calls made here are exactly those the ClusterRole of
`optkit k8s manifests` allows (`optkit.k8s.manifests.API_CALLS`; a test holds the two together).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from optkit.errors import OptkitError

INSTALL_HINT = "pip install 'optkit[k8s]'"


class K8sUnavailable(OptkitError):
    """The `kubernetes` package is missing (exit 3)."""

    exit_code = 3


class ApiError(OptkitError):
    """A failed API call: `status` is the HTTP status (404, 409, 429, 500, ...)."""

    exit_code = 3

    def __init__(self, status: int, reason: str, message: str = ""):
        super().__init__(f"API error {status} {reason}: {message}".rstrip(": "))
        self.status, self.reason, self.message = status, reason, message


@runtime_checkable
class ClusterAPI(Protocol):
    def list_nodes(self) -> tuple[list[dict], str]:
        """All nodes and the list's resourceVersion."""

    def list_pods(self) -> tuple[list[dict], str]:
        """All pods of all namespaces and the list's resourceVersion."""

    def list_pdbs(self) -> tuple[list[dict], str]:
        """All PodDisruptionBudgets (with their status) and the list's resourceVersion."""

    def get_node(self, name: str) -> dict:
        """One node; ApiError(404) if it does not exist."""

    def evict(self, namespace: str, name: str, uid: str | None = None) -> None:
        """Create an Eviction for the pod (policy/v1); ApiError 429 when a PDB forbids it now,
        404 when the pod is gone, 409 when `uid` no longer matches."""

    def watch_pods(
        self, resource_version: str | None, timeout_s: float
    ) -> Iterator[tuple[str, dict]]:
        """Pod events (ADDED / MODIFIED / DELETED, object) after `resource_version`, for at most
        `timeout_s` seconds. ApiError(410) when the version is too old: list again."""


def require_kubernetes() -> Any:
    try:
        import kubernetes
    except ModuleNotFoundError:
        raise K8sUnavailable(f"the Kubernetes client is not installed: {INSTALL_HINT}") from None
    return kubernetes


class KubernetesAPI:
    """`ClusterAPI` over the official client. `kubeconfig=None` and `in_cluster=True`: the service
    account of the pod; otherwise the kubeconfig file (default ~/.kube/config) and `context`."""

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        in_cluster: bool = False,
        request_timeout: float = 10.0,
        api_client: Any = None,
    ):
        k8s = require_kubernetes()
        from kubernetes import client, config

        if api_client is None:
            try:
                if in_cluster:
                    config.load_incluster_config()
                else:
                    config.load_kube_config(config_file=kubeconfig, context=context)
            except Exception as e:  # noqa: BLE001 - config errors come in many types
                raise OptkitError(f"cannot configure the Kubernetes client: {e}") from None
        self._k8s = k8s
        self._api_client = api_client or client.ApiClient()
        self.core = client.CoreV1Api(self._api_client)
        self.policy = client.PolicyV1Api(self._api_client)
        self.timeout = request_timeout

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=self.timeout, **kwargs)
        except ApiException as e:
            message = ""
            try:
                message = json.loads(e.body or "{}").get("message", "")
            except (ValueError, AttributeError):
                message = str(e.body or "")[:200]
            raise ApiError(int(e.status or 0), str(e.reason or ""), message) from None

    def _plain(self, obj: Any) -> Any:
        return self._api_client.sanitize_for_serialization(obj)

    def _list(self, fn: Any) -> tuple[list[dict], str]:
        result = self._call(fn)
        return [self._plain(i) for i in result.items], result.metadata.resource_version or ""

    def list_nodes(self) -> tuple[list[dict], str]:
        return self._list(self.core.list_node)

    def list_pods(self) -> tuple[list[dict], str]:
        return self._list(self.core.list_pod_for_all_namespaces)

    def list_pdbs(self) -> tuple[list[dict], str]:
        return self._list(self.policy.list_pod_disruption_budget_for_all_namespaces)

    def get_node(self, name: str) -> dict:
        return self._plain(self._call(self.core.read_node, name))

    def evict(self, namespace: str, name: str, uid: str | None = None) -> None:
        from kubernetes import client

        options = (
            client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)) if uid else None
        )
        body = client.V1Eviction(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace), delete_options=options
        )
        self._call(self.core.create_namespaced_pod_eviction, name, namespace, body)

    def watch_pods(
        self, resource_version: str | None, timeout_s: float
    ) -> Iterator[tuple[str, dict]]:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        w = watch.Watch()
        kwargs: dict[str, Any] = {"timeout_seconds": max(1, int(timeout_s))}
        if resource_version:
            kwargs["resource_version"] = resource_version
        try:
            for event in w.stream(self.core.list_pod_for_all_namespaces, **kwargs):
                if event.get("type") == "ERROR":
                    raw = event.get("raw_object") or {}
                    raise ApiError(
                        int(raw.get("code", 500)),
                        str(raw.get("reason", "")),
                        str(raw.get("message", "")),
                    )
                yield event["type"], self._plain(event["object"])
        except ApiException as e:
            raise ApiError(int(e.status or 0), str(e.reason or ""), "") from None
        finally:
            w.stop()
