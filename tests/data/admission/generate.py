#!/usr/bin/env python3
"""Regenerates the AdmissionReview corpus from the object fixtures and examples.

Each review is shaped like what kube-apiserver sends (admission.k8s.io/v1): uid, kind, resource,
requestKind, requestResource, namespace, operation, userInfo, object, oldObject, dryRun, options.
Run from the repository root: python3 tests/data/admission/generate.py
"""
import copy
import json
import pathlib
import subprocess
import uuid

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
OUT = ROOT / "tests/data/admission"

RESOURCES = {
    "Pod": ("", "v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "ConfigMap": ("", "v1", "configmaps"),
}
USERS = {
    "Pod": {"username": "system:serviceaccount:kube-system:replicaset-controller",
            "uid": "3c5f7a10-2b6e-4bde-9d5c-0f0c7a2b9e61",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
    "default": {"username": "ci-deployer", "uid": "b8f1c0d4-77a2-4f4e-8e0c-5d9a3f1e2c47",
                "groups": ["system:authenticated"]},
}


def load(path):
    text = (ROOT / path).read_text()
    if path.endswith(".json"):
        return json.loads(text)
    return yaml.safe_load(text)


# Lists the API server merges by key (patchMergeKey / listMapKeys); any other list is atomic.
LIST_KEYS = {"containers": ("name",), "initContainers": ("name",), "env": ("name",),
             "volumes": ("name",), "volumeMounts": ("mountPath",), "ownerReferences": ("uid",),
             "ports": ("containerPort", "protocol")}
# Set by the in-tree admission plugins (ServiceAccount, DefaultTolerationSeconds, Priority), which
# run after the field manager recorded the request: no manager owns them.
UNOWNED = {"status", "volumes", "tolerations", "priority", "preemptionPolicy", "serviceAccount"}
MANAGED_AT = "2026-11-20T09:12:44Z"


def fields_v1(value, top=False):
    """The FieldsV1 set of the fields `value` sets, as the API server's field manager records it
    (its members sorted, as the API server writes them)."""
    if isinstance(value, dict):
        out = {} if top or not value else {".": {}}
        for key, member in sorted(value.items()):
            if top and key in UNOWNED:
                continue
            if key in LIST_KEYS and isinstance(member, list):
                entries = keyed(key, member)
                if entries:
                    out["f:" + key] = entries
            else:
                out["f:" + key] = fields_v1(member)
        return out
    return {}


def keyed(key, items):
    """The entries of a list merged by key, sorted by key as the API server writes them; none
    when every item was added by admission (the token's volumeMount)."""
    entries = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        if key == "volumeMounts" and item.get("name", "").startswith("kube-api-access-"):
            continue
        ident = {k: item.get(k, "TCP" if k == "protocol" else None) for k in LIST_KEYS[key]}
        # An ownerReference is atomic: owned whole, not field by field.
        fields = {} if key == "ownerReferences" else fields_v1(item)
        entries["k:" + json.dumps(ident, separators=(",", ":"))] = fields
    if not entries:
        return {}
    # A list of containers is required, so owned through its entries only.
    out = {} if key in ("containers", "initContainers") else {".": {}}
    out.update(sorted(entries.items()))
    return out


def with_managed_fields(obj, kind):
    """`obj` as the API server sends it to admission webhooks: the field manager has recorded the
    request's fields in `metadata.managedFields` before mutating admission (Kubernetes 1.18+)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        return obj
    obj = copy.deepcopy(obj)
    manager = "kube-controller-manager" if kind == "Pod" else "kubectl-client-side-apply"
    fields = {"f:" + part: fields_v1(obj[part], top=True)
              for part in ("metadata", "spec", "data") if isinstance(obj.get(part), dict)}
    fields.get("f:metadata", {}).pop("f:namespace", None)
    obj["metadata"]["managedFields"] = [{
        "manager": manager, "operation": "Update", "apiVersion": obj.get("apiVersion", "v1"),
        "time": MANAGED_AT, "fieldsType": "FieldsV1", "fieldsV1": fields}]
    return obj


def review(name, operation, obj, old=None, namespace=None):
    kind = (obj or old)["kind"]
    obj, old = with_managed_fields(obj, kind), with_managed_fields(old, kind)
    group, version, resource = RESOURCES[kind]
    meta = (obj or old).get("metadata", {})
    namespace = namespace or meta.get("namespace", "shop")
    options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}[operation]
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource}
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, "sidekiq-guard/" + name)),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": meta.get("name", ""),
            "namespace": namespace,
            "operation": operation,
            "userInfo": USERS["Pod"] if kind == "Pod" else USERS["default"],
            "object": obj,
            "oldObject": old,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
        },
    }
    if not body["request"]["name"]:
        del body["request"]["name"]
    (OUT / f"{name}.json").write_text(json.dumps(body, indent=2) + "\n")


def injected(obj):
    """The object as `kubectl sidekiq inject` (the same core code as the webhook) mutates it."""
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "kubectl-sidekiq", "--", "inject", "-f", "-", "-o", "json"],
        input=json.dumps(obj), capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def server_defaulted(pod):
    """The pod as kube-apiserver defaults it after a webhook's patch (pkg/apis/core/v1/defaults.go)
    and its ServiceAccount plugin mounts the token, which is what a reinvoked webhook, or the pod
    of an injected template, sees."""
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    for key, value in [("restartPolicy", "Always"), ("dnsPolicy", "ClusterFirst"),
                       ("schedulerName", "default-scheduler"), ("securityContext", {}),
                       ("enableServiceLinks", True), ("preemptionPolicy", "PreemptLowerPriority"),
                       ("priority", 0)]:
        spec.setdefault(key, value)

    def probe(p):
        for key, value in [("timeoutSeconds", 1), ("periodSeconds", 10),
                           ("successThreshold", 1), ("failureThreshold", 3)]:
            p.setdefault(key, value)
        if "httpGet" in p:
            p["httpGet"].setdefault("scheme", "HTTP")

    token = {"name": "kube-api-access-8xq2n", "readOnly": True,
             "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        # The ServiceAccount admission plugin mounts the token into every container, and again
        # into those a webhook added when the API server reinvokes the in-tree plugins.
        mounts = container.setdefault("volumeMounts", [])
        if not any(m.get("mountPath") == token["mountPath"] for m in mounts):
            mounts.append(dict(token))
        tag = container["image"].rsplit("/", 1)[-1]
        latest = ":" not in tag or tag.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        for port in container.get("ports", []):
            port.setdefault("protocol", "TCP")
        for name in ["startupProbe", "readinessProbe", "livenessProbe"]:
            if name in container:
                probe(container[name])
        pre_stop = container.get("lifecycle", {}).get("preStop", {})
        if "httpGet" in pre_stop:
            pre_stop["httpGet"].setdefault("scheme", "HTTP")
        for env in container.get("env", []):
            field_ref = env.get("valueFrom", {}).get("fieldRef")
            if field_ref is not None:
                field_ref.setdefault("apiVersion", "v1")
    return pod


def second_pass_restricted(pod):
    """The injected pod as the in-tree admission plugins leave it in the second pass the
    webhook's patch causes, in a locked-down namespace: LimitRanger with a LimitRange whose
    `default` and `defaultRequest` cover what the sidecar leaves open, AlwaysPullImages, and
    OpenShift's restricted-v2 SecurityContextConstraint assigning a user."""
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        resources = container.setdefault("resources", {})
        limits = resources.setdefault("limits", {})
        requests = resources.setdefault("requests", {})
        for name, value in [("cpu", "500m"), ("ephemeral-storage", "1Gi")]:
            if name not in limits:
                limits[name] = value
                requests.setdefault(name, {"cpu": "100m", "ephemeral-storage": "100Mi"}[name])
        container["imagePullPolicy"] = "Always"
        container.setdefault("securityContext", {}).setdefault("runAsUser", 1000680000)
    spec["securityContext"].setdefault("seLinuxOptions", {"level": "s0:c26,c5"})
    spec["securityContext"].setdefault("fsGroup", 1000680000)
    return pod


def main():
    rails_pod = load("tests/data/objects/pod-rails-worker.json")
    review("create-pod-rails-worker", "CREATE", rails_pod)
    review("create-pod-already-injected", "CREATE", injected(rails_pod))
    review("create-pod-reinvoked", "CREATE", server_defaulted(injected(rails_pod)))
    review("create-pod-reinvoked-restricted", "CREATE",
           second_pass_restricted(server_defaulted(injected(rails_pod))))
    review("create-pod-web", "CREATE", load("tests/data/objects/pod-web.json"))
    for name in ["pod-two-sidekiqs", "pod-bad-annotations", "pod-port-conflict", "pod-user-probes",
                 "pod-redis-in-ruby"]:
        review(f"create-{name}", "CREATE", load(f"tests/data/objects/{name}.yaml"))
    running = server_defaulted(injected(rails_pod))
    running["metadata"]["name"] = "rails-worker-7d9c8f6b5-x2x9k"
    running["spec"]["nodeName"] = "node-a"
    running["status"] = {
        "phase": "Running", "hostIP": "10.0.3.12", "hostIPs": [{"ip": "10.0.3.12"}],
        "podIP": "10.42.1.17", "podIPs": [{"ip": "10.42.1.17"}], "qosClass": "Burstable",
        "startTime": "2026-11-20T09:14:03Z",
    }
    relabelled = copy.deepcopy(running)
    relabelled["metadata"]["labels"]["team"] = "payments"
    review("update-pod-labels", "UPDATE", relabelled, running)
    review("delete-pod", "DELETE", None, running)

    examples = {
        "rails-worker": "Deployment", "report-worker": "Deployment",
        "mailer-statefulset": "StatefulSet", "nightly-cronjob": "CronJob",
        "handwritten-prestop": "Deployment",
    }
    for name in examples:
        obj = load(f"manifests/examples/{name}.yaml")
        review(f"create-{name}", "CREATE", obj)
    report = load("manifests/examples/report-worker.yaml")
    lowered = copy.deepcopy(report)
    lowered["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    review("update-report-worker-lowered-grace", "UPDATE", lowered, report)
    # Under enforcement: deny an UPDATE is refused only for an error its old object lacked.
    rails = load("manifests/examples/rails-worker.yaml")
    quiet_only = copy.deepcopy(rails)
    quiet_only["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = {
        "preStop": {"exec": {"command": ["/bin/sh", "-c", "kill -TSTP 1"]}}}
    review("update-rails-worker-quiet-only-prestop", "UPDATE", quiet_only, rails)
    relabelled = copy.deepcopy(quiet_only)
    relabelled["metadata"].setdefault("labels", {})["team"] = "payments"
    review("update-quiet-only-relabelled", "UPDATE", relabelled, quiet_only)
    # A new image rolls out new pods, which would be refused: judged as a CREATE.
    rolled = copy.deepcopy(quiet_only)
    rolled["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/shop/app:2026.11.4"
    review("update-quiet-only-new-image", "UPDATE", rolled, quiet_only)
    deleting = copy.deepcopy(quiet_only)
    deleting["metadata"]["deletionTimestamp"] = "2026-11-26T10:00:00Z"
    deleting["metadata"]["deletionGracePeriodSeconds"] = 0
    finalized = copy.deepcopy(deleting)
    deleting["metadata"]["finalizers"] = ["foregroundDeletion"]
    review("update-quiet-only-finalizer-removed", "UPDATE", finalized, deleting)
    # A Job's pod template is immutable: an UPDATE (here suspending it) is judged, never patched.
    cron = load("manifests/examples/nightly-cronjob.yaml")
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "nightly-reconcile-29400000",
                        "namespace": cron["metadata"].get("namespace", "shop"),
                        "labels": cron["metadata"].get("labels", {})},
           "spec": copy.deepcopy(cron["spec"]["jobTemplate"]["spec"])}
    review("create-job", "CREATE", job)
    suspended = copy.deepcopy(job)
    suspended["spec"]["suspend"] = True
    review("update-job-suspended", "UPDATE", suspended, job)
    review("create-configmap", "CREATE", {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "settings", "namespace": "shop"},
                                          "data": {"sidekiq.yml": ":timeout: 25\n"}})

    malformed = OUT / "malformed"
    (malformed / "not-json.txt").write_text("<html>not json</html>\n")
    (malformed / "truncated.json").write_text('{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionRev')
    (malformed / "v1beta1.json").write_text(json.dumps({
        "apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
        "request": {"uid": "0f0c7a2b-0000-4000-8000-000000000001", "operation": "CREATE"}}) + "\n")
    (malformed / "wrong-kind.json").write_text(json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "Pod", "request": {"uid": "x"}}) + "\n")
    (malformed / "no-request.json").write_text(json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}) + "\n")
    (malformed / "empty-uid.json").write_text(json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": ""}}) + "\n")
    (malformed / "uid-not-a-string.json").write_text(json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 42}}) + "\n")
    # JSON, but not what an API server sends: refused with the field and what is accepted, never
    # answered as if the object were absent or had no such field.
    (malformed / "array-body.json").write_text("[]\n")
    (malformed / "array-form.json").write_text(json.dumps(
        ["admission.k8s.io/v1", "AdmissionReview", {"uid": "x"}]) + "\n")

    drop = object()  # a field left out, as distinct from null

    def bad(name, **fields):
        request = {"uid": str(uuid.uuid5(uuid.NAMESPACE_URL, "sidekiq-guard/malformed/" + name)),
                   "kind": {"group": "", "version": "v1", "kind": "Pod"},
                   "resource": {"group": "", "version": "v1", "resource": "pods"},
                   "namespace": "shop", "operation": "CREATE"}
        for key, value in fields.items():
            if value is drop:
                request.pop(key, None)
            else:
                request[key] = value
        (malformed / f"{name}.json").write_text(json.dumps({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}) + "\n")

    def worker(**container):
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker", "namespace": "shop"},
                "spec": {"containers": [{"name": "worker", "image": "app", "command": ["bundle", "exec", "sidekiq"],
                                         **container}]}}

    bad("object-null", object=None)
    bad("object-list", object=[])
    bad("object-empty", object={})
    bad("operation-unknown", operation="FOO", object=worker())
    bad("no-operation", operation=drop, object=worker())
    bad("no-kind", kind=drop, object=worker())
    bad("metadata-string", object={**worker(), "metadata": "x"})
    bad("containers-mapping", object={**worker(), "spec": {"containers": {"worker": {"image": "app"}}}})
    bad("command-string", object=worker(command="bundle exec sidekiq"))
    bad("env-mapping", object=worker(env={"REDIS_URL": "redis://redis:6379"}))


if __name__ == "__main__":
    main()
