#!/usr/bin/env python3
"""Checks the rules of the house (docs/architecture.md) on the source tree; exit 1 on a breach.

1. cli/, server/, bench/ include only their own headers and lib/include/ (the public contract).
2. lib/ never includes server/ or cli/ headers.
3. Layers inside lib/src only point down: core <- kernels <- io <- models <- create/train/eval
   (a folder may include its own headers and any lower layer's, never a higher one's).
4. kernels/ know nothing of models: no kernel includes a models/ header (rule 3 says so too,
   named separately because it is the one most often broken).
5. No include circle between modules (a module = a .c/.h pair, or one file), in lib/ and server/;
   and, given a build directory, no circle of calls between the object files of lib/ and of
   server/ (from `nm`: who defines and who uses each symbol).
6. No source file over MAX_LINES lines (lib/, server/, cli/, tests/, bench/).

Usage: tools/check_layout.py [ROOT [BUILD_DIR]]
(prints one line per breach, then "layout ok" or a count)
"""
import glob
import os
import re
import subprocess
import sys

MAX_LINES = 650
LAYERS = ["core", "kernels", "io", "models", "create", "train", "eval", "interop"]
# create/, train/, eval/ and interop/ sit side by side above models/: none may include another's
# headers.
TOP = {"create", "train", "eval", "interop"}
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(root, sub):
    base = os.path.join(root, sub)
    for d, _, files in os.walk(base):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.join(d, f)


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return INC.findall(f.read())


def resolve(root, path, name):
    """The file an #include "name" in path resolves to, under the build's include rules."""
    rel = os.path.relpath(path, root)
    cands = [os.path.join(os.path.dirname(path), name), os.path.join(root, "lib", "include", name)]
    if rel.startswith("lib" + os.sep) or rel.startswith("tests" + os.sep):
        cands.append(os.path.join(root, "lib", "src", name))
    for c in cands:
        if os.path.isfile(c):
            return os.path.normpath(c)
    return None


def layer_of(root, path):
    rel = os.path.relpath(path, os.path.join(root, "lib", "src"))
    if rel.startswith(".."):
        return None
    return rel.split(os.sep)[0]


def find_cycles(graph):
    cycles, state, stack = [], {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return cycles


def call_graph(objs):
    """file -> set of files it calls into, from the objects' defined/undefined symbols."""
    defs, uses = {}, {}
    for o in objs:
        name = os.path.basename(o).rsplit(".c.o", 1)[0]
        out = subprocess.run(["nm", "--defined-only", "-g", o], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "TDRB":
                defs[parts[2]] = name
        out = subprocess.run(["nm", "-u", o], capture_output=True, text=True).stdout
        uses[name] = {l.split()[-1] for l in out.splitlines() if l.strip()}
    graph = {}
    for n, us in uses.items():
        graph[n] = {defs[u] for u in us if u in defs and defs[u] != n}
    return graph


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    bad = []
    public = os.path.join(root, "lib", "include")
    for sub in ("cli", "server", "bench"):
        for p in sources(root, sub):
            for name in includes(p):
                r = resolve(root, p, name)
                if r is None or not (r.startswith(os.path.join(root, sub) + os.sep) or
                                     r.startswith(public + os.sep)):
                    bad.append(f"{os.path.relpath(p, root)}: includes private header \"{name}\"")
    graph = {}
    for sub in ("lib", "server"):
        for p in sources(root, sub):
            mod = os.path.splitext(os.path.relpath(p, root))[0]
            for name in includes(p):
                r = resolve(root, p, name)
                rel = os.path.relpath(r, root) if r else name
                if sub == "lib" and rel.startswith(("server" + os.sep, "cli" + os.sep)):
                    bad.append(f"{os.path.relpath(p, root)}: lib/ includes {rel}")
                if r is None:
                    continue
                lo, lt = layer_of(root, p), layer_of(root, r)
                if lo and lt and lo != lt:
                    if lo == "kernels" and lt == "models":
                        bad.append(f"{os.path.relpath(p, root)}: a kernel includes {rel}")
                    elif (lt in TOP and lo in TOP) or LAYERS.index(lt) > LAYERS.index(lo):
                        bad.append(f"{os.path.relpath(p, root)}: layer {lo} includes higher "
                                   f"layer {lt} ({rel})")
                tmod = os.path.splitext(rel)[0]
                if tmod != mod:
                    graph.setdefault(mod, set()).add(tmod)
    for c in find_cycles(graph):
        bad.append("include circle: " + " -> ".join(c))
    if len(sys.argv) > 2:
        build = sys.argv[2]
        for pat in ("lib/libuflow.a.p/*.o", "server/*.p/*.o"):
            objs = [o for o in glob.glob(os.path.join(build, pat)) if not o.endswith("_data.c.o")]
            for c in find_cycles(call_graph(objs)) if objs else []:
                bad.append("call circle: " + " -> ".join(c))
    for sub in ("lib", "server", "cli", "tests", "bench", "fuzz"):
        for p in sources(root, sub):
            with open(p, encoding="utf-8", errors="replace") as f:
                n = sum(1 for _ in f)
            if n > MAX_LINES:
                bad.append(f"{os.path.relpath(p, root)}: {n} lines (max {MAX_LINES})")
    for b in bad:
        print(b)
    print("layout ok" if not bad else f"{len(bad)} layout breaches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
