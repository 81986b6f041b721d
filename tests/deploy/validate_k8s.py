#!/usr/bin/python3
"""Offline validation of Kubernetes manifests against the API models of Debian's
python3-kubernetes (no cluster, no network).

  validate_k8s.py [--no-policy] PATH...     PATH: a .yaml file or a directory of them

Schema (every document): apiVersion/kind map to a model class (apps/v1 Deployment ->
V1Deployment, ...); the document is deserialised strictly into it: an unknown field, a value
of the wrong type (a string where an integer is due, a list where an object is due, ...), a
missing required field, a malformed resource quantity or a duplicate YAML key is an error,
reported with its path. python3-kubernetes 22 (Debian 12) predates autoscaling/v2; its
v2beta2 models have the same schema as autoscaling/v2 and are used for it.

Policy (directories, unless --no-policy): what deploy/README.md promises — the restricted pod
security settings, requests = limits, probes on /readyz and /healthz, a tmpfs /tmp, a grace
period above the drain time, workers x threads <= CPU limit, every reference (ConfigMap,
PVC, Service/PDB selectors, HPA target, named ports) resolving, and a kustomization.yaml that
lists every manifest. Exit status 0 when everything is valid, 1 otherwise.
"""
import math
import os
import re
import sys

import yaml
from kubernetes import client
from kubernetes.client import models as M

# kind -> API groups that serve it
KINDS = {
    "ConfigMap": {""}, "Secret": {""}, "Service": {""}, "ServiceAccount": {""},
    "PersistentVolumeClaim": {""}, "Namespace": {""}, "Pod": {""},
    "Deployment": {"apps"}, "StatefulSet": {"apps"}, "DaemonSet": {"apps"},
    "HorizontalPodAutoscaler": {"autoscaling"}, "PodDisruptionBudget": {"policy"},
    "NetworkPolicy": {"networking.k8s.io"}, "Ingress": {"networking.k8s.io"},
    "Job": {"batch"}, "CronJob": {"batch"},
}
# Quantity-typed fields (the models type them "str"; JSON allows numbers too).
QUANTITY = {("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
            ("V1EmptyDirVolumeSource", "size_limit"), ("V2beta2MetricTarget", "average_value"),
            ("V2beta2MetricTarget", "value"), ("V1MetricTarget", "average_value")}
QUANTITY_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
KUSTOMIZATION_FIELDS = {
    "apiVersion", "kind", "metadata", "resources", "components", "namespace", "namePrefix",
    "nameSuffix", "labels", "commonLabels", "commonAnnotations", "images", "replicas",
    "patches", "patchesStrategicMerge", "patchesJson6902", "configMapGenerator",
    "secretGenerator", "generatorOptions", "buildMetadata", "openapi", "crds", "vars",
    "replacements", "generators", "transformers", "validators", "helmCharts", "sortOptions"}


class UniqueKeyLoader(yaml.SafeLoader):
    pass


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class Strict:
    """Deserialise a JSON-like value into a python-kubernetes model, collecting errors."""

    def __init__(self):
        self.errors = []
        self.config = client.Configuration()
        self.config.client_side_validation = True

    def err(self, path, msg):
        self.errors.append("%s: %s" % (path or "<root>", msg))

    def value(self, data, typ, path, owner=None):
        if data is None:
            return None
        if typ.startswith("list["):
            if not isinstance(data, list):
                return self.err(path, "expected a list (%s), got %s" % (typ, type(data).__name__))
            return [self.value(v, typ[5:-1], "%s[%d]" % (path, i), owner) for i, v in enumerate(data)]
        if typ.startswith("dict("):
            if not isinstance(data, dict):
                return self.err(path, "expected an object (%s), got %s" % (typ, type(data).__name__))
            inner = typ[typ.index(",") + 1:-1].strip()
            out = {}
            for k, v in data.items():
                if not isinstance(k, str):
                    self.err(path, "key %r is not a string" % (k,))
                out[k] = self.value(v, inner, "%s.%s" % (path, k), owner)
            return out
        if owner in QUANTITY and typ == "str":
            if isinstance(data, bool) or not isinstance(data, (str, int, float)) or \
               not QUANTITY_RE.match(str(data)):
                return self.err(path, "not a resource quantity: %r" % (data,))
            return str(data)
        if typ == "str" or typ in ("datetime", "date"):
            if not isinstance(data, str):
                return self.err(path, "expected a string, got %s %r" % (type(data).__name__, data))
            return data
        if typ == "int":
            if isinstance(data, bool) or not isinstance(data, int):
                return self.err(path, "expected an integer, got %s %r" % (type(data).__name__, data))
            return data
        if typ == "float":
            if isinstance(data, bool) or not isinstance(data, (int, float)) or not math.isfinite(data):
                return self.err(path, "expected a number, got %s %r" % (type(data).__name__, data))
            return data
        if typ == "bool":
            if not isinstance(data, bool):
                return self.err(path, "expected true/false, got %s %r" % (type(data).__name__, data))
            return data
        if typ == "object":  # IntOrString in every kind handled here
            if isinstance(data, bool) or not isinstance(data, (int, str)):
                return self.err(path, "expected an integer or a string, got %s %r" % (type(data).__name__, data))
            return data
        return self.model(data, typ, path)

    def model(self, data, klass_name, path):
        klass = getattr(M, klass_name, None)
        if klass is None:
            return self.err(path, "no model class %s" % klass_name)
        if not isinstance(data, dict):
            return self.err(path, "expected an object (%s), got %s %r" % (klass_name, type(data).__name__, data))
        by_json = {j: a for a, j in klass.attribute_map.items()}
        kwargs = {}
        for key, v in data.items():
            attr = by_json.get(key)
            sub = "%s.%s" % (path, key) if path else key
            if attr is None:
                close = [j for j in by_json if j.lower() == str(key).lower()]
                self.err(sub, "unknown field %r in %s%s" % (key, klass_name,
                         " (did you mean %r?)" % close[0] if close else ""))
                continue
            got = self.value(v, klass.openapi_types[attr], sub, (klass_name, attr))
            # after a type error keep the raw value, so it is not reported missing as well
            kwargs[attr] = v if got is None else got
        try:
            return klass(local_vars_configuration=self.config, **kwargs)
        except (ValueError, TypeError) as e:
            msg = str(e)
            m = re.search(r"`(\w+)`, must not be `None`", msg)
            if m:
                msg = "missing required field %r in %s" % (klass.attribute_map.get(m.group(1), m.group(1)), klass_name)
            self.err(path, msg)
            return None


def model_class(api_version, kind):
    group, _, version = api_version.rpartition("/")
    if kind not in KINDS:
        return None, "unsupported kind %r" % kind
    if group not in KINDS[kind]:
        return None, "kind %s is not served by apiVersion %r" % (kind, api_version)
    if not re.match(r"^v\d+((alpha|beta)\d+)?$", version):
        return None, "bad apiVersion %r" % api_version
    name = version[0].upper() + version[1:] + kind
    if not hasattr(M, name) and api_version == "autoscaling/v2":
        name = "V2beta2" + kind  # same schema; python3-kubernetes 22 has no autoscaling/v2 models
    if not hasattr(M, name):
        return None, "apiVersion %r has no %s (no model %s)" % (api_version, kind, name)
    return name, None


def check_meta(doc, where, errs):
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        errs.append("%s: metadata.name is required" % where)
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        errs.append("%s: metadata.name %r is not a DNS-1123 subdomain" % (where, name))
    elif doc.get("kind") in ("Service", "Namespace") and (len(name) > 63 or not DNS1123_LABEL.match(name)):
        errs.append("%s: metadata.name %r is not a DNS-1123 label" % (where, name))
    for field in ("labels",):
        for k, v in (meta.get(field) or {}).items():
            if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
                errs.append("%s: label %s=%r is not a valid label value" % (where, k, v))


def load_docs(path, errs):
    try:
        with open(path, encoding="utf-8") as f:
            return [d for d in yaml.load_all(f, Loader=UniqueKeyLoader) if d is not None]
    except yaml.YAMLError as e:
        errs.append("%s: YAML error: %s" % (path, e))
        return []


def validate_schema(path, docs, errs):
    objs = []
    for i, doc in enumerate(docs):
        where = "%s[%d]" % (os.path.basename(path), i)
        if not isinstance(doc, dict):
            errs.append("%s: not an object" % where)
            continue
        if doc.get("kind") == "Kustomization":
            continue
        api, kind = doc.get("apiVersion"), doc.get("kind")
        if not isinstance(api, str) or not isinstance(kind, str):
            errs.append("%s: apiVersion and kind are required" % where)
            continue
        klass, problem = model_class(api, kind)
        if problem:
            errs.append("%s: %s" % (where, problem))
            continue
        where = "%s %s/%s" % (where, kind, (doc.get("metadata") or {}).get("name"))
        s = Strict()
        s.model(doc, klass, "")
        errs.extend("%s: %s" % (where, e) for e in s.errors)
        n = len(errs)
        check_meta(doc, where, errs)
        if not s.errors and len(errs) == n:
            print("ok    %s%s" % (where, "  (autoscaling/v2 checked with the v2beta2 models)"
                                  if api == "autoscaling/v2" else ""))
        objs.append((where, doc))
    return objs


# ---------------------------------------------------------------------------------------
def cpu_cores(q):
    q = str(q)
    if q.endswith("m"):
        return float(q[:-1]) / 1000
    return float(q)


def policy(objs, kustomization, files, errs):
    by_kind = {}
    for where, d in objs:
        by_kind.setdefault(d["kind"], []).append((where, d))

    def names(kind):
        return {d["metadata"]["name"] for _, d in by_kind.get(kind, [])}

    def need(cond, where, msg):
        if not cond:
            errs.append("%s: policy: %s" % (where, msg))

    deps = by_kind.get("Deployment", [])
    need(deps, "manifests", "no Deployment")
    cms = {d["metadata"]["name"]: d.get("data") or {} for _, d in by_kind.get("ConfigMap", [])}
    for where, d in deps:
        spec = d["spec"]
        tmpl = spec["template"]
        pod = tmpl.get("spec") or {}
        labels = (tmpl.get("metadata") or {}).get("labels") or {}
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        need(sel and all(labels.get(k) == v for k, v in sel.items()), where,
             "selector.matchLabels must match the pod template labels")
        psc = pod.get("securityContext") or {}
        need(pod.get("automountServiceAccountToken") is False, where,
             "automountServiceAccountToken should be false (uflowd never calls the API)")
        env = {}
        vols = {v["name"]: v for v in pod.get("volumes") or []}
        for c in pod.get("containers") or []:
            cw = "%s container %s" % (where, c.get("name"))
            sc = c.get("securityContext") or {}
            need(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, cw, "runAsNonRoot must be true")
            need(sc.get("runAsUser", psc.get("runAsUser")) == 10001, cw, "runAsUser must be 10001")
            need(sc.get("allowPrivilegeEscalation") is False, cw, "allowPrivilegeEscalation must be false")
            need((sc.get("capabilities") or {}).get("drop") == ["ALL"] and
                 not (sc.get("capabilities") or {}).get("add"), cw, "capabilities must drop ALL and add none")
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            need(seccomp == "RuntimeDefault", cw, "seccompProfile must be RuntimeDefault")
            need(sc.get("readOnlyRootFilesystem") is True, cw, "readOnlyRootFilesystem must be true")
            need(not sc.get("privileged"), cw, "must not be privileged")
            res = c.get("resources") or {}
            lim, req = res.get("limits") or {}, res.get("requests") or {}
            for r in ("cpu", "memory"):
                need(r in lim and str(req.get(r, lim.get(r))) == str(lim[r]), cw,
                     "resources: %s request must equal its limit (Guaranteed QoS)" % r)
            ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
            for probe, path in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"),
                                ("livenessProbe", "/healthz")):
                hg = (c.get(probe) or {}).get("httpGet") or {}
                need(hg.get("path") == path, cw, "%s must GET %s" % (probe, path))
                port = hg.get("port")
                need(isinstance(port, int) or port in ports, cw, "%s port %r is not a container port" % (probe, port))
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}
            tmp = mounts.get("/tmp")
            need(tmp and "emptyDir" in vols.get(tmp["name"], {}), cw, "/tmp must be an emptyDir")
            mdl = mounts.get("/models")
            need(mdl and mdl.get("readOnly") is True, cw, "/models must be mounted readOnly")
            for m in mounts.values():
                need(m["name"] in vols, cw, "volumeMount %s has no volume" % m["name"])
            for ef in c.get("envFrom") or []:
                ref = (ef.get("configMapRef") or {}).get("name")
                if ref:
                    need(ref in cms, cw, "envFrom ConfigMap %r is not in the manifests" % ref)
                    env.update(cms.get(ref, {}))
            for e in c.get("env") or []:
                if "value" in e:
                    env[e["name"]] = e["value"]
            try:
                w = int(env.get("UFLOWD_WORKERS", 2))
                t = int(env.get("UFLOWD_THREADS_PER_WORKER", 1))
                cpu = cpu_cores(lim.get("cpu", 0))
                need(w * t <= cpu, cw, "UFLOWD_WORKERS x UFLOWD_THREADS_PER_WORKER = %d > CPU limit %s" % (w * t, lim.get("cpu")))
            except ValueError as e:
                need(False, cw, "workers/threads/cpu: %s" % e)
            drain = int(env.get("UFLOWD_DRAIN_TIMEOUT", 20))
            pre = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command") or []
            pre_s = int(pre[1]) if len(pre) == 2 and pre[0] == "sleep" and str(pre[1]).isdigit() else 0
            grace = pod.get("terminationGracePeriodSeconds", 30)
            need(grace > drain + pre_s, cw, "terminationGracePeriodSeconds %s must exceed preStop %d s + drain %d s"
                 % (grace, pre_s, drain))
        for v in vols.values():
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                need(claim in names("PersistentVolumeClaim"), where, "PVC %r is not in the manifests" % claim)
        for kind in ("Service", "PodDisruptionBudget"):
            for w2, o in by_kind.get(kind, []):
                s = o["spec"].get("selector") or {}
                s = s.get("matchLabels", s) if kind == "PodDisruptionBudget" else s
                need(s and all(labels.get(k) == v for k, v in s.items()), w2,
                     "selector %r does not select the Deployment's pods" % s)
                if kind == "Service":
                    cports = {p.get("name") for c in pod.get("containers") or [] for p in c.get("ports") or []}
                    cnums = {p.get("containerPort") for c in pod.get("containers") or [] for p in c.get("ports") or []}
                    for p in o["spec"].get("ports") or []:
                        tp = p.get("targetPort", p.get("port"))
                        need(tp in cports or tp in cnums, w2, "targetPort %r is not a container port" % tp)
    for where, h in by_kind.get("HorizontalPodAutoscaler", []):
        ref = h["spec"]["scaleTargetRef"]
        need(ref.get("kind") == "Deployment" and ref.get("name") in names("Deployment"), where,
             "scaleTargetRef must name the Deployment")
        mets = h["spec"].get("metrics") or []
        need(any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu" for m in mets), where,
             "needs a Resource cpu metric")
        need(any(m.get("type") == "Pods" and m["pods"]["metric"]["name"] == "uflowd_queue_depth" for m in mets),
             where, "needs a Pods metric uflowd_queue_depth")
    need(by_kind.get("PodDisruptionBudget"), "manifests", "no PodDisruptionBudget")
    need(by_kind.get("Service"), "manifests", "no Service")
    need(by_kind.get("HorizontalPodAutoscaler"), "manifests", "no HorizontalPodAutoscaler")

    if kustomization is not None:
        path, k = kustomization
        for key in k:
            need(key in KUSTOMIZATION_FIELDS, path, "unknown kustomization field %r" % key)
        need(k.get("apiVersion") == "kustomize.config.k8s.io/v1beta1", path, "apiVersion must be kustomize.config.k8s.io/v1beta1")
        res = k.get("resources") or []
        base = os.path.dirname(path)
        for r in res:
            need(os.path.exists(os.path.join(base, r)), path, "resource %r does not exist" % r)
        for f in files:
            if os.path.abspath(f) != os.path.abspath(path):
                need(os.path.relpath(f, base) in res, path, "%s is not listed in resources" % os.path.relpath(f, base))
    else:
        need(False, "manifests", "no kustomization.yaml")


def main(argv):
    use_policy = "--no-policy" not in argv
    paths = [a for a in argv if a != "--no-policy"]
    if not paths:
        print(__doc__)
        return 2
    errs, objs, files, kustomization = [], [], [], None
    for p in paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith((".yaml", ".yml")))
        else:
            files.append(p)
    for f in files:
        docs = load_docs(f, errs)
        for d in docs:
            if isinstance(d, dict) and d.get("kind") == "Kustomization" or os.path.basename(f) == "kustomization.yaml":
                kustomization = (f, d)
        objs += validate_schema(f, docs, errs)
    if use_policy and not errs:
        policy(objs, kustomization, files, errs)
    for e in errs:
        print("error %s" % e)
    print("%d documents in %d files: %s" % (len(objs), len(files), "%d errors" % len(errs) if errs else "valid"))
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
