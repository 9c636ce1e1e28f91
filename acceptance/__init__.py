"""gridbot: Milestone-1 acceptance checks against a venue (``python run.py acceptance``)."""
