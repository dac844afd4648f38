"""Metrics (SPEC section 5)."""
