"""The Helm chart: lint, render every documented scenario, validate against Kubernetes schemas, check the wiring."""

import json
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from tests.support.helm import (
    CHART,
    ROOT,
    SCENARIO_DIR,
    container,
    env_of,
    helm_or_skip,
    of_kind,
    one,
    operator_roles,
    render,
    rules,
    run_helm,
)

from azsnap.domain.scope import ScopeGuard
from azsnap.settings import ENV_PREFIX, Settings

SCENARIOS = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
DOCUMENTED = {
    "default",
    "workload-identity",
    "managed-identity",
    "peering-ha",
    "china-cloud",
    "monitoring",
    "namespace-scoped",
}
KUBERNETES_VERSION = kv_utils.latest_version()


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_or_skip()


#: Kinds the Kubernetes schemas do not know: checked by the tests below instead.
NON_CORE_KINDS = {"ServiceMonitor", "PrometheusRule", "ClusterKopfPeering", "KopfPeering"}
#: The only RBAC the operator may hold: (apiGroup, resource) -> verbs.
ALLOWED_RULES = {
    ("azsnap.io", "snapshotpolicies"): {"list", "watch", "patch"},
    ("azsnap.io", "snapshotpolicies/status"): {"patch"},
    ("", "events"): {"create"},
    ("", "persistentvolumeclaims"): {"list", "watch"},
}
#: PersistentVolumes have no namespace: read through a ClusterRole of their own in a namespace-scoped install.
VOLUME_RULES = {("", "persistentvolumes"): {"list", "watch"}}
PEERING_RULES = {
    ("kopf.dev", "clusterkopfpeerings"): {"list", "watch", "patch"},
    ("kopf.dev", "kopfpeerings"): {"list", "watch", "patch"},
}
CLIENT_ID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"


# -- lint and render -------------------------------------------------------------------------------------------


def test_every_documented_scenario_has_a_values_file() -> None:
    assert set(SCENARIOS) == DOCUMENTED


def test_lint_default_values(helm: str) -> None:
    result = run_helm(helm, "lint", str(CHART), "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_scenario(helm: str, scenario: str) -> None:
    result = run_helm(helm, "lint", str(CHART), "--strict", "-f", str(SCENARIO_DIR / f"{scenario}.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_rendered_manifests_match_kubernetes_schemas(helm: str, scenario: str | None) -> None:
    manifests = render(helm, scenario)
    assert {m["kind"] for m in manifests} >= {"Deployment", "ServiceAccount", "CustomResourceDefinition"}
    for manifest in manifests:
        if manifest["kind"] in NON_CORE_KINDS:
            continue
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_validation_catches_a_bad_manifest(helm: str) -> None:
    deployment = json.loads(json.dumps(one(render(helm), "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {"no": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# -- pod security and probes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_pod_is_locked_down(helm: str, scenario: str | None) -> None:
    manifests = render(helm, scenario)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    sc = container(manifests)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container(manifests)["resources"]["limits"]["memory"]


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_probes_hit_kopf_liveness_endpoint(helm: str, scenario: str | None) -> None:
    c = container(render(helm, scenario))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["health"] == 8081
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert get["port"] in ("health", 8081)
    assert c["args"] == ["run"]


def test_metrics_port_and_service(helm: str) -> None:
    manifests = render(helm)
    assert {p["name"]: p["containerPort"] for p in container(manifests)["ports"]}["metrics"] == 8080
    assert env_of(manifests)["AZSNAP_METRICS_PORT"] == "8080"
    service = one(manifests, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    assert (
        service["spec"]["selector"].items()
        <= one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )

    off = render(helm, None, "metrics.port=0")
    assert env_of(off)["AZSNAP_METRICS_PORT"] == "0"
    assert not of_kind(off, "Service")
    assert "metrics" not in {p["name"] for p in container(off)["ports"]}


# -- RBAC -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_rbac_has_no_wildcards_and_only_the_verbs_azsnap_uses(helm: str, scenario: str | None) -> None:
    manifests = render(helm, scenario)
    granted = list(rules(manifests))
    assert granted
    allowed = {**ALLOWED_RULES, **PEERING_RULES, **VOLUME_RULES}
    for group, resource, verb in granted:
        assert "*" not in (group, resource, verb)
        assert verb in allowed.get((group, resource), set()), f"{verb} on {group}/{resource} is not needed"
    for role in operator_roles(manifests):
        assert "aggregationRule" not in role
        for rule in role["rules"]:
            assert not rule.get("nonResourceURLs")
            assert not rule.get("resourceNames")
    # Everything azsnap needs is granted in each place it works.
    needed = {(g, r, v) for (g, r), verbs in ALLOWED_RULES.items() for v in verbs}
    volumes = {(g, r, v) for (g, r), verbs in VOLUME_RULES.items() for v in verbs}
    for role in operator_roles(manifests):
        if role["metadata"]["name"].endswith("-volumes"):
            assert set(rules([role])) == volumes  # the one cluster-wide rule of a namespace-scoped install
        else:
            assert needed <= set(rules([role]))
    assert volumes <= set(rules(manifests))


def test_cluster_wide_install_binds_a_cluster_role_to_the_service_account(helm: str) -> None:
    manifests = render(helm)
    assert not of_kind(manifests, "Role")
    binding = one(manifests, "ClusterRoleBinding")
    sa = one(manifests, "ServiceAccount")["metadata"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": one(operator_roles(manifests), "ClusterRole")["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": "azsnap-system"}]
    assert one(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == sa["name"]
    assert "AZSNAP_NAMESPACES" not in env_of(manifests)


def test_namespace_scoped_install_has_no_cluster_rbac_but_reading_volumes(helm: str) -> None:
    manifests = render(helm, "namespace-scoped")
    # PersistentVolumes have no namespace: listing and watching them (for claim targets) is the one cluster-wide
    # grant; nothing else is cluster-wide.
    (volumes,) = of_kind(manifests, "ClusterRole")
    assert volumes["rules"] == [{"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["list", "watch"]}]
    (binding,) = of_kind(manifests, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == volumes["metadata"]["name"]
    roles = {r["metadata"]["namespace"] for r in of_kind(manifests, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in of_kind(manifests, "RoleBinding")}
    assert roles == set(bindings) == {"team-a", "team-b"}
    for binding in bindings.values():
        assert binding["subjects"][0]["namespace"] == "azsnap-system"
    assert env_of(manifests)["AZSNAP_NAMESPACES"] == "team-a,team-b"


def test_rbac_create_false_renders_no_rbac(helm: str) -> None:
    manifests = render(helm, None, "rbac.create=false")
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert not of_kind(manifests, kind)


# -- workload identity and credentials ------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_workload_identity_wiring(helm: str, scenario: str | None) -> None:
    manifests = render(helm, scenario)
    env = env_of(manifests)
    sa = one(manifests, "ServiceAccount")["metadata"]
    annotations = sa.get("annotations") or {}
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    if env["AZSNAP_CREDENTIAL"] == "workload-identity":
        assert pod_labels["azure.workload.identity/use"] == "true"
        if "AZSNAP_CLIENT_ID" in env:
            assert annotations["azure.workload.identity/client-id"] == env["AZSNAP_CLIENT_ID"]
        else:
            assert "azure.workload.identity/client-id" not in annotations
    else:
        assert "azure.workload.identity/use" not in pod_labels
        assert not [k for k in annotations if k.startswith("azure.workload.identity/")]


def test_workload_identity_client_and_tenant_on_the_service_account(helm: str) -> None:
    manifests = render(helm, "workload-identity")
    annotations = one(manifests, "ServiceAccount")["metadata"]["annotations"]
    assert annotations == {
        "azure.workload.identity/client-id": CLIENT_ID,
        "azure.workload.identity/tenant-id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    }
    assert "AZURE_TENANT_ID" not in env_of(manifests)  # the webhook injects it from the annotation


def test_managed_identity_selects_the_identity_by_client_id(helm: str) -> None:
    manifests = render(helm, "managed-identity")
    env = env_of(manifests)
    assert env["AZSNAP_CREDENTIAL"] == "managed-identity"
    assert env["AZSNAP_CLIENT_ID"] == "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"


def test_existing_service_account(helm: str) -> None:
    manifests = render(helm, None, "serviceAccount.create=false", "serviceAccount.name=platform-sa")
    assert not of_kind(manifests, "ServiceAccount")
    assert one(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "platform-sa"
    assert one(manifests, "ClusterRoleBinding")["subjects"][0]["name"] == "platform-sa"


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_environment_is_exactly_what_the_operator_reads(helm: str, scenario: str | None) -> None:
    env = env_of(render(helm, scenario))
    for name in env:
        if name.startswith(ENV_PREFIX):
            assert name[len(ENV_PREFIX) :].lower() in Settings.model_fields, f"{name} is not an operator setting"
    settings = Settings.from_env(env)  # raises SettingsError, naming the variable, if a value is malformed
    assert settings.limits.window_creates == 7
    assert settings.metrics_port == 8080


def test_china_cloud_endpoints(helm: str) -> None:
    settings = Settings.from_env(env_of(render(helm, "china-cloud")))
    assert settings.resolved_arm_endpoint == "https://management.chinacloudapi.cn"
    assert settings.resolved_authority_host == "https://login.chinacloudapi.cn"


# -- availability: replicas, strategy, peering, PDB ------------------------------------------------------------


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_single_replica_recreate_unless_peering(helm: str, scenario: str | None) -> None:
    manifests = render(helm, scenario)
    spec = one(manifests, "Deployment")["spec"]
    env = env_of(manifests)
    if "AZSNAP_PEERING" in env:
        assert spec["strategy"]["type"] == "RollingUpdate"
        assert spec["replicas"] >= 1
    else:
        assert spec["strategy"] == {"type": "Recreate"}
        assert spec["replicas"] == 1
        assert not [k for k in (m["kind"] for m in manifests) if "KopfPeering" in k]
        assert not [r for r in rules(manifests) if r[0] == "kopf.dev"]


def test_peering_with_two_replicas(helm: str) -> None:
    manifests = render(helm, "peering-ha")
    assert one(manifests, "Deployment")["spec"]["replicas"] == 2
    assert env_of(manifests)["AZSNAP_PEERING"] == "azsnap"
    peering = one(manifests, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "azsnap"
    assert peering["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    crd_names = {c["metadata"]["name"] for c in of_kind(manifests, "CustomResourceDefinition")}
    assert "clusterkopfpeerings.kopf.dev" in crd_names
    assert {("kopf.dev", "clusterkopfpeerings", v) for v in ("list", "watch", "patch")} <= set(rules(manifests))
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in pdb["spec"]


def test_namespaced_peering_objects(helm: str) -> None:
    manifests = render(helm, "namespace-scoped", "peering.enabled=true")
    assert {p["metadata"]["namespace"] for p in of_kind(manifests, "KopfPeering")} == {"team-a", "team-b"}
    for role in of_kind(manifests, "Role"):
        assert {("kopf.dev", "kopfpeerings", v) for v in ("list", "watch", "patch")} <= set(rules([role]))
    assert not of_kind(manifests, "ClusterKopfPeering")


def test_peering_crds_can_be_left_to_someone_else(helm: str) -> None:
    manifests = render(helm, "peering-ha", "peering.installCRDs=false")
    assert {c["metadata"]["name"] for c in of_kind(manifests, "CustomResourceDefinition")} == {
        "snapshotpolicies.azsnap.io",
        "snapshotrestores.azsnap.io",
    }


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_service_monitor_and_pdb_only_when_enabled(helm: str, scenario: str | None) -> None:
    values = yaml.safe_load((SCENARIO_DIR / f"{scenario}.yaml").read_text()) if scenario else {}
    manifests = render(helm, scenario)
    wants_monitor = bool(values.get("metrics", {}).get("serviceMonitor", {}).get("enabled"))
    wants_pdb = bool(values.get("podDisruptionBudget", {}).get("enabled"))
    assert len(of_kind(manifests, "ServiceMonitor")) == int(wants_monitor)
    assert len(of_kind(manifests, "PodDisruptionBudget")) == int(wants_pdb)


def test_service_monitor_scrapes_the_metrics_service(helm: str) -> None:
    manifests = render(helm, "monitoring")
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "60s", "scrapeTimeout": "10s", "honorLabels": True}
    ]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["azsnap-system"]}
    assert one(manifests, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


# -- tenancy allow-list ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_scope_allow_list_is_mounted_and_parses(helm: str, scenario: str | None) -> None:
    values = yaml.safe_load((SCENARIO_DIR / f"{scenario}.yaml").read_text()) if scenario else {}
    manifests = render(helm, scenario)
    config = one(manifests, "ConfigMap")
    guard = ScopeGuard.from_yaml(config["data"]["scopes.yaml"])
    assert len(guard.rules) == len(values.get("scopes", {}).get("rules", []))
    path = pathlib.PurePosixPath(env_of(manifests)["AZSNAP_SCOPE_FILE"])
    mounts = {m["mountPath"]: m for m in container(manifests)["volumeMounts"]}
    assert mounts[str(path.parent)]["readOnly"] is True
    assert path.name in config["data"]
    volumes = {v["name"]: v for v in one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts[str(path.parent)]["name"]]["configMap"]["name"] == config["metadata"]["name"]


def test_scopes_disabled_means_no_allow_list(helm: str) -> None:
    manifests = render(helm, None, "scopes.enabled=false")
    assert not of_kind(manifests, "ConfigMap")
    assert "AZSNAP_SCOPE_FILE" not in env_of(manifests)


# -- the values schema -------------------------------------------------------------------------------------------

BAD_VALUES = [
    pytest.param({"replicaCount": 2}, "/peering/enabled", id="two-replicas-without-peering"),
    pytest.param({"azure": {"credential": "client-secret"}}, "/azure/credential", id="unknown-credential"),
    pytest.param({"azure": {"clientId": "not-a-guid"}}, "/azure/clientId", id="client-id-not-a-guid"),
    pytest.param({"azure": {"cloud": "germany"}}, "/azure/cloud", id="unknown-cloud"),
    pytest.param({"azure": {"armEndpoint": "http://insecure"}}, "/azure/armEndpoint", id="plain-http-endpoint"),
    pytest.param({"limits": {"windowCreates": 8}}, "/limits/windowCreates", id="more-than-azure-allows"),
    pytest.param({"limits": {"perDiskCap": 501}}, "/limits/perDiskCap", id="cap-above-azure"),
    pytest.param({"limits": {"windowSeconds": "300"}}, "/limits/windowSeconds", id="number-as-string"),
    pytest.param({"metrics": {"port": 8081}}, "/metrics/port", id="metrics-on-the-health-port"),
    pytest.param({"metrics": {"port": 70000}}, "/metrics/port", id="port-out-of-range"),
    pytest.param({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0", id="bad-namespace-name"),
    pytest.param({"scopes": {"rules": [{"namespaces": ["a"]}]}}, "/scopes/rules/0", id="scope-rule-missing-fields"),
    pytest.param(
        {"scopes": {"rules": [{"namespaces": ["a"], "subscriptions": ["s"], "diskResourceGroups": ["r"], "typo": 1}]}},
        "/scopes/rules/0",
        id="scope-rule-unknown-key",
    ),
    pytest.param({"logFormat": "xml"}, "/logFormat", id="unknown-log-format"),
    pytest.param({"replicas": 1}, "replicas", id="unknown-top-level-key"),
    pytest.param({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", id="bad-pull-policy"),
    pytest.param({"extraEnv": [{"name": "1BAD"}]}, "/extraEnv/0/name", id="bad-env-name"),
]


@pytest.mark.parametrize(("values", "field"), BAD_VALUES)
def test_schema_rejects_wrong_values(helm: str, tmp_path: pathlib.Path, values: dict[str, Any], field: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(values))
    for command in (["lint", str(CHART), "-f", str(bad)], ["template", "x", str(CHART), "-f", str(bad)]):
        result = run_helm(helm, *command)
        assert result.returncode != 0, f"helm {command[0]} accepted {values}"
        assert field in result.stdout + result.stderr


def test_schema_accepts_defaults_and_scenarios_in_python_too() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(defaults)
    for scenario in SCENARIOS:
        merged = _merge(defaults, yaml.safe_load((SCENARIO_DIR / f"{scenario}.yaml").read_text()) or {})
        jsonschema.Draft202012Validator(schema).validate(merged)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _leaf_paths(values: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from _leaf_paths(value, (*prefix, key))
    else:
        yield prefix


def test_schema_describes_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in _leaf_paths(defaults):
        node = schema
        for key in path:
            if "properties" not in node:
                break  # a free-form object such as resources
            assert key in node["properties"], f"values.schema.json does not describe {'.'.join(path)}"
            node = node["properties"][key]


def test_every_value_is_commented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, commented) of the enclosing keys
    previous = ""
    for number, line in enumerate(lines, 1):
        match = re.match(r"^(\s*)([A-Za-z][\w-]*):(.*)$", line)
        if match:
            indent, rest = len(match.group(1)), match.group(3).split("#")[0].strip()
            while stack and stack[-1][0] >= indent:
                stack.pop()
            commented = previous.lstrip().startswith("#")
            if rest and not commented and not any(c for _, c in stack):
                pytest.fail(f"values.yaml:{number}: {match.group(2)} has no comment above it")
            stack.append((indent, commented))
        if line.strip():
            previous = line


# -- the CRD -------------------------------------------------------------------------------------------------------


def test_chart_crd_is_the_source_crd() -> None:
    source = ROOT / "crds" / "snapshotpolicies.azsnap.io.yaml"
    copy = CHART / "crds" / "snapshotpolicies.azsnap.io.yaml"
    assert source.exists(), "crds/snapshotpolicies.azsnap.io.yaml is the source of truth"
    assert copy.exists(), "the chart must ship the CRD in helm/azsnap/crds/"
    assert copy.read_bytes() == source.read_bytes(), "helm/azsnap/crds/ differs from crds/: copy it over"


def test_crd_is_rendered_with_the_chart(helm: str) -> None:
    crds = {c["metadata"]["name"]: c for c in of_kind(render(helm), "CustomResourceDefinition")}
    crd = crds["snapshotpolicies.azsnap.io"]
    assert crd["spec"]["group"] == "azsnap.io"
    assert {v["name"] for v in crd["spec"]["versions"]} >= {"v1alpha1"}


def test_notes_warn_about_what_needs_doing(helm: str) -> None:
    result = run_helm(helm, "install", "azsnap", str(CHART), "--dry-run=client", "--namespace", "azsnap-system")
    assert result.returncode == 0, result.stderr
    assert "azure.clientId is empty" in result.stdout
    assert "every SnapshotPolicy is refused" in result.stdout
    configured = run_helm(
        helm, "install", "azsnap", str(CHART), "--dry-run=client", "-f", str(SCENARIO_DIR / "workload-identity.yaml")
    )
    assert configured.returncode == 0, configured.stderr
    assert "azure.clientId is empty" not in configured.stdout
    assert "every SnapshotPolicy is refused" not in configured.stdout
    # the one CRD command the docs show and the kubectl test runs (a CRD applied another way needs --force-conflicts)
    crd = "kubectl apply --server-side --force-conflicts -f crds/snapshotpolicies.azsnap.io.yaml"
    assert crd in configured.stdout and "snapshotrestores" not in configured.stdout
    restores = run_helm(helm, "install", "azsnap", str(CHART), "--dry-run=client", "--set", "restore.enabled=true")
    assert crd.replace("snapshotpolicies", "snapshotrestores") in restores.stdout


# -- the Azure side of a deployment ----------------------------------------------------------------------------

ROLE_ACTIONS = {
    "Microsoft.Compute/disks/read",
    "Microsoft.Compute/disks/beginGetAccess/action",
    "Microsoft.Compute/snapshots/read",
    "Microsoft.Compute/snapshots/write",
    "Microsoft.Compute/snapshots/delete",
}


def test_azure_role_has_exactly_the_actions_azsnap_needs() -> None:
    role = json.loads((ROOT / "docs" / "azure" / "azsnap-role.json").read_text())
    assert role["IsCustom"] is True
    assert len(role["Actions"]) == len(set(role["Actions"])) == len(ROLE_ACTIONS)
    assert set(role["Actions"]) == ROLE_ACTIONS
    assert role["NotActions"] == role["DataActions"] == role["NotDataActions"] == []
    for action in role["Actions"]:
        assert "*" not in action
    for scope in role["AssignableScopes"]:
        assert re.fullmatch(r"/subscriptions/[^/*]+/resourceGroups/[^/*]+", scope), f"{scope} is not a resource group"


def test_azure_setup_doc_walks_through_identity_federation_role_and_assignments() -> None:
    doc = (ROOT / "docs" / "azure-setup.md").read_text()
    for step in (
        "az aks show",
        "oidcIssuerProfile.issuerUrl",
        "az identity create",
        "az identity federated-credential create",
        "system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}",
        "api://AzureADTokenExchange",
        "az role definition create --role-definition @",
        "docs/azure/azsnap-role.json",
        "az role assignment create",
    ):
        assert step in doc, step
    for action in ROLE_ACTIONS:
        assert f"`{action}`" in doc


def test_install_doc_scenarios_match_the_values_files() -> None:
    doc = (ROOT / "docs" / "install.md").read_text()
    listed = set(re.findall(r"^\| `([\w-]+)\.yaml` \|", doc, re.M))
    assert listed == set(SCENARIOS)
