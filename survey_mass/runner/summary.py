"""What a run tells its user at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from survey_mass.catalog.paths import CatalogLayout


@dataclass
class RunSummary:
    url: str
    rows: int = 0
    quarantined: int = 0
    shards: int = 0
    shards_run: int = 0
    seconds: float = 0.0
    reasons: Counter = field(default_factory=Counter)
    already_complete: bool = False
    repaired: int = 0  # damaged shards found and recomputed
    version: str | None = None  # the catalog version written (or found complete)
    parent: str | None = None  # the version it was updated from
    weighed: int = 0  # targets weighed by this version's runs (the rest were reused)
    carried: int = 0  # shards carried over unchanged from the parent

    def as_dict(self) -> dict:
        """The machine-readable summary: what schedulers' wrappers check."""
        return {
            "status": "already_complete" if self.already_complete else "ok",
            "catalog": self.url,
            "rows": self.rows,
            "quarantined": self.quarantined,
            "shards": self.shards,
            "shards_run": self.shards_run,
            "repaired": self.repaired,
            "version": self.version,
            "parent": self.parent,
            "weighed": self.weighed,
            "shards_carried": self.carried,
            "seconds": round(self.seconds, 3),
            "quarantine_reasons": dict(self.reasons),
        }

    def text(self) -> str:
        if self.already_complete:
            return (
                f"catalog already complete at {self.url} (version {self.version}, same inputs, "
                "spec and models: nothing to do)"
            )
        lines = [
            f"catalog: {self.url} (version {self.version}"
            + (f", updated from {self.parent})" if self.parent else ")"),
            f"  {self.rows} targets weighed, {self.quarantined} quarantined, "
            f"{self.shards_run}/{self.shards} shards run in {self.seconds:.1f} s",
        ]
        if self.parent:
            lines.append(
                f"  {self.weighed} targets weighed anew, the rest reused from {self.parent}; "
                f"{self.carried} shard(s) carried over unchanged"
            )
        if self.repaired:
            lines.append(f"  {self.repaired} damaged shard(s) found and recomputed")
        lines += [f"  quarantine {reason}: {n}" for reason, n in self.reasons.most_common()]
        lines.append(f'  query it: survey-mass query {self.url} "SELECT count(*) FROM catalog"')
        return "\n".join(lines)


def quarantine_reasons(layout: CatalogLayout) -> Counter:
    """How many quarantined targets gave each reason."""
    import pyarrow.dataset as ds

    files = layout.quarantine_files()
    if not files:
        return Counter()
    table = ds.dataset(files, filesystem=layout.fs, format="parquet").to_table(columns=["reason"])
    return Counter(table.column("reason").to_pylist())
