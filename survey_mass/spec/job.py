"""Job specs: one TOML file says what to weigh, with what, where it runs and where results go.

Validated by pydantic; every error names the key (dotted path in the TOML) and how to fix it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import tomllib
from pydantic import Field, ValidationError, field_validator, model_validator

from survey_mass.constants import INSTRUMENTS
from survey_mass.errors import JobSpecError
from survey_mass.sources.real import RealSourceConfig
from survey_mass.spec.base import StrictModel
from survey_mass.spec.footprint import Footprint
from survey_mass.spec.universe import UniverseSpec
from survey_mass.spec.urls import check_protocols, url_protocols


class TargetsSpec(StrictModel):
    """Where targets come from: the mock universe inside a footprint, or a catalog file/URL."""

    footprint: Footprint | None = Field(None, description="sky region; required for source = mock")
    catalog: str | None = Field(None, description="local path or fsspec URL of a target catalog")
    columns: dict[str, str] = Field(
        default_factory=lambda: {"id": "id", "ra": "ra", "dec": "dec", "z": "z"},
        description="our name (id, ra, dec, z) -> column name in the catalog",
    )
    shard_order: int | None = Field(
        None, ge=0, le=10, description="HEALPix order of shards; auto if unset"
    )
    max_targets: int | None = Field(None, gt=0, description="keep only the first N targets (tests)")
    allowed_protocols: list[str] = Field(
        default_factory=lambda: ["file", "local", "http", "https", "s3", "gs", "abfs"],
        description="fsspec protocols targets.catalog may use",
    )

    @model_validator(mode="after")
    def _one_origin(self):
        if self.footprint is None and self.catalog is None:
            raise ValueError(
                "give targets.footprint (mock universe) or targets.catalog (a file or URL)"
            )
        missing = {"id", "ra", "dec", "z"} - set(self.columns)
        if missing:
            raise ValueError(
                f"targets.columns lacks {sorted(missing)}; map each to a catalog column"
            )
        if self.catalog is not None:
            check_protocols("targets.catalog", self.catalog, self.allowed_protocols)
        return self


class SourceSpec(StrictModel):
    kind: Literal["mock", "real"] = "mock"
    mock: UniverseSpec = Field(default_factory=UniverseSpec)
    real: RealSourceConfig = Field(default_factory=RealSourceConfig)


#: the zoo each mock physics version was trained and calibrated on; an instrument [models] does
#: not name gets the entry of the job's mock physics, and a real-data job the realistic (v2) one
ZOO_FOR_PHYSICS = {
    "v1": {"xray": "xray-v1", "sz": "sz-v1", "optical": "optical-v1"},
    "v2": {"xray": "xray-v2", "sz": "sz-v2", "optical": "optical-v2"},
}
REAL_DATA_PHYSICS = "v2"


class ModelsSpec(StrictModel):
    """Which zoo ensemble weighs each instrument; a name in the zoo or a path to one."""

    xray: str = ZOO_FOR_PHYSICS[REAL_DATA_PHYSICS]["xray"]
    sz: str = ZOO_FOR_PHYSICS[REAL_DATA_PHYSICS]["sz"]
    optical: str = ZOO_FOR_PHYSICS[REAL_DATA_PHYSICS]["optical"]
    joint: str = Field(
        "auto",
        description="how the instruments' masses combine: a joint zoo entry (name or path), "
        "'inverse-variance', or 'auto' (the shipped joint entry fitted on the job's ensembles, "
        "else inverse-variance)",
    )
    zoo: str | None = Field(None, description="extra zoo folder searched before the shipped one")
    tta: bool = Field(False, description="average the 8 dihedral transforms at inference")
    calibrated: bool = Field(
        True,
        description="apply each entry's calibration map (bias, intervals, prior where "
        "uninformative); false: the raw ensemble outputs (what `survey-mass calibrate` fits)",
    )

    def for_physics(self, physics: str) -> ModelsSpec:
        """These models, each instrument not named explicitly taken from the zoo of ``physics``."""
        unset = {
            kind: entry
            for kind, entry in ZOO_FOR_PHYSICS[physics].items()
            if kind not in self.model_fields_set
        }
        return self.model_copy(update=unset) if unset else self


def local_cluster_options() -> set[str]:
    """Keyword arguments a LocalCluster takes (its own, and those it passes to Nanny/Worker)."""
    import inspect

    from distributed import LocalCluster, Nanny, Worker

    names = set()
    for cls in (LocalCluster, Nanny, Worker):
        names |= {
            name
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.kind is not p.VAR_KEYWORD and name != "self"
        }
    return names - {"n_workers", "threads_per_worker", "processes", "memory_limit"}


class ComputeSpec(StrictModel):
    """The Dask cluster the job runs on (the ``[cluster]`` table): local processes by default."""

    kind: Literal["local", "local-cuda", "address", "slurm", "kubernetes"] = "local"
    address: str | None = Field(None, description="scheduler address for kind = 'address'")
    n_workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    dashboard: bool = Field(True, description="serve (and print the link of) the Dask dashboard")
    worker_profile: bool = Field(
        False,
        description="sample the workers' stacks for the dashboard's Profile page; its history "
        "(one sample tree a second, the last 1000 s) grows a worker by ~25 MB over a long run. "
        "Local and local-cuda clusters; deployed workers take "
        "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED from their environment (deploy/)",
    )
    worker_start: Literal["forkserver", "spawn"] = Field(
        "forkserver",
        description="how a local cluster starts its worker processes: 'forkserver' forks them from "
        "one process that imported TensorFlow and the shard path once, so they share those pages; "
        "'spawn' starts a fresh interpreter for each (Dask's default)",
    )
    memory_limit: str = Field(
        "4GiB", description="per worker: '4GiB', '500MB', 'auto' or 0 (no limit)"
    )
    options: dict = Field(
        default_factory=dict,
        description="extra keyword arguments of the cluster class (LocalCluster, SLURMCluster, ...)",
    )

    @field_validator("memory_limit")
    @classmethod
    def _memory_parses(cls, value: str) -> str:
        from dask.utils import parse_bytes

        if value.strip().lower() == "auto":
            return value
        try:
            parse_bytes(value)
        except (ValueError, TypeError):
            raise ValueError(
                f"{value!r} is not a memory size; write e.g. '4GiB', '500MB', 'auto' or '0'"
            ) from None
        return value

    @model_validator(mode="after")
    def _address_given(self):
        if self.kind == "address" and not self.address:
            raise ValueError("cluster.kind = 'address' needs cluster.address = 'tcp://host:8786'")
        if self.kind == "local" and self.options:
            unknown = sorted(set(self.options) - local_cluster_options())
            if unknown:
                raise ValueError(
                    f"cluster.options {unknown} are not LocalCluster, Nanny or Worker arguments; "
                    "remove them or check their spelling"
                )
        return self


class OutputSpec(StrictModel):
    url: str = Field(description="where the catalog goes: a local path or fsspec URL")
    partition_rows: int = Field(
        100_000, ge=1, description="a partition holding more rows is split into its 4 children"
    )
    margin_arcsec: float = Field(
        300.0, gt=0, le=3600, description="margin cache width [arcsec]: exact crossmatches to it"
    )
    allowed_protocols: list[str] = Field(
        default_factory=lambda: ["file", "local", "s3", "gs", "abfs"]
    )

    @field_validator("url")
    @classmethod
    def _not_empty(cls, url: str) -> str:
        if not url.strip():
            raise ValueError("is empty: give the catalog's folder, e.g. 'out/night'")
        return url

    @model_validator(mode="after")
    def _protocol_allowed(self):
        if "memory" in url_protocols(self.url):
            raise ValueError(
                f"output.url {self.url!r}: a memory:// filesystem lives in one process, and the "
                "workers write shards from their own: give a local folder or an object store"
            )
        check_protocols("output.url", self.url, self.allowed_protocols)
        return self


class ReportSpec(StrictModel):
    """``[report]``: a validation report written after the run, against these references."""

    against: list[str] = Field(
        min_length=1, description="reference catalogs: mock_truth, mock_wl, psz2, ... (catalogs/)"
    )
    out: str | None = Field(None, description="report folder; default: the output url + _report")


class JobSpec(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    instruments: list[str] = Field(default_factory=lambda: ["xray"], min_length=1)
    batch_size: int = Field(64, ge=1, le=4096)
    confirm_above_shards: int = Field(
        1000, ge=1, description="a job of more shards states its size and needs `run --yes`"
    )
    device: Literal["auto", "cpu", "gpu"] = "auto"
    mode: Literal["run", "update"] = Field(
        "run",
        description="update: when inputs, spec or models changed, write a new catalog version "
        "weighing only new or changed targets (as `run --update`); run: refuse such a re-run",
    )
    targets: TargetsSpec
    source: SourceSpec = Field(default_factory=SourceSpec)
    models: ModelsSpec = Field(default_factory=ModelsSpec)
    cluster: ComputeSpec = Field(default_factory=ComputeSpec)
    output: OutputSpec
    report: ReportSpec | None = None

    @field_validator("instruments")
    @classmethod
    def _known_instruments(cls, value: list[str]) -> list[str]:
        unknown = [i for i in value if i not in INSTRUMENTS]
        if unknown:
            raise ValueError(f"unknown instrument(s) {unknown}; choose from {list(INSTRUMENTS)}")
        if len(set(value)) != len(value):
            raise ValueError("an instrument is listed twice")
        return value

    @model_validator(mode="after")
    def _mock_needs_footprint(self):
        if self.source.kind == "mock" and self.targets.footprint is None:
            raise ValueError(
                "source.kind = 'mock' draws targets from the mock universe: give targets.footprint"
            )
        return self

    @model_validator(mode="after")
    def _models_of_the_physics(self):
        """Unnamed models follow the mock universe's physics: v1 data gets the v1 zoo."""
        if self.source.kind == "mock":
            self.models = self.models.for_physics(self.source.mock.physics)
        return self


def format_validation_error(err: ValidationError, path: str) -> str:
    lines = [f"{path}: the job spec is not valid:"]
    for e in err.errors():
        key = ".".join(
            str(p) for p in e["loc"] if not str(p).startswith(("function-", "tagged-union"))
        )
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        elif e["type"] == "missing":
            msg = "required key is missing; add it"
        lines.append(f"  - {key or '(top level)'}: {msg}")
    return "\n".join(lines)


def parse_job_spec(text: str, path: str = "<job spec>", base_dir: Path | None = None) -> JobSpec:
    """Parse TOML text into a JobSpec, or raise JobSpecError naming each bad key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise JobSpecError(f"{path}: not valid TOML ({err}); check quotes and brackets") from err
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as err:
        raise JobSpecError(format_validation_error(err, path)) from err
    if (
        base_dir is not None
        and "://" not in spec.output.url
        and not Path(spec.output.url).is_absolute()
    ):
        spec.output.url = str((base_dir / spec.output.url).resolve())
    return spec


def load_job_spec(path: str | Path) -> JobSpec:
    """Read and validate a job spec file; relative output paths are taken from the working dir."""
    path = Path(path)
    if not path.is_file():
        raise JobSpecError(f"{path}: no such job spec file; see jobs/ for examples")
    return parse_job_spec(path.read_text(), str(path), Path.cwd())
