"""What a user meets first: `azsnap --version`, `azsnap run` without Kubernetes credentials, capacity's messages."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from azsnap import __version__
from azsnap.cli import app

AZSNAP = Path(sys.executable).with_name("azsnap")


def test_version_option_and_command() -> None:
    for args in (["--version"], ["version"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0
        assert result.output == f"{__version__}\n"


def run_without_cluster(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`azsnap run` as a process with no service account and no kubeconfig, unless `env` gives one."""
    clean = {k: v for k, v in os.environ.items() if k != "KUBECONFIG" and not k.startswith("AZSNAP_")}
    clean.update({"HOME": str(tmp_path), "AZSNAP_CREDENTIAL": "static-token", "AZSNAP_METRICS_PORT": "0", **env})
    return subprocess.run(
        [str(AZSNAP), "run", "--liveness=http://127.0.0.1:0/healthz"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(not AZSNAP.exists(), reason="the azsnap console script is not installed next to python")
@pytest.mark.skipif(
    Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists(), reason="running inside a cluster"
)
def test_run_without_kubernetes_credentials_prints_one_line(tmp_path: Path) -> None:
    result = run_without_cluster(tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "azsnap: no Kubernetes credentials: run in a cluster (the pod's service account token) or set KUBECONFIG "
        "(or ~/.kube/config) to a kubeconfig with a current context"
    ]

    missing = run_without_cluster(tmp_path, KUBECONFIG=str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert len(missing.stderr.splitlines()) == 1
    assert "cannot use the Kubernetes credentials" in missing.stderr and "nowhere" in missing.stderr

    broken = tmp_path / "broken"
    broken.write_text("clusters: [\n")
    damaged = run_without_cluster(tmp_path, KUBECONFIG=str(broken))
    assert damaged.returncode == 2
    assert len(damaged.stderr.splitlines()) == 1
    assert "Traceback" not in damaged.stderr


def test_capacity_messages_name_the_field_without_pydantic_prefixes(tmp_path: Path) -> None:
    policy = {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": "db", "namespace": "prod"},
        "spec": {
            "disk": {"id": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Compute/disks/d"},
            "schedule": {"every": "5h"},
            "retention": {"keepLast": 3},
        },
    }
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    result = CliRunner().invoke(app, ["capacity", str(path)])
    assert result.exit_code == 2
    assert f"azsnap capacity: {path} (prod/db): spec.schedule.every: must divide a day" in result.output
    assert "Value error" not in result.output
