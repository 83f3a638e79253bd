"""The accuracy research behind training/defaults.py: searches, explorations and the defaults record."""
