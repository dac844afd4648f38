"""Data layer: load, preset, split, scale, cache (SPEC section 2)."""
