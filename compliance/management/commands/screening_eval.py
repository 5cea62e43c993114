"""Measure the sanctions matcher on the labelled benchmarks, beside a plain Jaro-Winkler baseline."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from compliance.screening import Screener, compare, threshold_for
from compliance.screening import evaluation as ev
from compliance.screening.baseline import BaselineScreener, pair_score
from compliance.screening.weights import REFERENCE_PATH, write_reference

DEFAULT_THRESHOLDS = "0.6,0.65,0.7,0.75,0.8,0.85,0.9"


class Command(BaseCommand):
    help = (
        "Evaluate sanctions name matching on the benchmarks in --data (name pairs, UN positives, "
        "negatives, OFAC portal scores) for each threshold, beside a token-sorted Jaro-Winkler baseline."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--data",
            type=Path,
            help="The sanctions data folder (benchmarks/, ofac/, un/). Default: <project>/../shared/data/sanctions.",
        )
        parser.add_argument("--thresholds", default=DEFAULT_THRESHOLDS, help=f"Default: {DEFAULT_THRESHOLDS}.")
        parser.add_argument(
            "--limit-negatives", type=int, default=None, help="Screen only the first N negatives (default: all)."
        )
        parser.add_argument(
            "--baseline-negatives",
            type=int,
            default=5000,
            help="Negatives screened by the baseline, which scans every name (about 3 ms each). Default: 5000.",
        )
        parser.add_argument(
            "--write-token-frequencies",
            action="store_true",
            help="Rewrite compliance/screening/data/token_frequencies.json from the lists in --data, then stop.",
        )

    def handle(
        self,
        *args,
        data=None,
        thresholds="",
        limit_negatives=None,
        baseline_negatives=5000,
        write_token_frequencies=False,
        **options,
    ):
        sanctions = Path(data) if data else ev.default_data_dir(Path(settings.BASE_DIR))
        if sanctions.name == "benchmarks":
            sanctions = sanctions.parent
        benchmarks = sanctions / "benchmarks"
        if not benchmarks.is_dir():
            raise CommandError(f"No benchmarks folder at {benchmarks}; give --data DIR.")
        try:
            levels = sorted({float(value) for value in thresholds.split(",") if value.strip()})
        except ValueError:
            raise CommandError(f"--thresholds must be numbers separated by commas, not {thresholds!r}.") from None
        if not levels or not all(0 < level <= 1 for level in levels):
            raise CommandError("--thresholds must be between 0 and 1.")
        if limit_negatives is not None and limit_negatives < 1:
            raise CommandError("--limit-negatives must be at least 1.")
        write = self.stdout.write

        started = time.perf_counter()
        entities = ev.load_lists(sanctions)
        if write_token_frequencies:
            write_reference(listed.name for entity in entities for listed in entity.names)
            write(f"Wrote {REFERENCE_PATH} from {len(entities):,} entities.")
            return
        parsed = time.perf_counter()
        screener = Screener.build(entities)
        built = time.perf_counter()
        baseline = BaselineScreener(entities)
        write(
            f"Lists: {len(entities):,} entities, {screener.name_count:,} names; parsed in {parsed - started:.1f} s, "
            f"index built in {built - parsed:.1f} s."
        )

        # Name pairs.
        pairs = ev.load_name_pairs(benchmarks / "name-pairs.csv")
        ours = ev.score_pairs(pairs)
        plain = ev.score_pairs_baseline(pairs)
        write(f"\nName pairs ({len(pairs)}: {sum(p.is_match for p in pairs)} match, pairwise name score)")
        write(f"{'threshold':>9}  {'ours P / R / F1':>22}  {'baseline P / R / F1':>22}")
        for level in levels:
            mine_quality, theirs = ev.quality(ours, level), ev.quality(plain, level)
            write(
                f"{level:>9.2f}  {mine_quality.precision:6.3f} {mine_quality.recall:6.3f} {mine_quality.f1:6.3f}   "
                f"{theirs.precision:6.3f} {theirs.recall:6.3f} {theirs.f1:6.3f}"
            )
        best_ours = max((ev.quality(ours, t / 100) for t in range(50, 100)), key=lambda q: q.f1)
        best_plain = max((ev.quality(plain, t / 100) for t in range(50, 100)), key=lambda q: q.f1)
        write(
            f"best F1: ours {best_ours.f1:.3f} at {best_ours.threshold:.2f}; "
            f"baseline {best_plain.f1:.3f} at {best_plain.threshold:.2f}"
        )
        configured_pairs = threshold_for("ofac_sdn", "individual")
        for half, label in ((0, "tuning half"), (1, "check half")):
            half_scores = [score for score, pair in zip(ours, pairs, strict=True) if pair.half == half]
            half_quality = ev.quality(half_scores, configured_pairs)
            write(
                f"{label} ({len(half_scores)} pairs, fixed hash of the row): F1 {half_quality.f1:.3f} "
                f"(P {half_quality.precision:.3f} / R {half_quality.recall:.3f}) at {configured_pairs:.2f}"
            )

        # Positives: people on the UN list, with date of birth and nationality.
        floor = min(*levels, threshold_for("ofac_sdn", "individual"))
        positives = ev.load_people(benchmarks / "positives-un.csv")
        expected = ev.expected_keys(entities, positives, "un")
        present = [i for i, keys in enumerate(expected) if keys]
        absent = [positives[i].name for i, keys in enumerate(expected) if not keys]
        scores = ev.expected_scores(
            screener, positives, expected, floor=floor, progress=lambda items: tqdm(items, desc="positives")
        )
        present_scores = [scores[i] for i in present]
        plain_positive = ev.baseline_best_scores(
            baseline,
            [positives[i] for i in present],
            source="un",
            progress=lambda i: tqdm(i, desc="positives, baseline"),
        )
        write(
            f"\nUN positives: {len(positives)} rows; {len(present)} are on this UN publication "
            f"(every name token on one entry); not on it: {', '.join(absent) or 'none'}"
        )
        write(f"{'threshold':>9}  {'ours found':>14}  {'baseline found':>14}")
        for level in levels:
            found = sum(1 for score in present_scores if score >= level)
            found_plain = sum(1 for score in plain_positive if score >= level)
            write(f"{level:>9.2f}  {found:>6}/{len(present):<7}  {found_plain:>6}/{len(present):<7}")
        missed = [positives[i].name for i in present if scores[i] < floor]
        if missed:
            write(f"not found even at {floor:.2f}: {', '.join(missed)}")

        # Negatives: nobody here is on a list.
        negatives = ev.load_people(benchmarks / "negatives-us.csv", limit_negatives)
        negative_started = time.perf_counter()
        negative_scores = ev.best_scores(
            screener, negatives, floor=floor, progress=lambda items: tqdm(items, desc="negatives")
        )
        negative_seconds = time.perf_counter() - negative_started
        plain_negatives = negatives[: max(0, baseline_negatives)]
        plain_negative_scores = ev.baseline_best_scores(
            baseline, plain_negatives, progress=lambda items: tqdm(items, desc="negatives, baseline")
        )
        write(
            f"\nNegatives: ours on {len(negatives):,} people "
            f"({1000 * negative_seconds / max(1, len(negatives)):.2f} ms each), "
            f"baseline on the first {len(plain_negatives):,}; share of people with an alert"
        )
        write(f"{'threshold':>9}  {'ours':>16}  {'baseline':>16}")
        for level in levels:
            ours_count = sum(score >= level for score in negative_scores)
            plain_count = sum(score >= level for score in plain_negative_scores)
            write(
                f"{level:>9.2f}  {ev.rate(negative_scores, level):>9.4%} ({ours_count:>4})"
                f"  {ev.rate(plain_negative_scores, level):>9.4%} ({plain_count:>4})"
            )

        # The operating points: the highest threshold at which every present positive is found.
        point = ev.highest_threshold_finding_all(present_scores, levels)
        plain_point = ev.highest_threshold_finding_all(plain_positive, levels)
        write("\nOperating point (highest of --thresholds finding every UN positive on the list):")
        for label, at, negative in (("ours", point, negative_scores), ("baseline", plain_point, plain_negative_scores)):
            if at is None:
                write(f"  {label}: no threshold given finds every positive")
            else:
                write(
                    f"  {label} {at:.2f}: false alerts on {ev.rate(negative, at):.4%} of negatives "
                    f"({sum(s >= at for s in negative)} of {len(negative):,})"
                )
        configured = threshold_for("ofac_sdn", "individual")
        write(
            f"At the configured threshold {configured:.2f}: name pairs F1 {ev.quality(ours, configured).f1:.3f}, "
            f"UN positives found {sum(s >= configured for s in present_scores)}/{len(present)}, false alerts on "
            f"{ev.rate(negative_scores, configured):.4%} of negatives"
        )

        # OFAC's own search scores beside ours.
        portal = benchmarks / "ofac-portal-scores.csv"
        if portal.exists():
            import csv

            with portal.open(newline="", encoding="utf-8") as file:
                rows = list(csv.DictReader(file))
            write(f"\nOFAC portal scores ({len(rows)} pairs): query | list name | OFAC | ours | baseline")
            for row in rows:
                mine = compare(row["query_name"], row["result_name"]).score
                write(
                    f"  {row['query_name'][:28]:<28} | {row['result_name'][:40]:<40} | {int(row['ofac_score']):>3} | "
                    f"{100 * mine:>5.1f} | {100 * pair_score(row['query_name'], row['result_name']):>5.1f}"
                )
