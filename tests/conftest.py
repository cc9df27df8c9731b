"""Shared test fixtures: the real reference data beside the checkout, the real catalogs in it,
tiny training runs, and quiet TensorFlow."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# CI runs every property test on the same examples (no example database, failures print their
# reproduction blob); elsewhere hypothesis explores. SURVEY_MASS_HYPOTHESIS=ci forces CI's.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(
    os.environ.get("SURVEY_MASS_HYPOTHESIS", "ci" if os.environ.get("CI") else "dev")
)

REPO_ROOT = Path(__file__).resolve().parents[1]
#: CI checks the repository out with ``shared/`` beside it; tests read real data only from there.
SHARED_DATA = Path(os.environ.get("SURVEY_MASS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data folder, or skip with the reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA} (set SURVEY_MASS_SHARED_DATA)")
    return SHARED_DATA


#: The published catalogs shipped with a definition (catalogs/*.toml) and a file in the shared data.
REAL_CATALOGS = (
    "sdss_redmapper",
    "des_redmapper",
    "psz2",
    "mcxc",
    "sptsz",
    "act_dr5",
    "erass1",
    "deepplanck",
)


@pytest.fixture(scope="session")
def real_catalog_names() -> list[str]:
    """The names of the real catalogs' definitions."""
    return list(REAL_CATALOGS)


@pytest.fixture(scope="session")
def real_catalog_paths(shared_data, real_catalog_names) -> dict[str, str]:
    """Catalog name -> its file in the shared data (the definitions' ``local``, relocated)."""
    from survey_mass.references import load_definition

    found = {}
    for name in real_catalog_names:
        local = load_definition(name).file.local
        found[name] = str(shared_data / Path(local).relative_to("../shared/data"))
    return found


TINY_TRAINING = """
[train]
instrument = "{instrument}"
ensemble = "{ensemble}"
out = "{out}"
n_clusters = {n_clusters}
folds = 3
max_epochs = 1
min_epochs = 1
batch_size = 16
augmentations_per_epoch = 1
[train.universe]
seed = 5
log10_m500_min = 14.0
z_max = {z_max}
[{instrument}]
{settings}
work = "{work}"
"""


@dataclass(frozen=True)
class TinyTraining:
    """A training job small enough for a test: 3 folds of one epoch on a seed-5 universe above
    1e14 Msun, with the instrument's own ``settings`` (TOML lines of its section)."""

    instrument: str
    n_clusters: int
    z_max: float
    settings: str

    @property
    def ensemble(self) -> str:
        return f"{self.instrument}-tiny"

    def spec(self, out: Path, work: Path) -> str:
        """The job's TOML, writing the zoo entry to ``out`` and scratch files under ``work``."""
        return TINY_TRAINING.format(
            instrument=self.instrument,
            ensemble=self.ensemble,
            out=out,
            n_clusters=self.n_clusters,
            z_max=self.z_max,
            settings=self.settings.strip(),
            work=work,
        )

    def run(self, root: Path) -> tuple[Path, Path, dict]:
        """Train into ``root``/zoo through the CLI: (spec file, zoo entry, its manifest)."""
        from survey_mass.cli import main

        spec = root / f"train_{self.instrument}.toml"
        out = root / "zoo" / self.ensemble
        spec.write_text(self.spec(out=out, work=root / "work"))
        assert main(["train", str(spec)]) == 0
        return spec, out, json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="session")
def tiny_training():
    """Factory of :class:`TinyTraining` jobs: ``tiny_training(instrument, n_clusters, z_max,
    settings)``."""
    return TinyTraining


@pytest.fixture(scope="session")
def dask_client():
    """A real Dask cluster as a job starts one (a scheduler and two 1-thread workers forked from
    the forkserver that holds TensorFlow), so the suite runs on the default worker start."""
    from distributed import Client

    from survey_mass.runner.dask_cluster import make_cluster
    from survey_mass.spec.job import ComputeSpec

    with make_cluster(ComputeSpec(n_workers=2, threads_per_worker=1, dashboard=False)) as cluster:
        with Client(cluster) as client:
            yield client


MOCK_JOB = """
name = "pipeline-test"
instruments = ["xray"]
batch_size = 16
[targets]
footprint = {{ kind = "cone", ra = 210.0, dec = -5.0, radius_deg = 1.3 }}
shard_order = 5
[source]
mock = {{ seed = 7 }}
[output]
url = "{url}"
"""


@pytest.fixture(scope="session")
def mock_catalog(tmp_path_factory, dask_client):
    """(spec, root, summary) of a small mock job run once for the whole session."""
    from survey_mass.runner.job import run_job
    from survey_mass.spec.job import parse_job_spec

    root = tmp_path_factory.mktemp("mock-catalog") / "cat"
    spec = parse_job_spec(MOCK_JOB.format(url=root))
    return spec, root, run_job(spec, client=dask_client, progress=False)
