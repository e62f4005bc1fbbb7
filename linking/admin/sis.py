"""Admin: sis."""
