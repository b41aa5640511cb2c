#!/usr/bin/python3
"""reader_pandas.py - the pandas baseline for bench_reader: reads the same
event log with pandas.read_csv, once with int64 columns and once with
dtype=str, best of N runs each, and prints "name: value" lines.

usage: reader_pandas.py FILE [RUNS]
"""
import sys
import time

import pandas as pd


def best_of(fn, runs):
    best, rows = float("inf"), 0
    for _ in range(runs):
        t0 = time.perf_counter()
        df = fn()
        dt = time.perf_counter() - t0
        rows = len(df)
        del df
        best = min(best, dt)
    return best, rows


def main():
    if len(sys.argv) < 2:
        # bench/run.sh calls every script bare: bench_reader already ran this
        # on its files, in the same invocation, to get the ratio.
        print("reader_pandas: run by bench_reader on its files; usage: reader_pandas.py FILE [RUNS]")
        return 0
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    sep = "," if path.endswith((".csv", ".csv.gz")) else "\t"
    ints = {"session_id": "int64", "item_id": "int64", "timestamp": "int64"}
    t_int, rows = best_of(lambda: pd.read_csv(path, sep=sep, dtype=ints), runs)
    t_str, _ = best_of(lambda: pd.read_csv(path, sep=sep, dtype=str), runs)
    print(f"pandas_version: {pd.__version__}")
    print(f"pandas_rows: {rows}")
    print(f"pandas_int64_best_s: {t_int:.4f}")
    print(f"pandas_int64_rows_per_s: {rows / t_int:.0f}")
    print(f"pandas_str_best_s: {t_str:.4f}")
    print(f"pandas_str_rows_per_s: {rows / t_str:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
