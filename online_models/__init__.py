"""River-based online models: the fraud scorer (classifier + anomaly score + rules) and the decision engine."""
