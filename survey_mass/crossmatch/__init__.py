"""Crossmatch: external catalog readers, sky + redshift matching, partition-wise with margins."""
