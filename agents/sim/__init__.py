"""Traffic simulators (payments and shopping). Tooling: for `streamsense dev`, tests and benchmarks."""
