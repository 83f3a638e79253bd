"""What the frozen base computes: the extractor, its inputs and the content-addressed store."""
