"""Reference-model results cached on disk, keyed by the reference's weights hash and each probe's
fingerprint, so repeated audits (other concepts, other edits of the same base) are fast."""

from __future__ import annotations

import json
from pathlib import Path

from formless.audit.engine import ProbeResult
from formless.models.cache import atomic_file, cache_dir

CACHE_VERSION = 2  # 2: float32 results unprefixed, bf16 ones under "bf16:"


class ReferenceCache:
    def __init__(self, weights_hash: str, cache: str | Path | None = None) -> None:
        digest = weights_hash.split(":")[-1][:24]
        self.path = cache_dir(cache) / "audit" / f"reference-v{CACHE_VERSION}-{digest}.json"
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                self.entries = {}  # a damaged cache is rebuilt, never trusted

    def get(self, key: str) -> ProbeResult | None:
        data = self.entries.get(key)
        return ProbeResult(**data) if isinstance(data, dict) and "hit" in data else None

    def get_raw(self, key: str):
        return self.entries.get(key)

    def put(self, key: str, value: ProbeResult | object) -> None:
        self.entries[key] = value.to_json() if isinstance(value, ProbeResult) else value

    def save(self) -> None:
        with atomic_file(self.path) as tmp:
            tmp.write_text(json.dumps(self.entries), encoding="utf-8")
