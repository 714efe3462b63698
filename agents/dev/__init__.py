"""The embedded development stack: broker, Redis, worker processes, the live dashboard. Tooling."""
