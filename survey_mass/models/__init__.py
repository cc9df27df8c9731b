"""Keras architectures of the fold ensembles; TensorFlow is loaded quietly before any of them."""

from survey_mass.tensorflow_runtime import import_tensorflow

import_tensorflow()
