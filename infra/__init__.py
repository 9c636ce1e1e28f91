"""gridbot: infrastructure below the actors: state store, JSON logging, config loading and
credentials, the clock, command-line value parsing."""
