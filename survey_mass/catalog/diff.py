"""Two catalog versions side by side: rows added and removed, and how each mass moved.

``survey-mass diff OUT/v1 OUT/v2`` (or two outputs: each is read at its current version). Rows
pair by ``target_id``; a mass "changed" when it moved by more than :data:`CHANGED_DEX`.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from survey_mass.catalog.paths import CatalogLayout, resolve
from survey_mass.catalog.reader import read_mass_catalog

#: a mass that moved by less than this [dex] is the same mass (float noise of a re-run)
CHANGED_DEX = 1e-6


def _mass_columns(frame: pd.DataFrame) -> list[str]:
    """``logm500`` and each instrument's ``logm500_<inst>`` (not sigmas, spreads, percentiles)."""
    names = [c for c in frame.columns if c.startswith("logm500")]
    return [c for c in names if not c.endswith(("_sigma", "_spread")) and "_p" not in c]


def _version_of(url: str) -> dict:
    layout = CatalogLayout(url)
    try:
        record = json.loads(layout.fs.cat_file(layout.provenance))
    except FileNotFoundError:
        return {"url": url}
    return {"url": layout.url, "version": record.get("version"), "parent": record.get("parent")}


def _shift_stats(delta: np.ndarray) -> dict:
    finite = delta[np.isfinite(delta)]
    if not len(finite):
        return {"n": 0, "changed": 0}
    p16, p50, p84 = np.percentile(finite, [16, 50, 84])
    return {
        "n": int(len(finite)),
        "changed": int((np.abs(finite) > CHANGED_DEX).sum()),
        "median_dex": float(p50),
        "p16_dex": float(p16),
        "p84_dex": float(p84),
        "max_abs_dex": float(np.abs(finite).max()),
    }


def diff_catalogs(old: str, new: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The numbers of the comparison, and each mass column's shifts (new - old) [dex]."""
    old, new = resolve(old), resolve(new)
    a, b = read_mass_catalog(old), read_mass_catalog(new)
    ids_a, ids_b = set(a["target_id"]), set(b["target_id"])
    both = a.merge(b, on="target_id", suffixes=("_old", "_new"))
    shifts = {
        col: (both[f"{col}_new"] - both[f"{col}_old"]).to_numpy(dtype=float)
        for col in _mass_columns(a)
        if col in b.columns
    }
    numbers = {
        "old": _version_of(old),
        "new": _version_of(new),
        "rows_old": len(a),
        "rows_new": len(b),
        "added": len(ids_b - ids_a),
        "removed": len(ids_a - ids_b),
        "common": len(ids_a & ids_b),
        "added_ids": sorted(ids_b - ids_a)[:50],
        "removed_ids": sorted(ids_a - ids_b)[:50],
        "columns_added": sorted(set(_mass_columns(b)) - set(_mass_columns(a))),
        "columns_removed": sorted(set(_mass_columns(a)) - set(_mass_columns(b))),
        "shifts": {col: _shift_stats(delta) for col, delta in shifts.items()},
        "changed_threshold_dex": CHANGED_DEX,
    }
    return numbers, shifts


def diff_text(numbers: dict) -> str:
    """The comparison for a terminal: counts, then one line per mass column."""
    lines = [
        f"{numbers['old']['url']} -> {numbers['new']['url']}",
        f"  rows: {numbers['rows_old']} -> {numbers['rows_new']} "
        f"(+{numbers['added']} added, -{numbers['removed']} removed, {numbers['common']} in both)",
    ]
    for col, s in numbers["shifts"].items():
        if not s["n"]:
            lines.append(f"  {col}: no common finite values")
            continue
        lines.append(
            f"  {col} [dex]: {s['changed']}/{s['n']} changed; median {s['median_dex']:+.4f}, "
            f"16-84% [{s['p16_dex']:+.4f}, {s['p84_dex']:+.4f}], max |shift| {s['max_abs_dex']:.4f}"
        )
    for key in ("columns_added", "columns_removed"):
        if numbers[key]:
            lines.append(f"  {key.replace('_', ' ')}: {', '.join(numbers[key])}")
    return "\n".join(lines)


def shift_histogram(col: str, delta: np.ndarray) -> bytes:
    """A histogram of one column's shifts, unchanged rows counted apart."""
    import matplotlib.pyplot as plt

    from survey_mass.validate.plots import to_png

    moved = delta[np.abs(delta) > CHANGED_DEX]
    fig, ax = plt.subplots(figsize=(6, 4))
    if moved.size:
        ax.hist(moved, bins=int(np.clip(np.sqrt(moved.size), 10, 60)), alpha=0.7)
    ax.axvline(0.0, color="0.5", lw=0.8)
    ax.set(
        xlabel=f"shift of {col}, new - old [dex]",
        ylabel="targets",
        title=f"{col}: {moved.size} of {delta.size} changed (|shift| > {CHANGED_DEX:g} dex)",
    )
    return to_png(fig)


def write_diff_report(numbers: dict, shifts: dict[str, np.ndarray], out: str | Path) -> Path:
    """``out/diff.html`` (a histogram of each column's shifts) and ``out/diff.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diff.json").write_text(json.dumps(numbers, indent=1))
    images = []
    for col, delta in shifts.items():
        finite = delta[np.isfinite(delta)]
        if len(finite):
            (out / f"shift_{col}.png").write_bytes(shift_histogram(col, finite))
            images.append(f'<h2>{html.escape(col)}</h2><img src="shift_{col}.png">')
    page = (
        f"<html><head><meta charset='utf-8'><title>catalog diff</title></head><body>"
        f"<h1>Catalog diff</h1><pre>{html.escape(diff_text(numbers))}</pre>"
        f"{''.join(images)}<p>numbers: <a href='diff.json'>diff.json</a></p></body></html>"
    )
    (out / "diff.html").write_text(page)
    return out / "diff.html"
