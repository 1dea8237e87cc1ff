#!/usr/bin/python3
"""check_k8s.py: sanity checks of the Kubernetes manifests in deploy/k8s (no cluster needed).

Usage: tests/deploy/check_k8s.py [K8S_DIR [CONFIGURATION_MD]]

Parses every manifest with PyYAML and checks what a typo would silently break in a cluster:
  - every file kustomization.yaml lists exists and parses; every *.yaml in the directory is listed
    (job-migrate.yaml excepted: it is applied by hand);
  - every key of the ConfigMap's redress.conf is documented in docs/configuration.md, and every
    REDRESS_* variable a container sets names a documented key;
  - every Deployment: selector matches its pod labels; every container has readiness and liveness
    probes on a port it declares, resource requests and limits, runs as non-root without privilege
    escalation; the Prometheus annotations name its http port; the config is mounted where the
    command reads it; referenced ConfigMaps and Secrets exist;
  - container ports equal the ports in the config: <service>.http_port (with http_bind 0.0.0.0),
    and the port of each *_bind / bind endpoint (bound on every interface);
  - every endpoint a service connects to (tcp://NAME:PORT) is a Service exposing PORT whose
    selector matches a Deployment declaring that port;
  - every Service's selector matches a Deployment and its target ports exist there;
  - the HorizontalPodAutoscaler scales an existing Deployment (the classifier); every Deployment
    has a PodDisruptionBudget matching it.
Prints one line per problem and exits 1 if there is any, else prints a summary and exits 0.
"""
import os
import re
import sys

import yaml

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
k8s = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "deploy", "k8s")
confdoc = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "docs", "configuration.md")
SERVICES = ["intake", "classifier", "dispatcher", "escalation", "reporting"]
UNLISTED_OK = {"job-migrate.yaml"}

problems = []


def bad(msg):
    problems.append(msg)
    print("check_k8s: " + msg)


def load_all(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        bad(f"{os.path.basename(path)}: does not parse: {e}")
        return []


# ---- the documented configuration keys --------------------------------------------------------
def documented_keys(path):
    """`section.key` tokens of docs/configuration.md; short `key` tokens on a line inherit the
    section of the first dotted token on that line (`dispatcher.a` / `b` documents dispatcher.b)."""
    keys = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            toks = re.findall(r"`([a-z0-9_.]+)`", line)
            section = None
            for t in toks:
                if "." in t:
                    keys.add(t)
                    section = section or t.split(".")[0]
            for t in toks:
                if "." not in t and section:
                    keys.add(section + "." + t)
    return keys


def parse_conf(text):
    """redress.conf: [section] headers, key = value lines, # comments (as common/rd_config.c)."""
    out, section = {}, ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^\[([A-Za-z0-9_]+)\]$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^([A-Za-z0-9_]+)\s*=\s*(.*)$", line)
        if not m:
            bad(f"redress.conf line {n}: not 'key = value': {raw!r}")
            continue
        value = re.sub(r"\s+#.*$", "", m.group(2)).strip().strip('"')
        key = f"{section}.{m.group(1)}" if section else m.group(1)
        if key in out:
            bad(f"redress.conf: {key} set twice")
        out[key] = value
    return out


def endpoint_port(ep):
    m = re.match(r"^tcp://([^:/]+):(\d+)$", ep.strip())
    return (m.group(1), int(m.group(2))) if m else (None, None)


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# ---- load --------------------------------------------------------------------------------------
kpath = os.path.join(k8s, "kustomization.yaml")
kust = (load_all(kpath) or [{}])[0]
listed = kust.get("resources", []) or []
docs = []
for name in listed:
    p = os.path.join(k8s, name)
    if not os.path.isfile(p):
        bad(f"kustomization.yaml lists {name}, which does not exist")
        continue
    for d in load_all(p):
        if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
            bad(f"{name}: a document without kind/apiVersion")
            continue
        d["_file"] = name
        docs.append(d)
for name in sorted(os.listdir(k8s)):
    if name.endswith((".yaml", ".yml")) and name != "kustomization.yaml" and name not in listed:
        if name in UNLISTED_OK:
            load_all(os.path.join(k8s, name))  # must still parse
        else:
            bad(f"{name} is not listed in kustomization.yaml resources")

by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
names = {(d["kind"], d.get("metadata", {}).get("name")) for d in docs}

ns = [d for d in by_kind.get("Namespace", [])]
if not ns or kust.get("namespace") != ns[0]["metadata"]["name"]:
    bad("kustomization.yaml namespace must equal the Namespace object's name")

# ---- the config file ---------------------------------------------------------------------------
doc_keys = documented_keys(confdoc)
conf = {}
cms = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == "redress-config"]
if not cms or "redress.conf" not in (cms[0].get("data") or {}):
    bad("no ConfigMap redress-config with a redress.conf key")
else:
    conf = parse_conf(cms[0]["data"]["redress.conf"])
    for key in sorted(conf):
        if key not in doc_keys:
            bad(f"ConfigMap redress.conf: key {key} is not documented in docs/configuration.md")

# ---- Deployments -------------------------------------------------------------------------------
deps = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
dep_ports = {}  # deployment name -> {port name: number}
for svc in SERVICES:
    if f"redress-{svc}" not in deps:
        bad(f"no Deployment redress-{svc}")
for dname, d in deps.items():
    where = f"{d['_file']}: Deployment {dname}"
    spec = d.get("spec", {})
    tmpl = spec.get("template", {})
    labels = tmpl.get("metadata", {}).get("labels", {})
    if not matches(spec.get("selector", {}).get("matchLabels"), labels):
        bad(f"{where}: selector does not match the pod labels")
    pod = tmpl.get("spec", {})
    psc = pod.get("securityContext", {})
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for v in volumes.values():
        if "configMap" in v and ("ConfigMap", v["configMap"]["name"]) not in names:
            bad(f"{where}: volume {v['name']} uses ConfigMap {v['configMap']['name']}, which is not defined")
        if "secret" in v and ("Secret", v["secret"]["secretName"]) not in names:
            bad(f"{where}: volume {v['name']} uses Secret {v['secret']['secretName']}, which is not defined")
    ports = {}
    svc = dname.replace("redress-", "", 1)
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        cwhere = f"{where} container {c.get('name')}"
        is_init = c in pod.get("initContainers", [])
        csc = c.get("securityContext", {})
        if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            bad(f"{cwhere}: not runAsNonRoot")
        if csc.get("allowPrivilegeEscalation") is not False:
            bad(f"{cwhere}: allowPrivilegeEscalation must be false")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(part, {}):
                    bad(f"{cwhere}: no resources.{part}.{r}")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                bad(f"{cwhere}: mounts volume {m['name']}, which the pod does not have")
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and ("Secret", ref["name"]) not in names:
                bad(f"{cwhere}: env {e['name']} uses Secret {ref['name']}, which is not defined")
            if e["name"].startswith("REDRESS_"):
                key = e["name"][len("REDRESS_"):].lower()
                if not any(k.replace(".", "_") == key for k in doc_keys):
                    bad(f"{cwhere}: env {e['name']} names no key documented in docs/configuration.md")
        if is_init:
            continue
        cports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        ports.update(cports)
        cmd = c.get("command", []) + c.get("args", [])
        if f"/usr/local/bin/{dname}" not in cmd:
            bad(f"{cwhere}: command does not run /usr/local/bin/{dname}")
        if "--config" in cmd:
            cfg = cmd[cmd.index("--config") + 1]
            if not any(cfg.startswith(m["mountPath"].rstrip("/") + "/") and "configMap" in volumes.get(m["name"], {})
                       for m in c.get("volumeMounts", [])):
                bad(f"{cwhere}: --config {cfg} is not in a mounted ConfigMap")
        for probe in ("readinessProbe", "livenessProbe"):
            pr = c.get(probe)
            if not pr:
                bad(f"{cwhere}: no {probe}")
                continue
            port = (pr.get("httpGet") or pr.get("tcpSocket") or {}).get("port")
            if port is None or (port not in cports and port not in cports.values()):
                bad(f"{cwhere}: {probe} port {port!r} is not a declared container port")
            if "httpGet" in pr and pr["httpGet"].get("path") not in ("/healthz", "/health"):
                bad(f"{cwhere}: {probe} path {pr['httpGet'].get('path')} is not /healthz")
        if svc in SERVICES and conf:
            want = int(conf.get(f"{svc}.http_port", "0"))
            if cports.get("http") != want:
                bad(f"{cwhere}: port http {cports.get('http')} differs from {svc}.http_port {want}")
            if conf.get(f"{svc}.http_bind") != "0.0.0.0":
                bad(f"{cwhere}: {svc}.http_bind must be 0.0.0.0 for the probes to reach it")
            for key, val in conf.items():
                sect, _, k = key.partition(".")
                if sect != svc or not (k == "bind" or k.endswith("_bind")) or k == "http_bind":
                    continue
                host, port = endpoint_port(val)
                pname = "gateway" if k == "bind" else k[: -len("_bind")]
                if host != "*":
                    bad(f"{cwhere}: {key} = {val} must bind tcp://*:PORT in a pod")
                if cports.get(pname) != port:
                    bad(f"{cwhere}: port {pname} {cports.get(pname)} differs from {key} {port}")
    dep_ports[dname] = (labels, ports)
    ann = tmpl.get("metadata", {}).get("annotations", {})
    if ann.get("prometheus.io/scrape") != "true" or str(ann.get("prometheus.io/port")) != str(ports.get("http")):
        bad(f"{where}: prometheus.io/scrape must be \"true\" and prometheus.io/port its http port {ports.get('http')}")

# ---- Services and the endpoints that reach them ------------------------------------------------
svcs = {d["metadata"]["name"]: d for d in by_kind.get("Service", [])}
for sname, s in svcs.items():
    sel = s.get("spec", {}).get("selector", {})
    targets = [dn for dn, (labels, _) in dep_ports.items() if matches(sel, labels)]
    if not targets:
        bad(f"{s['_file']}: Service {sname} selects no Deployment")
    for p in s.get("spec", {}).get("ports", []):
        tp = p.get("targetPort", p["port"])
        for dn in targets:
            dports = dep_ports[dn][1]
            if tp not in dports and tp not in dports.values():
                bad(f"{s['_file']}: Service {sname} port {p['port']} targets {tp!r}, which {dn} does not declare")
            elif dports.get(tp, tp) != p["port"]:
                bad(f"{s['_file']}: Service {sname} port {p['port']} maps to container port {dports.get(tp, tp)}: keep them equal")

for key, val in conf.items():
    if not (key.endswith("_endpoint") or key.endswith(".events_endpoint")):
        continue
    for ep in val.split(","):
        host, port = endpoint_port(ep)
        s = svcs.get(host)
        if s is None:
            bad(f"ConfigMap: {key} connects to {ep.strip()}, but there is no Service {host}")
        elif port not in [p["port"] for p in s["spec"].get("ports", [])]:
            bad(f"ConfigMap: {key} connects to {ep.strip()}, but Service {host} has no port {port}")

# ---- autoscaling and disruption budgets ---------------------------------------------------------
hpas = by_kind.get("HorizontalPodAutoscaler", [])
if not any(h["spec"]["scaleTargetRef"].get("name") == "redress-classifier" for h in hpas):
    bad("no HorizontalPodAutoscaler for redress-classifier")
for h in hpas:
    ref = h["spec"]["scaleTargetRef"]
    if ref.get("kind") != "Deployment" or ref.get("name") not in deps:
        bad(f"{h['_file']}: HPA {h['metadata']['name']} targets {ref}, which is not a Deployment here")
    if not 1 <= h["spec"].get("minReplicas", 1) <= h["spec"]["maxReplicas"]:
        bad(f"{h['_file']}: HPA {h['metadata']['name']}: minReplicas/maxReplicas out of order")
pdbs = by_kind.get("PodDisruptionBudget", [])
for dn, (labels, _) in dep_ports.items():
    if not any(matches(p["spec"].get("selector", {}).get("matchLabels"), labels) for p in pdbs):
        bad(f"Deployment {dn} has no PodDisruptionBudget")

if problems:
    print(f"check_k8s: {len(problems)} problem(s) in {k8s}")
    sys.exit(1)
print(f"check_k8s: ok: {len(docs)} objects in {len(listed)} files; {len(deps)} Deployments, {len(svcs)} Services, "
      f"{len(conf)} config keys documented, {len(hpas)} HPA, {len(pdbs)} PDBs")
