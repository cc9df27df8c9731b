"""Where a job output's catalog version lives on disk, for tests that look at its files."""

from __future__ import annotations

from pathlib import Path

from survey_mass.catalog.paths import current_version


def current_root(output: Path | str) -> Path:
    """The folder of the output's current version (``OUT/vN``); while the first run is still
    writing (no version is current yet), the newest version folder; else ``output`` itself."""
    output = Path(output)
    name = current_version(str(output))
    if name is not None:
        return output / name
    folders = (
        sorted(output.glob("v[0-9]*"), key=lambda p: int(p.name[1:])) if output.is_dir() else []
    )
    return folders[-1] if folders else output
