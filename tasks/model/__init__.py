"""Models: building and fitting them, holdout metrics, the champion/challenger registry and
monitoring of the champion."""
