"""The cluster engine: what runs on Ray (connection, feature extraction, remote work, batch scoring)."""
