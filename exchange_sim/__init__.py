"""gridbot: exchange_sim."""
