"""What a published version is described by: its model card, plots and the listing of versions."""
