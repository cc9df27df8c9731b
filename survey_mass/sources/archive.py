"""What the three archive fetchers share: the fetcher base class, service settings, cutout
geometry, per-target execution, FITS reading."""

from __future__ import annotations

import logging
import math
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS
from pydantic import Field, model_validator

from survey_mass.constants import COSMOLOGY
from survey_mass.sources.base import Cutout, CutoutError, CutoutFailure, Target
from survey_mass.sources.net.cache import RequestCache
from survey_mass.sources.net.transport import DefaultTransport, Service, Transport
from survey_mass.spec.base import StrictModel
from survey_mass.wcs import header_wcs, tan_wcs

log = logging.getLogger(__name__)

#: Smallest redshift with a finite physical aperture on the sky we agree to cut (z=0 is infinite).
MIN_REDSHIFT = 0.003


class ServiceConfig(StrictModel):
    """How politely and how persistently one archive service is asked (per worker process)."""

    max_concurrency: int = Field(4, ge=1, le=64, description="requests in flight at once")
    rate_per_s: float = Field(4.0, gt=0, description="requests started per second, at most")
    timeout_s: float = Field(60.0, gt=0, description="seconds without an answer before a try fails")
    max_tries: int = Field(4, ge=1, le=20, description="tries per request, the first included")
    backoff_base_s: float = Field(1.0, ge=0, description="first backoff cap; doubles per retry")
    backoff_max_s: float = Field(60.0, ge=0, description="largest wait between two tries")

    @model_validator(mode="after")
    def _backoff_order(self):
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be >= backoff_base_s")
        return self


def aperture_deg(width: u.Quantity, z: float) -> float:
    """Angular size [deg] of a physical ``width`` at redshift ``z``."""
    if not (z >= MIN_REDSHIFT) or not math.isfinite(z):
        raise CutoutError(
            "bad_target",
            f"redshift z={z} is too small for a physical aperture (need z >= {MIN_REDSHIFT})",
        )
    return float((width / COSMOLOGY.angular_diameter_distance(z) * u.rad).to_value(u.deg))


def cutout_grid(
    target: Target,
    width: u.Quantity,
    model_npix: int,
    native: u.Quantity,
    oversample: float,
    margin: float,
) -> tuple[WCS, int]:
    """TAN WCS and size of a square cutout covering ``width`` (+``margin``) around the target.

    The pixel is ``oversample`` times finer than the model grid's, but never finer than the
    instrument's ``native`` pixel: binned enough to stay small, fine enough for the resampler.
    """
    side = aperture_deg(width, target.z) * (1.0 + margin)
    scale = max(native.to_value(u.deg), aperture_deg(width, target.z) / (model_npix * oversample))
    npix = int(math.ceil(side / scale))
    npix += npix % 2  # even: the target sits on a pixel corner, as on the model grids
    return tan_wcs(target.ra, target.dec, scale, npix), npix


def image_hdul(data: np.ndarray, wcs: WCS, keywords: dict) -> fits.HDUList:
    header = wcs.to_header()
    for key, value in keywords.items():
        header[key] = value
    return fits.HDUList([fits.PrimaryHDU(np.asarray(data, dtype=np.float32), header=header)])


def ordered_cutouts(
    fetch_one: Callable[[Target], Cutout],
    targets: Iterable[Target],
    instrument: str,
    max_workers: int,
    source: str,
) -> Iterator[Cutout | CutoutFailure]:
    """Run ``fetch_one`` over targets on a few threads; yield results in input order.

    At most ``2 * max_workers`` targets are in flight, so a million-target iterator is consumed
    lazily. Any exception of one target becomes that target's failure: the job never crashes.
    """

    def safe(target: Target) -> Cutout | CutoutFailure:
        try:
            return fetch_one(target)
        except CutoutError as err:
            return CutoutFailure(target, instrument, err.reason, err.detail)
        except Exception as err:  # a bug or an unforeseen archive answer: quarantine, say so
            log.exception("%s: unexpected failure for %s", source, target.target_id)
            return CutoutFailure(
                target, instrument, "internal_error", f"{type(err).__name__}: {err}"
            )

    if max_workers <= 1:
        for target in targets:
            yield safe(target)
        return
    with ThreadPoolExecutor(max_workers, thread_name_prefix=f"fetch-{source}") as pool:
        pending: deque = deque()
        for target in targets:
            pending.append(pool.submit(safe, target))
            if len(pending) >= 2 * max_workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class ArchiveFetcher(ABC):
    """One archive as a :class:`~survey_mass.sources.base.Source`: its settings, the cache and
    transport it shares with the other fetchers, and its throttled services.

    A subclass names the archive (``name``, which also names its services), its settings class
    and default instrument, and makes one target's cutout in :meth:`fetch_one`.
    """

    name: str
    instrument: str
    config_class: type[ServiceConfig]

    def __init__(
        self,
        config: ServiceConfig | None = None,
        *,
        cache: RequestCache | None = None,
        transport: Transport | None = None,
        allowed_protocols=None,
        sleep=None,
    ):
        self.config = config or self.config_class()
        self.cache = cache or RequestCache()
        self.transport = transport or DefaultTransport()
        self._allowed_protocols = allowed_protocols
        self._sleep = sleep
        self._services: list[Service] = []
        self.service = self.add_service(self.config)

    def add_service(self, config: ServiceConfig) -> Service:
        """Another endpoint of this archive, throttled apart by ``config`` (cache and transport
        shared); its requests count in :attr:`requests_made`."""
        service = Service.from_config(
            self.name, config, self.transport, self.cache, self._allowed_protocols, self._sleep
        )
        self._services.append(service)
        return service

    @property
    def requests_made(self) -> int:
        """Requests that reached the transport, all services together (progress and tests)."""
        return sum(service.requests_made for service in self._services)

    @property
    def max_workers(self) -> int:
        """Targets fetched at once: as many as requests may be in flight."""
        return self.config.max_concurrency

    def cutouts(
        self, targets: Iterable[Target], instrument: str | None = None
    ) -> Iterator[Cutout | CutoutFailure]:
        instrument = instrument or self.instrument
        return ordered_cutouts(
            lambda t: self.fetch_one(t, instrument),
            targets,
            instrument,
            self.max_workers,
            self.name,
        )

    @abstractmethod
    def fetch_one(self, target: Target, instrument: str) -> Cutout:
        """One target's cutout, or CutoutError saying why there is none."""


class RecentItems:
    """The last ``size`` parsed archive files, shared by a fetcher's threads.

    Neighbouring targets share frames and observations: keeping the latest ones spares parsing
    a file again (the request cache already spares downloading it). ``size`` 0 keeps nothing.
    """

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable):
        """The value kept for ``key`` (now the most recently used), or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value) -> None:
        if not self.size:
            return
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def open_fits_bytes(data: bytes, what: str) -> fits.HDUList:
    """Open FITS from bytes (plain, gzip or bzip2), fully read; CutoutError("bad_fits") if broken."""
    import bz2
    import gzip
    import io

    try:
        if data[:3] == b"BZh":
            data = bz2.decompress(data)
        elif data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, ValueError) as err:
        raise CutoutError("bad_fits", f"{what}: compressed stream is damaged ({err})") from err
    return open_fits(io.BytesIO(data), what)


#: messages of the warnings with which astropy reports a damaged FITS file
DAMAGED_FITS_WARNINGS = r"(?is).*(truncat|corrupt|header size|extra bytes|error validating header)"


def open_fits(fileobj, what: str, memmap: bool = False) -> fits.HDUList:
    """Open and verify a FITS file: every HDU's data readable; truncation is an error."""
    import warnings

    try:
        with warnings.catch_warnings():
            # astropy only *warns* about a cut-short or corrupt file; other warnings (odd
            # keywords, say) are harmless here
            warnings.simplefilter("ignore")
            warnings.filterwarnings("error", message=DAMAGED_FITS_WARNINGS)
            hdul = fits.open(fileobj, memmap=memmap, lazy_load_hdus=False)
            for hdu in hdul:
                if hdu.data is not None and not memmap:
                    hdu.data  # noqa: B018  (force the read)
    except Exception as err:
        message = " ".join(str(err).split())
        raise CutoutError(
            "bad_fits", f"{what}: not a readable FITS file ({type(err).__name__}: {message})"
        ) from err
    if len(hdul) == 0:
        raise CutoutError("bad_fits", f"{what}: FITS file has no HDU")
    return hdul


def celestial_wcs_of(header, what: str) -> WCS:
    """The celestial WCS of an image header, or CutoutError("missing_wcs")."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = header_wcs(header)
    except Exception as err:
        raise CutoutError("missing_wcs", f"{what}: WCS cannot be parsed ({err})") from err
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise CutoutError("missing_wcs", f"{what}: no celestial WCS in the header")
    return wcs
