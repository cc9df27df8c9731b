"""X-ray photon images -> CNN input: resample to the physical grid, subtract background, scale.

Counts become self-similar-scaled luminosity per pixel, ``L / E(z)^(7/3)`` [erg/s], so a cluster of
given mass looks alike at every redshift and exposure (only its noise differs), then an asinh stretch
keeps the core from dominating. Version string goes into model manifests: bump it on any change.

A cutout with an ``EXPMAP`` extension (fraction of EXPOSURE per pixel, 0 off the chips: the mock's v2
Chandra field of view, or a real exposure map) is flat-fielded first (:func:`flat_field`): counts over
exposure where a chip looked, the expected background where none did, so that unobserved sky enters
the model as zero signal. Cutouts without one are untouched (what xray-v1 was trained on).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs.utils import proj_plane_pixel_scales

from survey_mass.constants import ACIS_COUNTS_PER_ERG_CM2, COSMOLOGY, XRAY_APERTURE, XRAY_GRID
from survey_mass.preprocess.batch import Prepared, asinh_float32, prepare_batch
from survey_mass.preprocess.resample import PARSED_WCS, GridSpec, ResampleError, celestial_wcs
from survey_mass.sources.base import Cutout, CutoutFailure
from survey_mass.xp import to_numpy

VERSION = "xray-v1"
GRID = GridSpec(npix=XRAY_GRID, width=XRAY_APERTURE)
#: asinh softening luminosity [erg/s per pixel]: ~1 photon at z ~ 0.5 in 100 ks
STRETCH = 1e41
#: pixels exposed less than this fraction of EXPOSURE count as unobserved (edges, chip gaps)
MIN_EXPOSURE_FRACTION = 0.05


def _scale(batch, cutouts: Sequence[Cutout], xp):
    """counts (N, 1, H, W) -> asinh of background-subtracted, self-similar luminosity per pixel."""
    z = np.array([c.target.z for c in cutouts])
    exposure = np.array([float(c.hdul[0].header["EXPOSURE"]) for c in cutouts])
    bkg_rate = np.array([float(c.hdul[0].header.get("BKGRATE", np.nan)) for c in cutouts])
    pixel_arcmin2 = (
        (XRAY_APERTURE / XRAY_GRID / COSMOLOGY.angular_diameter_distance(z)) * u.rad
    ).to_value(u.arcmin) ** 2
    background = bkg_rate * exposure * pixel_arcmin2
    # unknown background: the median of the outer ring of the image
    ring = np.ones((XRAY_GRID, XRAY_GRID), bool)
    ring[8:-8, 8:-8] = False
    unknown = ~np.isfinite(background)
    if unknown.any():
        outer_median = to_numpy(xp.median(batch[:, 0][:, xp.asarray(ring)], axis=1))
        background[unknown] = outer_median[unknown]
    d_l = COSMOLOGY.luminosity_distance(z).to_value(u.cm)
    to_lum = (
        4 * np.pi * d_l**2 / (exposure * ACIS_COUNTS_PER_ERG_CM2) / COSMOLOGY.efunc(z) ** (7 / 3)
    )
    lum = (batch - xp.asarray(background)[:, None, None, None]) * xp.asarray(to_lum)[
        :, None, None, None
    ]
    return asinh_float32(lum / STRETCH, xp)


def _check_exposure(header) -> None:
    """ResampleError unless EXPOSURE is a finite number of seconds > 0: counts become luminosity
    by dividing by it, so a missing, zero, negative or NaN exposure would give inf/NaN inputs."""
    if "EXPOSURE" not in header:
        raise ResampleError(
            "missing_header",
            "FITS header lacks EXPOSURE: set it to the effective exposure in seconds"
            " (e.g. the EVENTS header's EXPOSURE or LIVETIME)",
        )
    value = header["EXPOSURE"]
    try:
        exposure = float(value) if not isinstance(value, bool) else np.nan
    except (TypeError, ValueError):
        exposure = np.nan
    if not (np.isfinite(exposure) and exposure > 0):
        raise ResampleError(
            "bad_exposure",
            f"EXPOSURE = {value!r} is not a finite number of seconds > 0: set it to the effective"
            " exposure in seconds (e.g. the EVENTS header's EXPOSURE or LIVETIME)",
        )


def flat_field(cutout: Cutout) -> Cutout:
    """The cutout with counts / exposure map where observed and the expected background elsewhere
    (unchanged without an EXPMAP extension); ResampleError if the map does not fit the image."""
    if "EXPMAP" not in cutout.hdul:
        return cutout
    header = cutout.hdul[0].header
    counts = np.asarray(cutout.hdul[0].data, dtype=np.float64)
    emap = np.asarray(cutout.hdul["EXPMAP"].data, dtype=np.float64)
    if emap.shape != counts.shape or not np.isfinite(emap).all():
        raise ResampleError(
            "bad_exposure_map",
            f"EXPMAP of shape {emap.shape} does not match the image {counts.shape} or is not finite",
        )
    seen = emap >= MIN_EXPOSURE_FRACTION
    if not seen.any():
        raise ResampleError("bad_exposure_map", "no pixel of the EXPMAP has any exposure")
    rate = float(header.get("BKGRATE", np.nan))
    wcs = celestial_wcs(header)
    if np.isfinite(rate):
        pixel_arcmin2 = float(np.prod(proj_plane_pixel_scales(wcs))) * 3600.0
        background = rate * float(header["EXPOSURE"]) * pixel_arcmin2
    else:
        background = float(np.median(counts[seen] / emap[seen]))
    flat = np.where(seen, counts / np.where(seen, emap, 1.0), background)
    hdul = fits.HDUList([fits.PrimaryHDU(flat.astype(np.float32), header=header)])  # copies it
    return Cutout(cutout.target, cutout.instrument, hdul, {**cutout.meta, PARSED_WCS: wcs})


def preprocess_xray(cutouts: Sequence[Cutout], xp) -> Prepared:
    """A batch of X-ray cutouts -> (N, 128, 128, 1) float32 model input on ``xp``, plus failures.

    A cutout without a usable EXPOSURE leaves the batch as a failure (``missing_header`` or
    ``bad_exposure``); the others go on.
    """
    usable: list[Cutout] = []
    rejected: list[CutoutFailure] = []
    for cutout in cutouts:
        try:
            _check_exposure(cutout.hdul[0].header)
            cutout = flat_field(cutout)
        except ResampleError as err:
            rejected.append(CutoutFailure(cutout.target, cutout.instrument, err.reason, str(err)))
            continue
        usable.append(cutout)
    prepared = prepare_batch(
        usable, GRID, xp, conserve_flux=True, required_keys=("EXPOSURE",), scale=_scale
    )
    if rejected:  # failures in the batch's order, as prepare_batch reports its own
        position = {id(c.target): i for i, c in enumerate(cutouts)}
        prepared.failures = sorted(
            rejected + prepared.failures, key=lambda f: position.get(id(f.target), len(cutouts))
        )
    return prepared
