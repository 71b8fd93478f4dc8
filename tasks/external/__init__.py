"""Inputs made outside labelwise: the user's own model predictions, read in chunks and ranked."""
