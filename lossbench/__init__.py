"""lossbench: benchmark training losses for imbalanced tabular classification."""

__version__ = "0.1.0"
