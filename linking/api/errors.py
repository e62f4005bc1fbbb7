"""Canvas error bodies for every API failure (placeholder replaced by the API module)."""
