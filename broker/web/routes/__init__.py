"""Thin handlers, one module per surface; the work lives in the rooms they call."""
