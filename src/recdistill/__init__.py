"""recdistill: knowledge distillation of top-K recommenders (BD, DCD, RD, CD, RRD)."""

__version__ = "0.1.0"
