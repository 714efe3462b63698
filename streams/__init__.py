"""Windowed feature computation (pure folds over event time) and the stream topology (app factory, topics)."""
