"""Sanctions matcher speed and memory, on the OFAC SDN (2023-12-28) and UN lists in ../shared/data.

1. Index build from the parsed entities (time, and resident memory before and after).
2. Single-query latency p50/p95/p99 over realistic queries: negatives-us people and positives-un
   people mixed, each with date of birth and nationality, at the configured threshold.
3. A full rescreen: 100,000 names (the 50,000 negatives, then the same people with surname first
   and one letter changed) through ``Screener.search_many`` in worker processes (fork), names/s.
4. The baseline (best token-sorted Jaro-Winkler over every list name) on a few hundred of the same
   queries, for comparison.

    .venv/bin/python bench/screening.py [--queries 4000] [--rescreen 100000] [--processes 2]

No database is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fintech.settings.test")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def varied(query, number: int):
    """The same person written differently: surname first and one letter changed."""
    parts = query.name.split()
    if len(parts) > 1:
        parts = [parts[-1], *parts[:-1]]
    word = parts[number % len(parts)]
    if len(word) > 3:
        position = 1 + number % (len(word) - 2)
        parts[number % len(parts)] = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    return replace(query, name=" ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=4000, help="single queries timed (default 4000)")
    parser.add_argument("--rescreen", type=int, default=100_000, help="names in the batch rescreen (default 100000)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes of the rescreen (default 2)")
    parser.add_argument("--baseline-queries", type=int, default=300, help="queries timed on the baseline")
    parser.add_argument("--slowest", type=int, default=0, help="print the N slowest single queries")
    arguments = parser.parse_args()

    from compliance.screening import EmptyNameError, Screener, threshold_for
    from compliance.screening import evaluation as ev
    from compliance.screening.baseline import BaselineScreener

    sanctions = ev.default_data_dir(BASE_DIR)
    if not sanctions.is_dir():
        sys.exit(f"No sanctions data at {sanctions}")
    print(f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}")

    started = time.perf_counter()
    entities = ev.load_lists(sanctions)
    parsed = time.perf_counter() - started
    gc.collect()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    screener = Screener.build(entities)
    built = time.perf_counter() - started
    gc.collect()
    rss_after = process.memory_info().rss
    print(f"Lists: {len(entities):,} entities, {screener.name_count:,} names (parsed in {parsed:.2f} s)")
    print(f"Index build: {built:.2f} s; resident memory +{(rss_after - rss_before) / 2**20:.0f} MiB")

    negatives = ev.load_people(sanctions / "benchmarks" / "negatives-us.csv")
    positives = ev.load_people(sanctions / "benchmarks" / "positives-un.csv")
    mixed = []
    for number in range(arguments.queries):
        # About one query in six is a listed person.
        mixed.append(positives[number % len(positives)] if number % 6 == 0 else negatives[number])
    print(f"Threshold: {threshold_for('ofac_sdn', 'individual')}")

    for query in mixed[:200]:  # warm the per-token caches the way a running worker has them
        screener.search(query)
    latencies = []
    slow = []
    hits = 0
    for query in mixed:
        started = time.perf_counter()
        with contextlib.suppress(EmptyNameError):
            hits += bool(screener.search(query))
        latencies.append(1000 * (time.perf_counter() - started))
        slow.append((latencies[-1], screener.last_candidates, query.name))
    print(
        f"Single query ({len(mixed):,}, 1 in 6 listed; {hits} with a hit): "
        f"p50 {percentile(latencies, 0.5):.3f} ms, p95 {percentile(latencies, 0.95):.3f} ms, "
        f"p99 {percentile(latencies, 0.99):.3f} ms, mean {statistics.fmean(latencies):.3f} ms"
    )

    for milliseconds, candidates, name in sorted(slow, reverse=True)[: arguments.slowest]:
        print(f"  {milliseconds:6.2f} ms, {candidates:4} names scored: {name}")

    batch = [negatives[n % len(negatives)] for n in range(min(arguments.rescreen, len(negatives)))]
    batch += [varied(negatives[n % len(negatives)], n) for n in range(max(0, arguments.rescreen - len(batch)))]
    single = batch[:10_000]
    started = time.perf_counter()
    screener.search_many(single)
    one_process = len(single) / (time.perf_counter() - started)
    started = time.perf_counter()
    results = screener.search_many(batch, processes=arguments.processes)
    seconds = time.perf_counter() - started
    print(
        f"Rescreen of {len(batch):,} names, {arguments.processes} processes: {seconds:.1f} s "
        f"({len(batch) / seconds:,.0f} names/s; one process {one_process:,.0f} names/s); "
        f"{sum(bool(r) for r in results)} with a hit"
    )

    if arguments.baseline_queries < 1:
        return
    baseline = BaselineScreener(entities)
    timings = []
    for query in mixed[: arguments.baseline_queries]:
        started = time.perf_counter()
        baseline.best(query.name)
        timings.append(1000 * (time.perf_counter() - started))
    print(
        f"Baseline (token-sorted Jaro-Winkler over every name), {len(timings)} queries: "
        f"p50 {percentile(timings, 0.5):.2f} ms, p99 {percentile(timings, 0.99):.2f} ms"
    )


if __name__ == "__main__":
    main()
