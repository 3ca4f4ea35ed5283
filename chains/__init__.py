"""LangServe chains that serve token log-probabilities, and the pure math behind them."""
