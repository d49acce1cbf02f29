"""drmoe-repro: a reproducibility suite for Dynamic Routing Mixture of Experts (DR-MoE)."""

__version__ = "0.1.0"
