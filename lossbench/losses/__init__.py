"""Loss library (SPEC section 4)."""
