"""Adapters that connect the library to real API traffic (optional extras)."""
