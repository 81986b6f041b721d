#!/usr/bin/env python3
"""deploy/grafana/uflowd-dashboard.json and deploy/prometheus/uflowd-alerts.yaml against a
live uflowd: both parse (JSON; YAML via python3-yaml), have the shape Grafana and Prometheus
expect, and every metric their PromQL names exists in the daemon's /metrics answer, with
every label they match or group by, and every literal label value they match on.

usage: monitoring_check.py --uflowd BIN --uflow BIN

The daemon gets a predict, a bad image, a KServe infer and a reload first, so the series
that appear only with traffic are there. `up` is Prometheus' own series, and `job`/`instance`
the labels it adds at scrape time. With `promtool` on PATH the rules also pass `promtool check
rules`. Exit 0 all good, 1 with one line per problem, 77 when python3-yaml is missing.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_daemon as ld  # noqa: E402

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is missing (scripts/deps.sh installs it)")
    sys.exit(77)

DASHBOARD = os.path.join(ld.ROOT, "deploy", "grafana", "uflowd-dashboard.json")
RULES = os.path.join(ld.ROOT, "deploy", "prometheus", "uflowd-alerts.yaml")
PROMETHEUS_SERIES = {"up"}
TARGET_LABELS = {"job", "instance"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan"}
# Aggregation operators may be followed by "by (...)" rather than "(", so they are never names.
KEYWORDS |= {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
             "bottomk", "topk", "quantile"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
problems = []


def problem(msg):
    problems.append(msg)
    if not msg.startswith("self-test: ") or msg.startswith("self-test: the checker"):
        print("FAIL " + msg)


# ---- PromQL, as far as the checks need it -----------------------------------------------
def parse_matchers(text, where):
    out = []
    for m in re.finditer(r'\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?', text):
        out.append((m.group(1), m.group(2), m.group(3)))
    if re.sub(r'\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?', "", text).strip():
        problem(f"{where}: cannot read the label matchers {{{text}}}")
    return out


def promql(expr, where):
    """[(metric, [(label, op, value)])], [grouping labels]; problems for unbalanced brackets."""
    selectors, grouping, stack = [], [], []
    i, n = 0, len(expr)
    last_metric = None
    while i < n:
        c = expr[i]
        if c in "\"'`":
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if expr[j] == "\\" else 1
            if j >= n:
                problem(f"{where}: unterminated string")
                return selectors, grouping
            i = j + 1
            last_metric = None
            continue
        if c == "{":
            j = expr.find("}", i)
            if j < 0:
                problem(f"{where}: unclosed {{")
                return selectors, grouping
            matchers = parse_matchers(expr[i + 1:j], where)
            if last_metric is not None:
                selectors[last_metric][1].extend(matchers)
            else:
                problem(f"{where}: a selector without a metric name")
            i = j + 1
            last_metric = None
            continue
        if c == "[":
            j = expr.find("]", i)
            if j < 0:
                problem(f"{where}: unclosed [")
                return selectors, grouping
            i = j + 1
            continue
        if c in "(":
            stack.append(c)
        elif c == ")":
            if not stack:
                problem(f"{where}: unbalanced )")
                return selectors, grouping
            stack.pop()
        m = re.match(r"[A-Za-z_:][\w:]*", expr[i:])
        if m and not (i and (expr[i - 1].isdigit() or expr[i - 1] == ".")):
            word, j = m.group(0), i + len(m.group(0))
            k = j
            while k < n and expr[k].isspace():
                k += 1
            if word in GROUPING and k < n and expr[k] == "(":
                e = expr.find(")", k)
                grouping += [w.strip() for w in expr[k + 1:e].split(",") if w.strip()]
                i = e + 1
                last_metric = None
                continue
            if word.lower() in KEYWORDS or (k < n and expr[k] == "("):
                last_metric = None
            else:
                selectors.append((word, []))
                last_metric = len(selectors) - 1
                i = j
                continue
            i = j
            continue
        if not c.isspace():
            last_metric = None
        i += 1
    if stack:
        problem(f"{where}: unbalanced (")
    return selectors, grouping


# ---- the scrape ---------------------------------------------------------------------------
def parse_metrics(text):
    """{series name: {label: set(values)}}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+\S+", line)
        if not m:
            continue
        labels = out.setdefault(m.group(1), {})
        for lm in re.finditer(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""):
            labels.setdefault(lm.group(1), set()).add(lm.group(2))
    return out


def scrape(uflowd, uflow, tmp):
    model = os.path.join(tmp, "mon.safetensors")
    ld.run([uflow, "create", "--out", model, "--input-size", "64", "--flow-steps", "2", "--seed", "3"])
    with ld.Daemon(uflowd, ["--model", "mon=" + model, "--workers", "1"], tmp) as d:
        img = open(ld.DEFECT, "rb").read()
        body = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                       "data": [__import__("base64").b64encode(img).decode()]}]}).encode()
        for path, data, ctype, want in (("/v1/models/mon/predict", img, "image/jpeg", 200),
                                        ("/v1/models/mon/predict", b"not an image", "image/jpeg", 400),
                                        ("/v2/models/mon/infer", body, "application/json", 200),
                                        ("/v1/models/reload", b"", "application/json", 200)):
            got = d.post(path, data, ctype)
            if got[0] != want:
                raise SystemExit(f"FAIL traffic: POST {path} answered {got[0]} (want {want}): {got[-1][:300]!r}")
        status, _, text = d.get("/metrics")
        if status != 200:
            raise SystemExit(f"FAIL traffic: GET /metrics answered {status}")
        return parse_metrics(text.decode())


def check_expr(expr, where, series, extra_labels=()):
    selectors, grouping = promql(expr, where)
    if not selectors:
        problem(f"{where}: names no metric: {expr}")
    known_labels = set(TARGET_LABELS) | set(extra_labels) | {"le"}
    for name, matchers in selectors:
        if name in PROMETHEUS_SERIES:
            continue
        if name not in series:
            problem(f"{where}: metric {name} is not in uflowd's /metrics")
            continue
        labels = series[name]
        known_labels |= set(labels)
        for label, op, value in matchers:
            if label in TARGET_LABELS:
                continue
            if label not in labels:
                problem(f"{where}: {name} has no label {label} (it has: {', '.join(sorted(labels)) or 'none'})")
                continue
            words = value.split("|") if op == "=~" else [value] if op == "=" else []
            for w in words:
                if "$" in w or not re.fullmatch(r"[\w.:-]+", w) or re.search(r"\.", w) and op == "=~":
                    continue  # a template variable or a real regex: not a literal value
                if w not in labels[label]:
                    problem(f"{where}: {name}{{{label}=\"{w}\"}} never appears (values: {sorted(labels[label])})")
    for g in grouping:
        if g not in known_labels:
            problem(f"{where}: groups by {g}, a label none of its metrics has")


# ---- the files ------------------------------------------------------------------------------
def check_dashboard(series):
    with open(DASHBOARD) as f:
        d = json.load(f)
    for k in ("title", "uid", "panels", "templating", "schemaVersion"):
        if k not in d:
            problem(f"dashboard: no {k}")
    variables = {v["name"]: v for v in d["templating"]["list"]}
    builtins = {"__rate_interval", "__interval", "__range"}
    ids, n_exprs = set(), 0
    for p in d["panels"]:
        where = f"dashboard panel {p.get('id')} '{p.get('title')}'"
        if p.get("id") in ids:
            problem(f"{where}: duplicate id")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        if not all(k in g for k in "hwxy") or g["x"] + g["w"] > 24:
            problem(f"{where}: gridPos {g} does not fit the 24-column grid")
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problem(f"{where}: the data source must be the $datasource variable")
        if not p.get("targets"):
            problem(f"{where}: no query")
        for t in p.get("targets", []):
            n_exprs += 1
            for var in re.findall(r"\$\{?(\w+)", t["expr"]):
                if var not in variables and var not in builtins:
                    problem(f"{where}: uses ${var}, which the dashboard does not define")
            check_expr(t["expr"], where, series)
    for name, v in variables.items():
        if v["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["query"]["query"])
        if not m:
            problem(f"dashboard variable {name}: not label_values(SELECTOR, LABEL)")
            continue
        check_expr(m.group(1), f"dashboard variable {name}", series)
        metric = re.match(r"[\w:]+", m.group(1)).group(0)
        if m.group(2) not in TARGET_LABELS and m.group(2) not in series.get(metric, {}):
            problem(f"dashboard variable {name}: {metric} has no label {m.group(2)}")
    print(f"ok   dashboard: {len(d['panels'])} panels, {n_exprs} queries, {len(variables)} variables")


def check_rules(series):
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    names = set()
    n = 0
    for g in doc.get("groups", []):
        if not g.get("name") or not g.get("rules"):
            problem("rules: a group without name or rules")
        for r in g.get("rules", []):
            n += 1
            where = f"rule {r.get('alert') or r.get('record')}"
            if not r.get("alert") or r["alert"] in names:
                problem(f"{where}: missing or duplicate alert name")
            names.add(r.get("alert"))
            if "for" in r and not re.fullmatch(r"(\d+[smhdwy])+", str(r["for"])):
                problem(f"{where}: 'for: {r['for']}' is not a duration")
            if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                problem(f"{where}: labels.severity must be critical, warning or info")
            if not r.get("annotations", {}).get("summary"):
                problem(f"{where}: no annotations.summary")
            if not isinstance(r.get("expr"), str):
                problem(f"{where}: no expr")
                continue
            check_expr(r["expr"], where, series)
    print(f"ok   rules: {n} alerts in {len(doc.get('groups', []))} group(s)")
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            problem(f"promtool check rules: {p.stdout}{p.stderr}")
        else:
            print("ok   promtool check rules")
    else:
        print("     (no promtool on PATH: PromQL syntax checked only as far as this script parses it)")


def self_test():
    """The checker must catch what it claims to: a misspelt metric, label and value."""
    fake = {"uflowd_x_total": {"endpoint": {"v1_predict"}}}
    before = len(problems)
    for expr in ('rate(uflowd_y_total[5m])', 'uflowd_x_total{endpnt="v1_predict"}',
                 'uflowd_x_total{endpoint="v1_predcit"}', 'sum by (model) (uflowd_x_total)', 'sum(uflowd_x_total'):
        check_expr(expr, "self-test", fake)
    caught = len(problems) - before
    del problems[before:]
    if caught != 5:
        problem(f"self-test: the checker caught {caught} of 5 planted mistakes")
    else:
        print("ok   self-test: a wrong metric, label, value, grouping label and bracket are all caught")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uflowd", required=True)
    ap.add_argument("--uflow", required=True)
    a = ap.parse_args()
    self_test()
    with tempfile.TemporaryDirectory(prefix="uflow_monitoring_") as tmp:
        series = scrape(a.uflowd, a.uflow, tmp)
    print(f"ok   scraped {len(series)} series names from a live uflowd")
    check_dashboard(series)
    check_rules(series)
    print(f"monitoring_check: {len(problems)} problem(s)" if problems else "monitoring_check: all good")
    return 1 if problems else 0


sys.exit(main())
