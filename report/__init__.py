"""gridbot: Performance report: collector, analysis, HTML and charts."""
