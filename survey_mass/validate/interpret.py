"""Interpretation maps: where in an image the X-ray ensemble looks when it weighs a cluster.

As in Ntampaka et al. (2019, Sec. 5), the input gradient of the predicted log mass, taken as one
small DeepDream-like step, shows which pixels would raise the mass; its radial profile in units of
R500 (dN/N per annulus, drawn by the report) says whether the model uses the core or the outskirts.
Maps are made for runs on the mock survey, whose cutouts can be re-made from the provenance.
"""

from __future__ import annotations

import json

import numpy as np
from astropy import units as u
from pydantic import ValidationError

from survey_mass.catalog.paths import CatalogLayout
from survey_mass.catalog.reader import read_mass_catalog
from survey_mass.constants import XRAY_APERTURE, XRAY_GRID
from survey_mass.infer.ensemble import FoldEnsemble
from survey_mass.physics.cosmology import r500_mpc
from survey_mass.preprocess import PREPROCESSORS
from survey_mass.sources import build_source
from survey_mass.sources.base import Cutout, Target
from survey_mass.spec.job import JobSpec
from survey_mass.validate.report import InterpretationMap

STEP = 0.05  # size of the gradient step, as a fraction of the image's peak


def input_gradients(ensemble: FoldEnsemble, inputs: np.ndarray) -> np.ndarray:
    """d(mean member log10 M)/d(input), shape of ``inputs``."""
    from survey_mass.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()

    x = tf.convert_to_tensor(inputs)
    with tf.GradientTape() as tape:
        tape.watch(x)
        mass = tf.add_n([model(x, training=False)[:, 0] for model, *_ in ensemble.members])
        mass = mass / len(ensemble.members)
    return tape.gradient(mass, x).numpy()


def xray_maps(catalog_url: str, n: int = 3) -> list[InterpretationMap]:
    """Maps for the ``n`` most massive X-ray-weighed clusters of a mock run (none for real runs)."""
    layout = CatalogLayout(catalog_url)
    provenance = json.loads(layout.fs.cat_file(layout.provenance))
    try:
        spec = JobSpec.model_validate(provenance["job"])
        model_path = provenance["models"]["xray"]["path"]
    except (KeyError, ValidationError):  # not a run of this pipeline, or not weighed in X-ray
        return []
    if spec.source.kind != "mock":
        return []
    cat = read_mass_catalog(catalog_url)
    cat = cat.dropna(subset=["logm500_xray"]).nlargest(n, "logm500_xray")
    if cat.empty:
        return []
    ensemble = FoldEnsemble(model_path)
    targets = [Target(r.target_id, r.ra, r.dec, r.z) for r in cat.itertuples()]
    cutouts = [c for c in build_source(spec).cutouts(targets, "xray") if isinstance(c, Cutout)]
    prepared = PREPROCESSORS[ensemble.preprocessing](cutouts, np)
    inputs = np.asarray(prepared.inputs)
    grads = input_gradients(ensemble, inputs)
    rows = cat.set_index("target_id").loc[[c.target.target_id for c in prepared.cutouts]]
    pixel_mpc = XRAY_APERTURE.to_value(u.Mpc) / XRAY_GRID
    maps = []
    for i, (target_id, row) in enumerate(rows.iterrows()):
        image, grad = inputs[i, ..., 0], grads[i, ..., 0]
        change = STEP * np.abs(image).max() * grad / max(np.abs(grad).max(), 1e-12)
        r500_pix = float(r500_mpc(row["logm500_xray"], row["z"])) / pixel_mpc
        maps.append(InterpretationMap(str(target_id), image, change, r500_pix))
    return maps
