#!/usr/bin/env python3
"""Draws the crate's module imports and fails if one runs up a layer.

Layers, bottom up: the root (allocator, accounting, ffi, sync, lib.rs's
re-exports excepted), runtime/, pacing/. A module may import from its own
layer and the ones below; doc comments and doc links are not imports.
Prints one line per edge between modules (`a -> b`), then the verdict.
"""
import pathlib
import re
import sys

LAYERS = {"root": 0, "runtime": 1, "pacing": 2}
SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def layer_of_file(path):
    rel = path.relative_to(SRC).parts
    return rel[0] if rel[0] in LAYERS else "root"


def module_of_file(path):
    rel = path.relative_to(SRC).with_suffix("")
    parts = [p for p in rel.parts if p != "mod"]
    return "::".join(parts) or "lib"


def imports(text):
    """`crate::x::y` paths used in code (not in comments)."""
    for line in text.splitlines():
        code = line.split("//", 1)[0]
        for m in re.finditer(r"crate::([A-Za-z_]+(?:::[a-z_]+)?)", code):
            yield m.group(1)


def facade():
    """Names lib.rs re-exports, mapped to the layer they come from."""
    names = {}
    text = (SRC / "lib.rs").read_text()
    for m in re.finditer(r"pub use ([a-z_]+)(?:::[a-z_:]+)?::(?:\{([^}]*)\}|([A-Za-z_]+));", text):
        layer = m.group(1) if m.group(1) in LAYERS else "root"
        for name in (m.group(2) or m.group(3)).split(","):
            names[name.strip()] = layer
    return names


FACADE = None


def layer_of_path(path):
    head = path.split("::")[0]
    if head in LAYERS:
        return head
    return FACADE.get(head, "root")


def main():
    global FACADE
    FACADE = facade()
    edges, bad = set(), []
    for f in sorted(SRC.rglob("*.rs")):
        if f.name == "lib.rs":
            continue  # the façade re-exports every layer
        src_layer = layer_of_file(f)
        for target in imports(f.read_text()):
            dst_layer = layer_of_path(target)
            edges.add((module_of_file(f), target))
            if LAYERS[dst_layer] > LAYERS[src_layer]:
                bad.append(f"{f.relative_to(SRC.parent)} ({src_layer}) imports crate::{target} ({dst_layer})")
    for a, b in sorted(edges):
        print(f"{a} -> {b}")
    if bad:
        print("\nimports that run up a layer:", *bad, sep="\n  ")
        sys.exit(1)
    print(f"\n{len(edges)} imports, none runs up a layer (root < runtime < pacing)")


if __name__ == "__main__":
    main()
