"""Jobs served from request topics (backtest now; optimizer and export to come)."""
