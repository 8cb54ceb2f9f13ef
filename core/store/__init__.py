"""core/store package."""
