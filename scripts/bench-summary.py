#!/usr/bin/env python3
"""Prints criterion medians from target/criterion and ratios to a baseline.

    scripts/bench-summary.py GROUP [BASELINE]

Reads target/criterion/GROUP/*/**/new/estimates.json. Rows are benchmark
parameters, columns the functions (e.g. gcmalloc, stock-v2.5.2, system);
with BASELINE, each column also gets its ratio to the baseline column.
"""
import json
import pathlib
import sys


def fmt(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def main():
    group = sys.argv[1]
    base = sys.argv[2] if len(sys.argv) > 2 else None
    root = pathlib.Path("target/criterion") / group
    table = {}
    for est in root.glob("**/new/estimates.json"):
        rel = est.parent.parent.relative_to(root).parts
        func, param = rel[0], "/".join(rel[1:]) or "-"
        table.setdefault(param, {})[func] = json.loads(est.read_text())["median"]["point_estimate"]
    funcs = sorted({f for row in table.values() for f in row})
    print(f"{group}: criterion medians" + (f", ratio to {base}" if base else ""))
    print("| case | " + " | ".join(funcs) + " |")
    print("|---" * (len(funcs) + 1) + "|")
    def key(p):
        return (0, int(p)) if p.isdigit() else (1, p)
    for param in sorted(table, key=key):
        row = table[param]
        cells = []
        for f in funcs:
            if f not in row:
                cells.append("")
                continue
            cell = fmt(row[f])
            if base and base in row and f != base:
                cell += f" ({row[f] / row[base]:.3f}x)"
            cells.append(cell)
        print(f"| {param} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
