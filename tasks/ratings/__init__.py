"""Recommendation cold start: ``user, item, rating`` files, a factor model that folds in a new
user, and which items to ask that user first (``labelwise elicit``; see docs/elicit.md)."""
