"""gridbot: models."""
