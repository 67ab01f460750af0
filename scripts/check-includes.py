#!/usr/bin/env python3
"""The include rule (docs/architecture.md): which folder of src/ may include
which, and no cycle between the daemon's files. Reads the #include "..."
lines of every file under src/; exits 1 with one line per breach.

  scripts/check-includes.py [--graph]   (--graph prints the module graph)
  scripts/check-includes.py --self-test (a tree with breaches must fail)
"""
import os, re, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")

CORE = ["core/base", "core/config", "core/store", "core/pki", "core/trust", "core/cluster",
        "core/tls", "core/http", "core/client", "core/acme", "core/acmeca"]
SERVER = ["server/base", "server/conn", "server/services", "server/acme", "server/relay",
          "server/ca", "server/app"]
# folder -> the other folders its files may include (a folder may always
# include itself). Lower layers never include higher ones.
ALLOWED = {
    "core/base": [],
    "core/config": ["core/base"],
    "core/store": ["core/base", "core/config"],
    "core/pki": ["core/base", "core/config", "core/store"],
    "core/trust": ["core/base", "core/config", "core/store", "core/pki"],
    "core/cluster": ["core/base", "core/config", "core/store", "core/trust"],
    "core/tls": ["core/base", "core/config", "core/store", "core/pki", "core/trust"],
    "core/http": ["core/base"],
    "core/client": ["core/base", "core/config", "core/store", "core/pki", "core/trust",
                    "core/tls", "core/http"],
    "core/acme": ["core/base", "core/pki", "core/http"],
    "core/acmeca": ["core/base", "core/config", "core/store", "core/pki", "core/acme"],
    "server/base": CORE,
    "server/conn": CORE + ["server/base"],
    "server/services": CORE + ["server/base", "server/conn"],
    "server/acme": CORE + ["server/base", "server/conn"],
    "server/relay": CORE + ["server/base", "server/conn"],
    "server/ca": CORE + ["server/base", "server/conn"],
    "server/app": CORE + SERVER,
    "cli": CORE + SERVER,
}
# folders whose files must not include each other in a circle (a module is
# a .c and its .h); the library's store and its backends may (store.c opens
# an etcd store, store_etcd.c implements store.h)
ACYCLIC = SERVER + [c for c in CORE if c != "core/store"]

INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def check(src, graph=False):
    errors = []
    headers, files = {}, []
    for d, _, names in os.walk(src):
        for n in sorted(names):
            if not n.endswith((".c", ".h")):
                continue
            path = os.path.join(d, n)
            folder = os.path.relpath(d, src)
            files.append((folder, n, path))
            if n.endswith(".h"):
                if n in headers:
                    errors.append(f"src/{folder}/{n}: a second header named {n} (also in "
                                  f"src/{headers[n]}); header names must be unique")
                headers[n] = folder
    for folder, _, _ in files:
        if folder not in ALLOWED:
            errors.append(f"src/{folder}: a folder the include rule does not know; add it to "
                          f"scripts/check-includes.py and docs/architecture.md")
    edges = {}
    for folder, n, path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        mod = (folder, n.rsplit(".", 1)[0])
        for inc in INC.findall(text):
            if inc.startswith("tlsgate/"):
                continue   # the public header: anyone
            if inc not in headers:
                errors.append(f"src/{folder}/{n}: includes \"{inc}\", which is no header under src/")
                continue
            to = headers[inc]
            if to != folder and to not in ALLOWED.get(folder, []):
                errors.append(f"src/{folder}/{n}: includes {inc} from src/{to}, which "
                              f"src/{folder} may not (docs/architecture.md, the include rule)")
            tmod = (to, inc[:-2])
            if tmod != mod:
                edges.setdefault(mod, set()).add(tmod)
    for comp in sccs(edges):
        if len(comp) > 1 and any(m[0] in ACYCLIC for m in comp):
            names = ", ".join(sorted(f"{m[0]}/{m[1]}" for m in comp))
            errors.append(f"a cycle of includes between {names}: break it with an interface "
                          f"or a callback")
    if graph:
        for m in sorted(edges):
            print(f"{m[0]}/{m[1]} -> " + " ".join(sorted(f"{t[0]}/{t[1]}" for t in edges[m])))
    return errors, files


def self_test():
    """A small tree with one breach of each kind: each must be reported."""
    import tempfile
    with tempfile.TemporaryDirectory() as t:
        tree = {"server/conn/conn.c": '#include "conn.h"\n#include "admin.h"\n',
                "server/conn/conn.h": "", "server/app/admin.h": "",
                "server/app/admin.c": '#include "admin.h"\n#include "conn.h"\n',
                "server/relay/pipe.c": '#include "pipe.h"\n#include "proxy.h"\n',
                "server/relay/pipe.h": "",
                "server/relay/proxy.c": '#include "proxy.h"\n#include "pipe.h"\n',
                "server/relay/proxy.h": "", "server/base/dup.h": "", "server/app/dup.h": "",
                "core/base/util.c": '#include "nowhere.h"\n', "server/misc/x.c": ""}
        for path, text in tree.items():
            os.makedirs(os.path.join(t, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(t, path), "w") as f:
                f.write(text)
        errors, _ = check(t)
        want = ["server/conn/conn.c: includes admin.h from src/server/app",
                "a second header named dup.h", "cycle of includes between server/relay/pipe, "
                "server/relay/proxy", "includes \"nowhere.h\"", "src/server/misc: a folder"]
        missed = [w for w in want if not any(w in e for e in errors)]
        for w in missed:
            print(f"self-test: not reported: {w}", file=sys.stderr)
        return 1 if missed else 0


def main():
    if "--self-test" in sys.argv:
        return self_test()
    errors, files = check(SRC, "--graph" in sys.argv)
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        return 1
    print(f"include rule: {len(files)} files in {len({f for f, _, _ in files})} folders, no breach")
    return 0


def sccs(edges):
    """Tarjan's strongly connected components, iteratively."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    nodes = set(edges) | {t for ts in edges.values() for t in ts}
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]; counter[0] += 1
                    stack.append(w); on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop(); on.discard(w); comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


if __name__ == "__main__":
    sys.exit(main())
