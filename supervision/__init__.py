"""gridbot: supervision."""
