"""Catalog stage: schema with units, HEALPix-partitioned Parquet, atomic shard writes, queries."""
