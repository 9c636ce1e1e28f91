"""gridbot: bench."""
