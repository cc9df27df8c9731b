"""Inference: fold ensembles loaded once per worker, predicting mass and uncertainty."""
