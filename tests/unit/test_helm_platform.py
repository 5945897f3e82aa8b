"""The chart on real platforms: alerts and a dashboard on azsnap's own metrics, subchart use, overridable security."""

import json
import os
import pathlib
import re
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from tests.support.helm import (
    CHART,
    ROOT,
    Manifest,
    container,
    helm_or_skip,
    of_kind,
    one,
    render,
    run_helm,
)

from azsnap.metrics import Metrics

KUBERNETES_VERSION = kv_utils.latest_version()
MONITORING = ("prometheusRule.enabled=true", "grafanaDashboard.enabled=true")
ALERTS = {
    "AzsnapOperatorDown",
    "AzsnapPolicyStale",
    "AzsnapPolicyStalled",
    "AzsnapPolicyNotReady",
    "AzsnapSlotsMissed",
    "AzsnapSnapshotsFailed",
    "AzsnapAzureThrottling",
}
#: Series Prometheus makes itself, not azsnap.
PROMETHEUS_OWN = {"up"}


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_or_skip()


def metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that name series (azsnap's, or Prometheus' own `up`)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    names = set(re.findall(r"\b(azsnap_[a-z0-9_]+)\b", without_ranges))
    return names | {w for w in re.findall(r"\b([a-z_]+)\b", without_ranges) if w in PROMETHEUS_OWN}


def dashboard_of(manifests: list[Manifest]) -> tuple[Manifest, dict[str, Any]]:
    maps = [m for m in of_kind(manifests, "ConfigMap") if "grafana_dashboard" in (m["metadata"].get("labels") or {})]
    assert len(maps) == 1
    (key, text), *rest = maps[0]["data"].items()
    assert not rest and key.endswith(".json")
    return maps[0], json.loads(text)


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found.append(query["query"])
    return found


# -- alerts ------------------------------------------------------------------------------------------------------


def test_prometheus_rule_alerts_on_azsnap_metrics_each_with_a_runbook(helm: str) -> None:
    manifests = render(helm, None, *MONITORING, "prometheusRule.labels.release=kube-prometheus-stack")
    rule = one(manifests, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == ALERTS
    exported = Metrics().metric_names()
    runbook = (ROOT / "docs" / "operations.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^#{2,4} (Azsnap\w+)$", runbook, re.M)}
    for name, alert in alerts.items():
        used = metric_names(alert["expr"])
        assert used, name
        assert used - PROMETHEUS_OWN <= exported, f"{name} uses {used - exported - PROMETHEUS_OWN}"
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        assert alert["annotations"]["runbook"] == f"docs/operations.md#{name.lower()} in the azsnap repository"
        assert name.lower() in headings, f"docs/operations.md has no runbook section for {name}"
    # The operator-down alert looks for the Service the ServiceMonitor scrapes (its name is the job label).
    service = one(manifests, "Service")["metadata"]["name"]
    assert f'job="{service}"' in alerts["AzsnapOperatorDown"]["expr"]
    assert 'namespace="azsnap-system"' in alerts["AzsnapOperatorDown"]["expr"]
    # Staleness compares against the policy's own threshold, not a number written in the chart.
    assert alerts["AzsnapPolicyStale"]["expr"] == (
        "(time() - azsnap_policy_last_success_timestamp_seconds) > azsnap_policy_stale_after_seconds"
    )


def test_runbook_links_and_durations_are_configurable(helm: str) -> None:
    base = "https://git.example.com/platform/azsnap/blob/main/docs/operations.md"
    manifests = render(
        helm, None, "prometheusRule.enabled=true", f"prometheusRule.runbookUrl={base}", "prometheusRule.for.stale=2h"
    )
    alerts = {r["alert"]: r for g in one(manifests, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    assert alerts["AzsnapPolicyStale"]["for"] == "2h"
    for name, alert in alerts.items():
        assert alert["annotations"]["runbook_url"] == f"{base}#{name.lower()}"
        assert "runbook" not in alert["annotations"]


def test_monitoring_objects_only_when_enabled(helm: str) -> None:
    manifests = render(helm)
    assert not of_kind(manifests, "PrometheusRule")
    assert not [m for m in of_kind(manifests, "ConfigMap") if "grafana_dashboard" in m["metadata"].get("labels", {})]


# -- dashboard ---------------------------------------------------------------------------------------------------


def test_dashboard_configmap_holds_valid_json_querying_only_azsnap_metrics(helm: str) -> None:
    manifests = render(helm, None, *MONITORING)
    config, dashboard = dashboard_of(manifests)
    kubernetes_validate.validate(config, KUBERNETES_VERSION, strict=True)
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["uid"] and dashboard["title"].startswith("azsnap")
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    exported = Metrics().metric_names()
    used: set[str] = set()
    for expr in queries(dashboard):
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, f"{expr} uses {names - exported}"
        used |= names
    # The dashboard shows what the alerts are about.
    assert {
        "azsnap_policy_ready",
        "azsnap_policy_stale_after_seconds",
        "azsnap_policy_missed_slots_total",
        "azsnap_snapshots_failed_total",
        "azsnap_azure_throttled_total",
    } <= used


def test_metric_name_check_catches_a_name_azsnap_does_not_export() -> None:
    exported = Metrics().metric_names()
    assert metric_names("sum(rate(azsnap_snapshots_created[5m]))") - exported == {"azsnap_snapshots_created"}
    assert metric_names('azsnap_policy_ready{namespace=~"azsnap_fake"}') == {"azsnap_policy_ready"}


def test_dashboard_namespace_labels_and_annotations(helm: str) -> None:
    manifests = render(
        helm,
        None,
        *MONITORING,
        "grafanaDashboard.namespace=monitoring",
        "grafanaDashboard.annotations.grafana_folder=Backups",
    )
    config, _ = dashboard_of(manifests)
    assert config["metadata"]["namespace"] == "monitoring"
    assert config["metadata"]["annotations"] == {"grafana_folder": "Backups"}


# -- scraping ----------------------------------------------------------------------------------------------------


def test_service_monitor_honors_labels_and_takes_relabelings(helm: str, tmp_path: pathlib.Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "metrics": {
                    "serviceMonitor": {
                        "enabled": True,
                        "interval": "2m",
                        "relabelings": [{"targetLabel": "cluster", "replacement": "aks-prod"}],
                        "metricRelabelings": [
                            {"sourceLabels": ["__name__"], "regex": "azsnap_reconcile_.*", "action": "drop"}
                        ],
                    }
                }
            }
        )
    )
    result = run_helm(helm, "template", "azsnap", str(CHART), "-f", str(values))
    assert result.returncode == 0, result.stderr
    monitor = one([d for d in yaml.safe_load_all(result.stdout) if d], "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    assert endpoint["interval"] == "2m"
    assert endpoint["relabelings"] == [{"targetLabel": "cluster", "replacement": "aks-prod"}]
    assert endpoint["metricRelabelings"][0]["action"] == "drop"
    off = render(helm, None, "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.honorLabels=false")
    assert one(off, "ServiceMonitor")["spec"]["endpoints"][0]["honorLabels"] is False


# -- a subchart of an umbrella chart -----------------------------------------------------------------------------


def test_umbrella_chart_with_global_values_renders(helm: str, tmp_path: pathlib.Path) -> None:
    umbrella = tmp_path / "platform"
    umbrella.mkdir()
    dependency = {"name": "azsnap", "version": "0.1.0", "repository": f"file://{CHART}", "condition": "azsnap.enabled"}
    (umbrella / "Chart.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v2", "name": "platform", "version": "1.0.0", "dependencies": [dependency]})
    )
    homes = {f"HELM_{kind}_HOME": str(tmp_path / f"helm-{kind.lower()}") for kind in ("CACHE", "CONFIG", "DATA")}
    built = subprocess.run(
        [helm, "dependency", "build", str(umbrella)],
        capture_output=True,
        text=True,
        env={**os.environ, **homes},
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert [p.name for p in (umbrella / "charts").iterdir()] == ["azsnap-0.1.0.tgz"]
    (umbrella / "values.yaml").write_text(
        yaml.safe_dump(
            {
                "global": {"imageRegistry": "registry.example.com", "clusterName": "aks-prod"},
                "azsnap": {"enabled": True, "image": {"repository": "registry.example.com/azsnap"}},
            }
        )
    )
    result = run_helm(helm, "template", "platform", str(umbrella), "--namespace", "platform")
    assert result.returncode == 0, result.stderr
    manifests = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert container(manifests)["image"] == "registry.example.com/azsnap:0.1.0"
    lint = run_helm(helm, "lint", str(umbrella))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # The schema stays strict for everything else a parent passes down.
    (umbrella / "values.yaml").write_text(yaml.safe_dump({"global": {}, "azsnap": {"enabled": True, "replicas": 2}}))
    refused = run_helm(helm, "template", "platform", str(umbrella))
    assert refused.returncode != 0 and "replicas" in refused.stderr


# -- pod shape ---------------------------------------------------------------------------------------------------


def test_security_context_is_hardened_by_default_and_overridable_for_openshift(
    helm: str, tmp_path: pathlib.Path
) -> None:
    default = render(helm)
    pod = one(default, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 65532
    values = tmp_path / "openshift.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None},
                "securityContext": {"runAsUser": None, "runAsGroup": None},
            }
        )
    )
    result = run_helm(helm, "template", "azsnap", str(CHART), "-f", str(values))
    assert result.returncode == 0, result.stderr
    manifests = [d for d in yaml.safe_load_all(result.stdout) if d]
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    sc = container(manifests)["securityContext"]
    assert "runAsUser" not in sc and "runAsGroup" not in sc
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}


def test_topology_spread_extra_volumes_digest_and_revision_history(helm: str, tmp_path: pathlib.Path) -> None:
    digest = "sha256:" + "ab" * 32
    values = tmp_path / "platform.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "image": {"repository": "registry.example.com/azsnap", "tag": "ignored", "digest": digest},
                "revisionHistoryLimit": 10,
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "{{ .Release.Name }}"}},
                    }
                ],
                "extraVolumes": [{"name": "arm-ca", "configMap": {"name": "private-arm-ca"}}],
                "extraVolumeMounts": [{"name": "arm-ca", "mountPath": "/etc/azsnap/ca", "readOnly": True}],
                "extraEnv": [{"name": "AZSNAP_CA_BUNDLE", "value": "/etc/azsnap/ca/ca.crt"}],
            }
        )
    )
    result = run_helm(helm, "template", "azsnap", str(CHART), "-f", str(values))
    assert result.returncode == 0, result.stderr
    manifests = [d for d in yaml.safe_load_all(result.stdout) if d]
    deployment = one(manifests, "Deployment")
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["revisionHistoryLimit"] == 10
    assert container(manifests)["image"] == f"registry.example.com/azsnap@{digest}"
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == {"app.kubernetes.io/instance": "azsnap"}
    assert {"name": "arm-ca", "configMap": {"name": "private-arm-ca"}} in pod["volumes"]
    mounts = {m["mountPath"]: m for m in container(manifests)["volumeMounts"]}
    assert mounts["/etc/azsnap/ca"]["name"] == "arm-ca"
    assert "/tmp" in mounts  # the chart's own mounts stay


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"prometheusRule": {"for": {"stale": "soon"}}}, "/prometheusRule/for/stale"),
        ({"grafanaDashboard": {"enable": True}}, "/grafanaDashboard"),
        ({"extraVolumeMounts": [{"name": "x"}]}, "/extraVolumeMounts/0"),
    ],
)
def test_schema_rejects_wrong_platform_values(
    helm: str, tmp_path: pathlib.Path, values: dict[str, Any], field: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(values))
    result = run_helm(helm, "template", "x", str(CHART), "-f", str(bad))
    assert result.returncode != 0
    assert field in result.stderr


# -- RBAC for people ---------------------------------------------------------------------------------------------


def test_aggregated_cluster_roles_let_namespace_users_read_or_write_policies(helm: str) -> None:
    manifests = render(helm)
    roles = {r["metadata"]["name"]: r for r in of_kind(manifests, "ClusterRole")}
    view, edit = roles["azsnap-view"], roles["azsnap-edit"]
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    for role in (view, edit):
        for rule in role["rules"]:
            assert rule["apiGroups"] == ["azsnap.io"]
            if "snapshotpolicies/status" in rule["resources"]:
                assert set(rule["verbs"]) == {"get", "list", "watch"}  # only the operator writes status
    assert set(view["rules"][0]["verbs"]) == {"get", "list", "watch"}
    assert {"create", "update", "patch", "delete"} <= set(edit["rules"][0]["verbs"])
    bound = {b["roleRef"]["name"] for b in of_kind(manifests, "ClusterRoleBinding")}
    assert not bound & {"azsnap-view", "azsnap-edit"}  # Kubernetes aggregates them; nobody binds them
    off = render(helm, None, "rbac.aggregateToDefaultRoles=false")
    assert {r["metadata"]["name"] for r in of_kind(off, "ClusterRole")} == {"azsnap"}
    scoped = render(helm, "namespace-scoped")
    # a namespace-scoped install creates nothing cluster-wide but reading PersistentVolumes (they have no namespace)
    assert [r["metadata"]["name"] for r in of_kind(scoped, "ClusterRole")] == ["azsnap-volumes"]


# -- memory, from the measurement ----------------------------------------------------------------------------------

_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}


def _bytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)([KMG]i?)?", quantity)
    assert match, quantity
    return int(match.group(1)) * _UNITS.get(match.group(2) or "", 1)


def test_default_memory_covers_the_measured_3000_policies_with_headroom(helm: str) -> None:
    doc = (ROOT / "docs" / "performance.md").read_text()
    section = doc[doc.index("## Operator memory") :]
    section = section[: section.index("\n## ")]  # that section only: the next one has footprint figures
    runs = {
        figures["policies"]: figures
        for figures in (json.loads(line) for line in section.splitlines() if line.startswith('{"policies"'))
    }
    assert {100, 1000, 3000} <= set(runs)
    peak = runs[3000]["operator_rss_peak_mb"] * 2**20
    resources = container(render(helm))["resources"]
    assert _bytes(resources["requests"]["memory"]) >= peak
    assert _bytes(resources["limits"]["memory"]) >= 1.5 * peak
    assert "bench.operator_rss --policies 3000" in section
