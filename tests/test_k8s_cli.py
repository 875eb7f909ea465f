"""`optkit k8s ...`: manifests, one-shot plans from a dump, the missing extra, the controller on the fake."""

import json
import sys

import pytest
import yaml

from optkit.cli import main
from optkit.k8s.fake import FakeCluster


def fragmented():
    c = FakeCluster()
    c.add_node("n1", cpu="2")
    c.add_node("n2", cpu="2")
    c.add_replicaset("low", 2, nodes=["n1", "n2"], cpu="1", priority=0)
    c.add_replicaset("high", 1, cpu="1500m", priority=1000)
    c.settle()
    return c


def solver_args():
    """kube-default with preemption: a plan in-process in milliseconds (the CLI is under test)."""
    return ["--solver", "kube-default", "--param", "preemption=true"]


def test_manifests_are_valid_yaml_with_the_rbac_the_controller_needs(capsys):
    assert main(["k8s", "manifests", "--namespace", "opt", "--image", "reg/optkit:0.1"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "NetworkPolicy",
    ]
    rules = {(tuple(r["apiGroups"]), r["resources"][0]): set(r["verbs"]) for r in docs[2]["rules"]}
    assert rules[(("",), "pods")] == {"list", "watch"}
    assert rules[(("",), "pods/eviction")] == {"create"}
    assert rules[(("",), "nodes")] == {"get", "list"}
    assert rules[(("policy",), "poddisruptionbudgets")] == {"list"}
    deploy = docs[4]
    assert deploy["metadata"]["namespace"] == "opt"
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "reg/optkit:0.1"
    assert deploy["spec"]["template"]["spec"]["containers"][0]["args"][:3] == [
        "k8s",
        "run",
        "--in-cluster",
    ]


def test_scheduler_config_has_an_ignorable_extender(capsys):
    assert (
        main(
            [
                "k8s",
                "manifests",
                "--scheduler-config",
                "--cluster-ip",
                "10.96.1.2",
                "--port",
                "9000",
            ]
        )
        == 0
    )
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert (
        cfg["apiVersion"] == "kubescheduler.config.k8s.io/v1"
        and cfg["kind"] == "KubeSchedulerConfiguration"
    )
    ext = cfg["extenders"][0]
    assert ext["ignorable"] is True and ext["nodeCacheCapable"] is True
    assert ext["urlPrefix"] == "https://10.96.1.2:9000" and ext["enableHTTPS"] is True
    assert (ext["filterVerb"], ext["prioritizeVerb"]) == ("filter", "prioritize")


def test_plan_from_a_kubectl_dump_changes_nothing(tmp_path, capsys):
    c = fragmented()
    dump = {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {},
        "items": c.list_nodes()[0] + c.list_pods()[0] + c.list_pdbs()[0],
    }
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(dump))
    instance = tmp_path / "instance.json"
    assert (
        main(
            [
                "k8s",
                "plan",
                "-f",
                str(path),
                "--window",
                "10",
                "--instance",
                str(instance),
                *solver_args(),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    plan = json.loads(captured.out)
    assert plan["status"] == "dry-run"
    assert any(
        a["action"] == "place" and a["pod"].startswith("default/high") for a in plan["actions"]
    )
    assert "pod" in captured.err and "action" in captured.err  # the table
    assert json.loads(instance.read_text())["problem"] == "pod-packing"
    assert c.calls.count(("evict", "")) == 0


def test_plan_bad_inputs_exit_2(tmp_path, capsys):
    assert main(["k8s", "plan", "-f", str(tmp_path / "missing.json"), *solver_args()]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "kind": "List",
                "items": [
                    {
                        "kind": "Node",
                        "metadata": {"name": "n"},
                        "status": {"allocatable": {"cpu": "two"}},
                    }
                ],
            }
        )
    )
    assert main(["k8s", "plan", "-f", str(bad), *solver_args()]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "status.allocatable.cpu" in err
    assert main(["k8s", "plan", "-f", str(bad), "--window", "0"]) == 2
    assert main(["k8s", "plan", "-f", str(bad), "--solver", "no-such-solver"]) == 2


@pytest.mark.parametrize("command", [["run"], ["plan"]])
def test_missing_kubernetes_package_exits_3_with_install_hint(monkeypatch, capsys, command):
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes -> ModuleNotFoundError
    assert main(["k8s", *command, *solver_args()]) == 3
    assert "pip install 'optkit[k8s]'" in capsys.readouterr().err


def test_cli_module_imports_without_kubernetes():
    import subprocess

    code = (
        "import sys; sys.modules['kubernetes'] = None\n"
        "import optkit.k8s.cli, optkit.k8s.api, optkit.k8s.fake, optkit.k8s.planner, optkit.k8s.extender\n"
        "from optkit.cli import main; sys.exit(main(['k8s', 'manifests']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "KubeSchedulerConfiguration" in proc.stdout


def test_run_dry_run_against_the_fake(monkeypatch, capsys):
    import optkit.k8s.cli as k8s_cli

    c = fragmented()
    monkeypatch.setattr(k8s_cli, "_api", lambda *a: c)
    code = main(
        [
            "k8s",
            "run",
            "--dry-run",
            "--window",
            "10",
            "--debounce",
            "0",
            "--port",
            "0",
            "--max-plans",
            "1",
            "--max-seconds",
            "60",
            *solver_args(),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    plan = json.loads(out[out.index("{") :])
    assert plan["status"] == "dry-run"
    assert [op for op, _ in c.calls if op == "evict"] == []


def test_serve_starts_and_stops(capsys):
    assert main(["k8s", "serve", "--host", "127.0.0.1", "--port", "0", "--max-seconds", "0.2"]) == 0
    assert "extender listening on http://127.0.0.1:" in capsys.readouterr().err


@pytest.mark.slow
def test_run_controller_and_extender_in_one_process(monkeypatch, capsys):
    """`optkit k8s run` on the fake: the fake's scheduler asks the extender that `run` serves."""
    import os
    import signal
    import socket
    import threading

    import optkit.k8s.cli as k8s_cli
    from optkit.k8s.extender import http_extender

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = FakeCluster(extender=http_extender(f"http://127.0.0.1:{port}", timeout=2))
    for n in ("n1", "n2", "n3"):
        c.add_node(n, cpu="4")
    c.add_replicaset("batch", 6, nodes=["n1", "n1", "n2", "n2", "n3", "n3"], cpu="1", priority=10)
    c.add_replicaset("api", 2, cpu="3", priority=1000)
    c.settle()
    monkeypatch.setattr(k8s_cli, "_api", lambda *a: c)
    stop = threading.Event()
    done = []

    def kube():  # kubelets, ReplicaSets and the scheduler go on while the controller runs
        while True:  # until the controller has acted (no deadline: a slow machine only waits)
            if stop.wait(0.1):
                return
            c.settle()
            pods = list(c.pods.values())
            api_running = [
                p
                for p in pods
                if p["metadata"]["name"].startswith("api-") and p["spec"].get("nodeName")
            ]
            pending = [p for p in pods if not p["spec"].get("nodeName")]
            if len(api_running) == 2 and not pending and any(op == "evict" for op, _ in c.calls):
                done.append(True)
                os.kill(os.getpid(), signal.SIGTERM)  # `run` stops on SIGTERM
                return

    thread = threading.Thread(target=kube, daemon=True)
    thread.start()
    try:
        code = main(
            [
                "k8s",
                "run",
                "--window",
                "10",
                "--debounce",
                "0",
                "--cooldown",
                "0",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--max-seconds",
                "600",
                *solver_args(),
            ]
        )
    finally:
        stop.set()
        thread.join(5)
    assert code == 0 and done == [True]
    assert c.extender_errors == []
    err = capsys.readouterr().err
    assert f"extender listening on http://127.0.0.1:{port}" in err and "applied" in err
