#!/usr/bin/env python3
"""Summarise meson testlog.json files (and --check NAME=STATUS results) as one line "N passed, N failed, N skipped".

A cmocka binary counts as its individual test cases (from its "[  PASSED  ] N test(s)" and
"[  FAILED  ] N test(s)" lines); any other test counts as one. A crashed binary counts as
at least one failure. Exit status 1 if anything failed.
"""
import json
import re
import sys

passed = failed = skipped = 0
args = sys.argv[1:]
paths = []
while args:
    a = args.pop(0)
    if a == "--check":  # --check NAME=STATUS: one extra pass (0) or failure (non-zero)
        name, _, status = args.pop(0).partition("=")
        if status == "0":
            passed += 1
        else:
            failed += 1
            print(f"check failed: {name}")
    else:
        paths.append(a)
for path in paths:
    with open(path) as f:
        for line in f:
            t = json.loads(line)
            res = t.get("result")
            out = (t.get("stdout") or "") + (t.get("stderr") or "")  # cmocka reports on stderr
            if res == "SKIP":
                skipped += 1
                continue
            p = sum(int(n) for n in re.findall(r"\[  PASSED  \] (\d+) test", out))
            fl = sum(int(n) for n in re.findall(r"\[  FAILED  \] (\d+) test", out))
            if p + fl == 0:
                p, fl = (1, 0) if res == "OK" else (0, 1)
            elif res != "OK" and fl == 0:
                fl = 1  # crashed or timed out after its last report
            passed += p
            failed += fl
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed else 0)
