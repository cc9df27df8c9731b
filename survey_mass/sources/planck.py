"""Planck Compton-y cutouts: gnomonic projections of a public HEALPix y-map (MILCA or NILC).

The map is one FITS file behind any fsspec URL of the job spec (a local path, HTTP(S), or an object
store such as S3); a remote one is downloaded once into the request cache, and read once per
process. Its HEALPix keywords are honoured: ``NSIDE``, ``ORDERING`` (RING or NESTED), ``COORDSYS``
(Planck maps are Galactic; targets are ICRS) and the ``IMPLICIT`` full-sky layout, with the map
column either scalar (``E``) or vector (``1024E``) per row. Pixels flagged UNSEEN become NaN.

Each cutout is ``SZ_GRID`` x ``SZ_GRID`` pixels of ``PLANCK_PIXEL`` on a TAN grid centred on the
target in ICRS; every pixel centre is taken to the map's frame and bilinearly interpolated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import ICRS, BarycentricMeanEcliptic, Galactic, SkyCoord
from astropy.io import fits
from astropy_healpix import HEALPix
from pydantic import Field

from survey_mass.constants import PLANCK_BEAM_FWHM, PLANCK_PIXEL, SZ_GRID
from survey_mass.sources.archive import ArchiveFetcher, ServiceConfig, image_hdul, open_fits
from survey_mass.sources.base import Cutout, CutoutError, CutoutFailure, Target
from survey_mass.wcs import tan_wcs

#: HEALPix's "no data" value (healpy.UNSEEN)
UNSEEN = -1.6375e30
FRAMES = {
    "G": Galactic(),
    "GALACTIC": Galactic(),
    "C": ICRS(),
    "Q": ICRS(),
    "CELESTIAL": ICRS(),
    "EQUATORIAL": ICRS(),
    "ICRS": ICRS(),
    "E": BarycentricMeanEcliptic(),
    "ECLIPTIC": BarycentricMeanEcliptic(),
}


class PlanckConfig(ServiceConfig):
    """``[source.real.planck]``: which y-map, and where it is read from."""

    map_url: str = Field(
        "https://irsa.ipac.caltech.edu/data/Planck/release_2/all-sky-maps/maps/component-maps/"
        "foregrounds/COM_CompMap_Compton-SZMap-milca-ymaps_2048_R2.00.fits",
        description="fsspec URL or path of a HEALPix y-map (MILCA or NILC, PR2)",
    )
    column: str | None = Field("FULL", description="map column; None takes the first one")
    storage_options: dict = Field(
        default_factory=dict, description="fsspec options, e.g. anon = true"
    )
    default_coordsys: str = Field("G", description="frame assumed if the map has no COORDSYS")
    timeout_s: float = Field(600.0, gt=0, description="the map is ~0.6-2 GB: allow a slow read")
    max_concurrency: int = Field(1, ge=1, le=64)


@dataclass
class HealpixMap:
    values: np.ndarray  # float32, native order, NaN for UNSEEN
    healpix: HEALPix
    coordsys: str
    column: str
    unit: str


def read_healpix_map(
    path: Path | str, column: str | None, default_coordsys: str = "G", what: str = "y-map"
) -> HealpixMap:
    """Read one column of a full-sky HEALPix map FITS; CutoutError("bad_fits"/"missing_wcs")."""
    hdul = open_fits(str(path), what, memmap=True)
    try:
        tables = [h for h in hdul if isinstance(h, fits.BinTableHDU)]
        if not tables:
            raise CutoutError("bad_fits", f"{what}: no binary table holding a HEALPix map")
        hdu = next(
            (h for h in tables if str(h.header.get("PIXTYPE", "")).upper() == "HEALPIX"), tables[0]
        )
        h = hdu.header
        names = hdu.columns.names
        name = column if column is not None else names[0]
        if name not in names:
            match = [n for n in names if n.upper() == name.upper()]
            if not match:
                raise CutoutError("bad_fits", f"{what}: no column {name!r} (has {names})")
            name = match[0]
        if str(h.get("INDXSCHM", "IMPLICIT")).upper() != "IMPLICIT":
            raise CutoutError("bad_fits", f"{what}: partial-sky (EXPLICIT) maps are not supported")
        ordering = str(h.get("ORDERING", "")).strip().upper()
        if ordering not in ("RING", "NESTED"):
            raise CutoutError(
                "missing_wcs", f"{what}: ORDERING is {ordering or 'missing'}; need RING or NESTED"
            )
        try:
            values = np.array(hdu.data[name], dtype=np.float32).reshape(-1)
        except Exception as err:
            raise CutoutError("bad_fits", f"{what}: map column unreadable ({err})") from err
        nside = int(h.get("NSIDE", 0)) or int(round(np.sqrt(values.size / 12)))
        if values.size != 12 * nside**2 or nside & (nside - 1):
            raise CutoutError(
                "bad_fits",
                f"{what}: {values.size} pixels is not a full sky at NSIDE={h.get('NSIDE')}",
            )
        coordsys = str(h.get("COORDSYS", default_coordsys)).strip().upper()
        if coordsys not in FRAMES:
            raise CutoutError("missing_wcs", f"{what}: unknown COORDSYS {coordsys!r}")
        col_index = names.index(name) + 1
        unit = str(h.get(f"TUNIT{col_index}", "")).strip()
    finally:
        hdul.close()
    values[~np.isfinite(values) | (values <= UNSEEN * 0.9)] = np.nan
    order = "nested" if ordering == "NESTED" else "ring"
    return HealpixMap(
        values, HEALPix(nside=nside, order=order, frame=FRAMES[coordsys]), coordsys, name, unit
    )


def project(
    hmap: HealpixMap, ra: float, dec: float, npix: int = SZ_GRID, pixel: u.Quantity = PLANCK_PIXEL
):
    """Gnomonic cutout of ``hmap`` centred on ICRS (ra, dec): (image, TAN WCS)."""
    wcs = tan_wcs(ra, dec, pixel.to_value(u.deg), npix)
    yy, xx = np.mgrid[0:npix, 0:npix]
    lon, lat = wcs.pixel_to_world_values(xx, yy)
    coords = SkyCoord(lon * u.deg, lat * u.deg, frame="icrs").transform_to(hmap.healpix.frame)
    image = hmap.healpix.interpolate_bilinear_skycoord(coords, hmap.values)
    return np.asarray(image, dtype=np.float32), wcs


class PlanckFetcher(ArchiveFetcher):
    """SZ cutouts (Compton-y, SZ_GRID square at PLANCK_PIXEL) from a HEALPix y-map."""

    name = "planck"
    instrument = "sz"
    config_class = PlanckConfig
    config: PlanckConfig

    def __init__(self, config: PlanckConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        self._map: HealpixMap | None = None
        self._map_error: CutoutError | None = None
        self._map_lock = threading.Lock()

    def load_map(self) -> HealpixMap:
        """The y-map, read once per fetcher (a remote one downloaded once per cache)."""
        with self._map_lock:
            if self._map_error is not None:  # failed in this pass: don't retry it per target
                raise CutoutError(self._map_error.reason, self._map_error.detail)
            if self._map is None:
                cfg = self.config
                try:
                    self._map = self.service.fetch_file(
                        cfg.map_url,
                        storage_options=cfg.storage_options,
                        suffix=".fits",
                        what=f"Planck y-map {cfg.map_url}",
                        parse=lambda p: read_healpix_map(
                            p, cfg.column, cfg.default_coordsys, f"y-map {cfg.map_url}"
                        ),
                    )
                except CutoutError as err:
                    if err.reason == "not_found":
                        err = CutoutError("no_coverage", f"the y-map is not at {cfg.map_url}")
                    self._map_error = err
                    raise err from None
            return self._map

    @property
    def max_workers(self) -> int:
        """One: a cutout is a projection of the in-memory map, with no request to wait on."""
        return 1

    def cutouts(
        self, targets: Iterable[Target], instrument: str | None = None
    ) -> Iterator[Cutout | CutoutFailure]:
        # a map that cannot be had fails every target of this pass (quarantined, never raised);
        # the next pass tries it again
        with self._map_lock:
            self._map_error = None
        return super().cutouts(targets, instrument)

    def fetch_one(self, target: Target, instrument: str) -> Cutout:
        hmap = self.load_map()
        image, wcs = project(hmap, target.ra, target.dec)
        finite = np.isfinite(image)
        c = SZ_GRID // 2
        if not finite[c - 1 : c + 1, c - 1 : c + 1].all():
            raise CutoutError(
                "no_coverage",
                f"the y-map has no data at ({target.ra:.4f}, {target.dec:+.4f}) (UNSEEN pixels)",
            )
        hdul = image_hdul(
            image,
            wcs,
            {
                "TELESCOP": "Planck",
                "BUNIT": ("Compton-y", "dimensionless"),
                "MAPCOL": (hmap.column, "column of the HEALPix y-map"),
                "MAPUNIT": (hmap.unit, "unit as given in the map"),
                "NSIDE": hmap.healpix.nside,
                "ORDERING": hmap.healpix.order.upper(),
                "MAPFRAME": (hmap.coordsys, "COORDSYS of the HEALPix map"),
                "BEAMFWHM": (PLANCK_BEAM_FWHM.to_value(u.arcmin), "[arcmin] map resolution"),
                "COVERAGE": (float(finite.mean()), "fraction of pixels with map data"),
                "OBJECT": target.target_id,
            },
        )
        return Cutout(
            target, instrument, hdul, {"map_url": self.config.map_url, "source": self.name}
        )
