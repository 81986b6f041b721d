#!/usr/bin/env python3
"""Validate recorded uflowd answers against api/openapi.yaml.

usage: openapi_check.py SPEC RECORDS

RECORDS holds one JSON object per line, {"method", "path", "status", "content_type", "body"}
(tests/server_harness.c writes them while the test_server_* programs run). Each answer must be documented:
its path and method (a wrong method must be a documented-shape 405; an unknown path a 404
error), its status code, its media type; JSON bodies must validate against the schema
(JSON Schema 2020-12, which OpenAPI 3.1 uses), with every $ref resolved inside SPEC.

Needs PyYAML and jsonschema (Debian: python3-yaml, python3-jsonschema; scripts/deps.sh
installs them). Exit status: 0 all valid, 1 some answer does not match, 77 the modules are
missing (the caller then skips).
"""
import json
import re
import sys

try:
    import yaml
    import jsonschema
except ImportError as e:  # pragma: no cover
    print(f"openapi_check: {e}; skipping (install python3-yaml python3-jsonschema)")
    sys.exit(77)


def esc(token):
    return str(token).replace("~", "~0").replace("/", "~1")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    if not str(spec.get("openapi", "")).startswith("3.1"):
        print("openapi_check: not an OpenAPI 3.1 document")
        return 1
    validator_cls = jsonschema.Draft202012Validator
    validator_cls.check_schema({"$ref": "#/x", "x": {}})  # the class works at all

    # path templates -> regex; literal segments win over parameters (/v1/models/reload)
    templates = []
    for tpl in spec["paths"]:
        rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(tpl)) + "$"
        templates.append((tpl.count("{"), tpl, re.compile(rx)))
    templates.sort(key=lambda t: (t[0], t[1]))

    def resolve(node, pointer):
        """Follow $ref objects (responses are often references); returns (node, pointer)."""
        for _ in range(16):
            if not isinstance(node, dict) or "$ref" not in node or len(node) != 1:
                return node, pointer
            pointer = node["$ref"]
            node = spec
            for tok in pointer.lstrip("#/").split("/"):
                node = node[tok.replace("~1", "/").replace("~0", "~")]
        raise ValueError(f"$ref loop at {pointer}")

    validators = {}

    def validate(pointer, value):
        if pointer not in validators:
            root = dict(spec)
            root["$ref"] = pointer  # resolves every nested $ref against the whole document
            validators[pointer] = validator_cls(root)
        return sorted(validators[pointer].iter_errors(value), key=lambda e: list(e.absolute_path))

    errors, seen, n = [], {}, 0
    with open(sys.argv[2], encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    for rec in records:
        n += 1
        method, status = rec["method"].lower(), str(rec["status"])
        path = rec["path"].split("?", 1)[0]
        where = f"{rec['method']} {rec['path'][:80]} -> {status}"
        tpl = next((t for _, t, rx in templates if rx.match(path)), None)
        if tpl is None:
            # unknown paths: the v1 error shape, 404 (or 401 before the path is revealed)
            if status not in ("404", "401"):
                errors.append(f"{where}: undocumented path")
                continue
            schema_ptr = "#/components/schemas/Error"
            op_key = "(unknown path)"
        else:
            item = spec["paths"][tpl]
            op = item.get(method)
            base = f"#/paths/{esc(tpl)}/{method}"
            if op is None:
                if status not in ("405", "401"):
                    errors.append(f"{where}: method not documented for {tpl}")
                    continue
                v2 = tpl.startswith("/v2")
                schema_ptr = "#/components/schemas/" + ("V2Error" if v2 else "Error")
                op_key = f"{method.upper()} {tpl} (wrong method)"
            else:
                op_key = f"{method.upper()} {tpl}"
                responses = op.get("responses", {})
                if status in responses:
                    resp_node, resp_ptr = resolve(responses[status], f"{base}/responses/{esc(status)}")
                elif "default" in responses:
                    resp_node, resp_ptr = resolve(responses["default"], f"{base}/responses/default")
                else:
                    errors.append(f"{where}: status {status} not documented for {op_key}")
                    continue
                content = resp_node.get("content", {})
                ctype = rec["content_type"].split(";", 1)[0].strip().lower()
                media = next((m for m in content if m.lower() == ctype), None)
                if media is None:
                    errors.append(f"{where}: content type '{ctype}' not documented ({', '.join(content)})")
                    continue
                if ctype != "application/json":
                    seen[op_key + " " + status] = seen.get(op_key + " " + status, 0) + 1
                    continue
                schema_ptr = f"{resp_ptr}/content/{esc(media)}/schema"
        try:
            body = json.loads(rec["body"])
        except ValueError as e:
            errors.append(f"{where}: body is not JSON ({e})")
            continue
        errs = validate(schema_ptr, body)
        if errs:
            e = errs[0]
            loc = "/".join(str(p) for p in e.absolute_path)
            errors.append(f"{where}: {len(errs)} schema error(s), first at '{loc}': {e.message[:200]}")
            continue
        seen[op_key + " " + status] = seen.get(op_key + " " + status, 0) + 1

    for k in sorted(seen):
        print(f"  ok {seen[k]:4d}  {k}")
    documented = {f"{m.upper()} {t}" for t, item in spec["paths"].items() for m in item if m in
                  ("get", "post", "put", "delete", "patch", "head")}
    hit = {k.rsplit(" ", 1)[0] for k in seen}
    missing = sorted(documented - hit)
    print(f"openapi_check: {n} answers, {n - len(errors)} valid, {len(errors)} invalid; "
          f"{len(documented) - len(missing)}/{len(documented)} documented operations seen")
    if missing:
        print("  not exercised: " + ", ".join(missing))
    for e in errors[:30]:
        print("  INVALID " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
