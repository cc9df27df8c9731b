"""Preprocessing: cutouts -> model-grid batches on ``xp`` (CuPy or NumPy), one function per instrument."""

from survey_mass.preprocess.xray import preprocess_xray

#: instrument -> preprocess(cutouts, xp) -> Prepared
PREPROCESSORS = {"xray": preprocess_xray}
