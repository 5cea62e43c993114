"""How much a name token says: rare tokens weigh more than common ones.

A token's weight comes from its document frequency across sanctions-list names (the share of
names that contain it): "mohammed", "al", "trading" or a legal form weigh little, a rare surname
weighs close to 1. The reference frequencies ship with the code (``data/token_frequencies.json``,
derived from the OFAC SDN and UN lists by ``token_document_frequencies``), so a small index — the
entries a list update added — weighs tokens exactly like the full one. A large index adds its own
frequencies for tokens the reference does not know.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from .normalise import LEGAL_FORMS, EmptyNameError, normalise

REFERENCE_PATH = Path(__file__).resolve().parent / "data" / "token_frequencies.json"
LEGAL_FORM_WEIGHT = 0.08  # "ltd" against "plc" hardly matters next to the name itself
MIN_WEIGHT = 0.12
CONNECTORS = frozenset({"bin", "bint", "binti", "ould", "walad"})
LOCAL_INDEX_MIN_NAMES = 5000  # below this an index's own frequencies are too noisy to use
REFERENCE_MIN_DOCUMENT_FREQUENCY = 3
PATRONYMIC_ENDINGS = ("ovich", "evich", "ovych", "evych", "ovna", "evna", "ivna", "ichna", "oglu", "ogly", "kyzy")


def token_document_frequencies(names: Iterable[str]) -> tuple[int, Counter[str]]:
    """(number of names, names containing each token) over normalised names."""
    frequencies: Counter[str] = Counter()
    count = 0
    for name in names:
        try:
            tokens = normalise(name).tokens
        except EmptyNameError:
            continue
        count += 1
        frequencies.update(set(tokens))
    return count, frequencies


def write_reference(names: Iterable[str], path: Path = REFERENCE_PATH) -> None:
    count, frequencies = token_document_frequencies(names)
    kept = {
        token: frequency
        for token, frequency in sorted(frequencies.items())
        if frequency >= REFERENCE_MIN_DOCUMENT_FREQUENCY
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"names": count, "document_frequency": kept}, separators=(",", ":")) + "\n")


@lru_cache(maxsize=1)
def _reference() -> tuple[int, dict[str, int]]:
    if not REFERENCE_PATH.exists():
        return 1, {}
    data = json.loads(REFERENCE_PATH.read_text())
    return int(data["names"]), {str(token): int(value) for token, value in data["document_frequency"].items()}


class TokenWeights:
    """Weight in [MIN_WEIGHT, 1] of a normalised token."""

    def __init__(self, local_count: int = 0, local_frequencies: Counter[str] | None = None) -> None:
        self.reference_count, self.reference = _reference()
        self.local_count = local_count
        self.local = local_frequencies if local_count >= LOCAL_INDEX_MIN_NAMES and local_frequencies else Counter()
        # The rarest possible token (seen once in a list of this size) weighs 1.
        self._scale = math.log(max(self.reference_count, local_count, 1000))
        self._cache: dict[str, float] = {}

    def frequency(self, token: str) -> float:
        share = self.reference.get(token, 0) / self.reference_count
        if self.local:
            share = max(share, self.local.get(token, 0) / self.local_count)
        return share

    def __call__(self, token: str) -> float:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        if token in LEGAL_FORMS:
            weight = LEGAL_FORM_WEIGHT
        elif token in CONNECTORS:
            weight = MIN_WEIGHT  # "bin", "ould": they link name parts and say nothing of who it is
        else:
            share = self.frequency(token)
            idf = 1.0 if share <= 0 else min(1.0, -math.log(share) / self._scale)
            weight = max(MIN_WEIGHT, idf)
            if len(token) == 1:
                weight = min(weight, 0.3)  # an initial narrows little
            elif token.endswith(PATRONYMIC_ENDINGS):
                weight *= 0.5  # a patronymic ("Vladimirovich") is often left out of a customer's name
        if len(self._cache) < 200_000:
            self._cache[token] = weight
        return weight
