"""The Faust agents and the processes around them (worker, embedded stack, simulator, CLI).

The only package that touches the Faust app and Redis together. Nothing imports it.
"""
