"""What the frozen base computes: the extractor, its inputs, the content-addressed store,
and the reader that streams stored features back in batches."""
