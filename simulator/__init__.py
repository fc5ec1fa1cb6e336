"""The simulated store: signed platform traffic and provider engagement, for the demo, the
tests, the benchmarks and (later) as ground truth for the models. See ``simulator.store``."""
