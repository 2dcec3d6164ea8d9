"""What campaigns achieved: experiment results and the figures behind them."""
