"""The active-learning loop as plain, resumable steps: round and loop state, the labeling half
(ingest, select, dispatch, collect), the learning half (train, evaluate, monitor, version),
stopping rules, the demo project and the simulator the benchmarks use."""
