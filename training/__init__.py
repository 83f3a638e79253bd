"""Transfer learning: data -> frozen-base features -> dense head -> versioned SavedModel.

The story of `fit` sits at this package's root (data, model, fit, export, gate,
config, cli); its families are sub-packages: `features` (what the frozen base
computes, and the store that keeps it), `cluster` (the same work on Ray) and
`reports` (model card, plots, listing). Run it with `python -m training --help`.
"""
