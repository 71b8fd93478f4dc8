"""Label efficiency of strategies against random, on simulated loops: problems, curves,
statistics and the report."""
