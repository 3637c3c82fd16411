"""Training data: sequence datasets, the pseudo-ground-truth flow cache and procedural synthetic scenes.

Submodules are imported on use so that, e.g., writing synthetic data does not import torch:
`synthetic` (generator), `folders` (dataset folder layout), `flow` (DIS flow cache), `datasets` (torch).
"""
