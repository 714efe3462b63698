"""Operator commands: produce, tail, evaluate, models. Tooling: no worker module imports these."""
