"""Model results cached on disk, keyed by the model's weights hash and each probe's fingerprint: the
reference's, so repeated audits (other concepts, other edits of the same base) are fast, and the
audited model's (and its attacked copies'), so auditing the same checkpoint again is fast too."""

from __future__ import annotations

import json
from pathlib import Path

from filelock import FileLock

from formless.audit.engine import ProbeResult
from formless.models.cache import atomic_file, cache_dir

CACHE_VERSION = 2  # 2: float32 results unprefixed, bf16 ones under "bf16:"


class ResultCache:
    """One model's results. ``role`` names the file only ("reference" or "audited"), so a person
    looking in the cache can tell them apart; the key is the weights hash."""

    def __init__(self, weights_hash: str, cache: str | Path | None = None, role: str = "reference") -> None:
        digest = weights_hash.split(":")[-1][:24]
        self.path = cache_dir(cache) / "audit" / f"{role}-v{CACHE_VERSION}-{digest}.json"
        self.entries: dict[str, dict] = self._read()
        self._new: set[str] = set()

    def _read(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}  # a damaged cache is rebuilt, never trusted
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> ProbeResult | None:
        data = self.entries.get(key)
        return ProbeResult(**data) if isinstance(data, dict) and "hit" in data else None

    def get_raw(self, key: str):
        return self.entries.get(key)

    def put(self, key: str, value: ProbeResult | object) -> None:
        self.entries[key] = value.to_json() if isinstance(value, ProbeResult) else value
        self._new.add(key)

    def save(self) -> None:
        """Merge this run's new entries into what is on disk now, under a lock: audits running side
        by side (other concepts, other methods) each add their entries instead of the last one
        overwriting the others'."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            merged = self._read()
            merged.update({k: self.entries[k] for k in self._new})
            with atomic_file(self.path) as tmp:
                tmp.write_text(json.dumps(merged), encoding="utf-8")
        self.entries = {**merged, **self.entries}
        self._new.clear()
