"""The real archives as one :class:`~survey_mass.sources.base.Source`: instrument -> fetcher.

``[source.real]`` of a job spec is a :class:`RealSourceConfig`::

    [source.real]
    cache_dir = "~/.cache/survey-mass"
    allowed_protocols = ["file", "http", "https", "s3"]

    [source.real.sdss]
    rate_per_s = 2.0

    [source.real.planck]
    map_url = "s3://my-bucket/planck/milca_ymaps.fits"   # or a local path, or HTTP(S)
    storage_options = { anon = true }

    [source.real.chandra]
    archive_url = "s3://nasa-heasarc/chandra/data/byobsid"
    storage_options = { anon = true }

Instruments: "optical" -> SDSS, "sz" -> Planck, "xray" -> Chandra. The fetchers are built lazily
(one per instrument and process) and share the cache folder and the transport.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from pydantic import Field, model_validator

from survey_mass.sources.archive import ArchiveFetcher
from survey_mass.sources.base import Cutout, CutoutFailure, Target
from survey_mass.sources.chandra import ChandraConfig, ChandraFetcher
from survey_mass.sources.net.cache import DEFAULT_CACHE_DIR, RequestCache
from survey_mass.sources.net.transport import DefaultTransport, Transport, url_protocol
from survey_mass.sources.planck import PlanckConfig, PlanckFetcher
from survey_mass.sources.sdss import SDSSConfig, SDSSFetcher
from survey_mass.spec.base import StrictModel

#: instrument -> (fetcher class, RealSourceConfig field)
FETCHERS: dict[str, tuple[type[ArchiveFetcher], str]] = {
    "optical": (SDSSFetcher, "sdss"),
    "sz": (PlanckFetcher, "planck"),
    "xray": (ChandraFetcher, "chandra"),
}


class RealSourceConfig(StrictModel):
    """``[source.real]``: the archive fetchers' settings, cache folder and allowed URL kinds."""

    sdss: SDSSConfig = Field(default_factory=SDSSConfig)
    planck: PlanckConfig = Field(default_factory=PlanckConfig)
    chandra: ChandraConfig = Field(default_factory=ChandraConfig)
    cache_dir: str = Field(
        DEFAULT_CACHE_DIR, description="where fetched answers and files are kept"
    )
    allowed_protocols: list[str] = Field(
        default_factory=lambda: ["file", "local", "http", "https", "s3", "gs"],
        description="fsspec protocols a URL of this table may use",
    )

    @model_validator(mode="after")
    def _urls_allowed(self):
        urls = {
            "sdss.skyserver_url": self.sdss.skyserver_url,
            "sdss.frames_url": self.sdss.frames_url,
            "planck.map_url": self.planck.map_url,
            "chandra.tap_url": self.chandra.tap_url,
            "chandra.archive_url": self.chandra.archive_url,
        }
        for key, url in urls.items():
            protocol = url_protocol(url)
            if protocol not in self.allowed_protocols:
                raise ValueError(
                    f"{key} = {url!r} uses protocol {protocol!r}, which is not in "
                    f"allowed_protocols {self.allowed_protocols}; add it or change the URL"
                )
        for key in ("sdss.skyserver_url", "sdss.frames_url", "chandra.tap_url"):
            if url_protocol(urls[key]) not in ("http", "https"):
                raise ValueError(f"{key} must be an http(s) URL (it is asked over HTTP)")
        return self


class RealSource:
    """Routes each instrument to its archive fetcher; unknown instruments fail per target."""

    name = "real"

    def __init__(
        self,
        config: RealSourceConfig | None = None,
        *,
        transport: Transport | None = None,
        cache: RequestCache | None = None,
        sleep=None,
    ):
        self.config = config or RealSourceConfig()
        self.cache = cache or RequestCache(self.config.cache_dir)
        self.transport = transport or DefaultTransport()
        self._sleep = sleep
        self._fetchers: dict[str, ArchiveFetcher] = {}
        self._lock = threading.Lock()

    def fetcher(self, instrument: str) -> ArchiveFetcher | None:
        """The fetcher serving ``instrument`` (built on first use), or None."""
        if instrument not in FETCHERS:
            return None
        with self._lock:
            if instrument not in self._fetchers:
                cls, key = FETCHERS[instrument]
                self._fetchers[instrument] = cls(
                    getattr(self.config, key),
                    cache=self.cache,
                    transport=self.transport,
                    allowed_protocols=self.config.allowed_protocols,
                    sleep=self._sleep,
                )
            return self._fetchers[instrument]

    def cutouts(
        self, targets: Iterable[Target], instrument: str
    ) -> Iterator[Cutout | CutoutFailure]:
        fetcher = self.fetcher(instrument)
        if fetcher is None:
            return (
                CutoutFailure(
                    t,
                    instrument,
                    "instrument_unavailable",
                    f"no archive fetcher for {instrument!r}; known: {sorted(FETCHERS)}",
                )
                for t in targets
            )
        return fetcher.cutouts(targets, instrument)


def build_real_source(config: RealSourceConfig | dict | None = None, **kwargs) -> RealSource:
    """The real-archive Source for a ``[source.real]`` table (a model, a dict, or None)."""
    if config is None or isinstance(config, dict):
        config = RealSourceConfig.model_validate(config or {})
    return RealSource(config, **kwargs)
