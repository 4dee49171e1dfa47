"""Usage records and daily rollups (filled in by the usage work)."""
