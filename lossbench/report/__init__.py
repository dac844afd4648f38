"""Tables, plots and the report page (SPEC section 6)."""
