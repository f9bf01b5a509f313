"""labkit: a Jupyter course lab kit for semantic segmentation with PyTorch.

The notebooks import what they need from the subpackages: :mod:`labkit.data` (datasets,
transforms, the Shapes generator), :mod:`labkit.metrics`, :mod:`labkit.losses`,
:mod:`labkit.schedules`, :mod:`labkit.models`, :mod:`labkit.train` and :mod:`labkit.viz`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
