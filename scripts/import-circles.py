#!/usr/bin/env python3
"""Prints the import circles among a crate's modules: each group of two or more files
that reach each other through `crate::`/`super::` paths (a strongly connected
component). A parent module's use of its own children is not counted.
Usage: scripts/import-circles.py [crates/NAME ...]   (default: every crate)

Why: a circle is code that cannot be read, changed or tested alone; docs/ARCHITECTURE.md
names the floors, and this finds a file that reaches up one."""
import os, re, sys

def modules(src):
    """Module path (tuple) -> file, for every .rs file under src."""
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            mods[tuple(rel)] = os.path.join(root, f)
    return mods

def edges(mods, path, module):
    text = open(path).read()
    text = re.sub(r"//[^\n]*", "", text)
    # Test modules inside a file are not part of its import graph.
    cut = re.search(r"#\[cfg\(test\)\]\s*mod tests", text)
    if cut:
        text = text[: cut.start()]
    out = set()
    # crate::a::b::{c, d::e}, super::x, and `mod x;` children (a parent owns them: no edge).
    for m in re.finditer(r"\b(crate|super)((?:::\w+)*)(::\{[^;]*?\})?", text):
        if not m.group(2) and not m.group(3):
            continue
        base = list(module) if m.group(1) == "super" else []
        if m.group(1) == "super":
            is_mod_file = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")
            base = list(module) if is_mod_file else list(module[:-1])
            base = base[:-1] if is_mod_file else base
        parts = base + [p for p in m.group(2).split("::") if p]
        targets = [parts]
        if m.group(3):
            for item in re.split(r",", m.group(3)[3:-1]):
                item = item.strip().split(" as ")[0].strip("{} \n")
                if item:
                    targets.append(parts + [p for p in item.split("::") if p and p not in "{}"])
        for t in targets:
            for n in range(len(t), 0, -1):
                if tuple(t[:n]) in mods:
                    if tuple(t[:n]) != module and tuple(t[:n]) != ():
                        out.add(tuple(t[:n]))
                    break
    # A parent that uses its children's items (`run::engine_for`, `pub use run::Request`)
    # depends on them; declaring `mod run;` alone does not.
    for child in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, re.M):
        if re.search(r"(?<![:\w])" + child + r"::", text) and module + (child,) in mods:
            out.add(module + (child,))
    return out

def sccs(graph):
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            out.append(comp)
    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out

def main():
    crates = sys.argv[1:] or sorted(os.path.join("crates", c) for c in os.listdir("crates"))
    total = 0
    for crate in crates:
        src = os.path.join(crate, "src")
        mods = modules(src)
        # A parent that dispatches to its own children (a registry and its entries, a
        # section reader and its parts) makes no circle with them; a child that uses its
        # parent, or anything else, does.
        graph = {m: {t for t in edges(mods, p, m) if t[:-1] != m} for m, p in mods.items()}
        for comp in sccs(graph):
            if len(comp) > 1:
                total += 1
                files = sorted(os.path.relpath(mods[m], src) for m in comp)
                print(f"{crate}: {len(files)} files: {' '.join(files)}")
    print(f"{total} circle(s)")

main()
