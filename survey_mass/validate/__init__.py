"""Validation: metrics per redshift bin, report plots, and the HTML + JSON report."""
