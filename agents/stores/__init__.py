"""Redis state of the worker: the key layout, fraud and reco state, signed model checkpoints.

Runtime: the only modules that talk to Redis.
"""
