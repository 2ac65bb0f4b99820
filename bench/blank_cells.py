#!/usr/bin/env python3
"""Blank each cell of COLUMNS with probability SHARE (seeded): SRC.csv -> DST.csv.

Usage: blank_cells.py SRC.csv DST.csv COL,COL,COL SHARE SEED"""
import csv, random, sys
src, dst, cols, share, seed = sys.argv[1], sys.argv[2], sys.argv[3].split(","), float(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
with open(src, newline="") as f, open(dst, "w", newline="") as g:
    r = csv.reader(f); w = csv.writer(g, lineterminator="\n")
    header = next(r); w.writerow(header); at = [header.index(c) for c in cols]
    for row in r:
        for i in at:
            if rng.random() < share: row[i] = ""
        w.writerow(row)
