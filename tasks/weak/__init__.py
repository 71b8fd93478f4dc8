"""Weak supervision: labeling functions, label models, their report and the round's weak labels."""
