"""survey-mass: galaxy-cluster mass catalogs from survey cutouts with CNN fold ensembles.

The data's way, one folder per stage: spec -> targets -> sources -> preprocess -> infer -> runner
-> catalog -> crossmatch -> validate (see ARCHITECTURE.md). The public API:

- ``load_job_spec(path)`` / ``run_job(spec)``: run (or resume) a job into a mass catalog;
- ``open_catalog(url)``: a finished catalog as a DataFrame; ``query(url, sql)`` with DuckDB;
- ``weigh(source, ensemble, targets, instrument, xp, batch_size, tta)``: one instrument's masses.

Names load on first use, so ``import survey_mass`` stays light (no TensorFlow, no Dask).
"""

from importlib import import_module

__version__ = "0.1.0"

_API = {
    "load_job_spec": "survey_mass.spec.job",
    "run_job": "survey_mass.runner.job",
    "open_catalog": "survey_mass.catalog.reader",
    "query": "survey_mass.catalog.query",
    "weigh": "survey_mass.infer.weigh",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'survey_mass' has no attribute {name!r}")
