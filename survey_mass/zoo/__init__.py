"""The model zoo: shipped entries (the folders beside this file), manifests and the registry.

``registry.resolve_models`` turns a job's ``[models]`` table into a :class:`~registry.ModelSet`:
every entry found, its manifest read and its files hash-checked once, the joint entry chosen. The
rest of the run (job identity, workers, provenance) takes what it needs from that one object.
"""
