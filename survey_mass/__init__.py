"""survey-mass: galaxy-cluster mass catalogs from survey cutouts with CNN fold ensembles.

The data's way: targets -> sources -> preprocess -> infer -> catalog -> crossmatch -> validate.
"""

__version__ = "0.1.0"
