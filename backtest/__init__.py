"""gridbot: Backtests: the replay driver, the in-process backtest venue, walk-forward."""
