"""gridbot: actors."""
