"""Preprocessing: cutouts -> model-grid batches on ``xp`` (CuPy or NumPy).

Each zoo manifest names the preprocessing its models were trained on; this table maps that name to
the function, so a model never sees inputs prepared another way.
"""

from survey_mass.preprocess import optical, sz, xray

#: manifest "preprocessing" -> preprocess(cutouts, xp) -> Prepared
PREPROCESSORS = {
    xray.VERSION: xray.preprocess_xray,
    sz.VERSION: sz.preprocess_sz,
    "deepplanck-standardise-v1": sz.preprocess_sz,  # raw y; the members standardise per z bin
    optical.VERSION: optical.preprocess_optical,
}
#: the preprocessing used to train new ensembles of each instrument
TRAINING_PREPROCESSING = {"xray": xray.VERSION, "sz": sz.VERSION, "optical": optical.VERSION}
