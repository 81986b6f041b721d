#!/usr/bin/python3
"""Print this machine's Debian bookworm apt sources.

  apt_sources.py mirror    the URI serving the suite "bookworm" (what debootstrap needs)
  apt_sources.py list      a one-line-style sources.list with every bookworm* suite
                           (bookworm, -updates, -security) from the machine's Debian entries

Reads /etc/apt/sources.list, /etc/apt/sources.list.d/*.list and *.sources (deb822). Only
entries of Type "deb" whose suite is bookworm or bookworm-* are kept, so third-party
repositories (nodistro, cloud-sdk-bookworm, ...) are left out. UFLOW_DEBIAN_MIRROR
overrides the main mirror.
"""
import glob
import os
import sys


def one_line(path):
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        parts = line.split()[1:]
        if parts and parts[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while parts and not parts[0].endswith("]"):
                parts.pop(0)
            parts.pop(0)
        if len(parts) >= 3:
            yield parts[0], parts[1], parts[2:]


def deb822(path):
    stanza = {}
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n") + [""]
    for line in lines:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza and "deb" in stanza.get("types", "").split() and \
               stanza.get("enabled", "yes").lower() != "no":
                for uri in stanza.get("uris", "").split():
                    for suite in stanza.get("suites", "").split():
                        yield uri, suite, stanza.get("components", "main").split()
            stanza = {}
            continue
        if line[0] in " \t":
            continue  # continuation lines (Signed-By blocks)
        key, _, value = line.partition(":")
        stanza[key.strip().lower()] = value.strip()


def entries():
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    for f in files:
        if os.path.exists(f):
            yield from one_line(f)
    for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        yield from deb822(f)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "list"
    seen, out = set(), []
    for uri, suite, comps in entries():
        if suite != "bookworm" and not suite.startswith("bookworm-"):
            continue
        if suite.startswith("bookworm-backports"):
            continue
        key = (uri.rstrip("/"), suite)
        if key not in seen:
            seen.add(key)
            out.append((uri.rstrip("/"), suite))
    override = os.environ.get("UFLOW_DEBIAN_MIRROR")
    main_uri = override or next((u for u, s in out if s == "bookworm"), None)
    if not main_uri:
        sys.exit("no Debian bookworm entry in the apt sources (set UFLOW_DEBIAN_MIRROR)")
    if mode == "mirror":
        print(main_uri)
        return
    if override:
        out = [(override if s in ("bookworm", "bookworm-updates") else u, s) for u, s in out]
    for uri, suite in out:
        print(f"deb {uri} {suite} main")


if __name__ == "__main__":
    main()
