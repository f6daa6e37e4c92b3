"""The rules of the streaming features, free of any engine: deduplication, sessions with a
watermark, dead-letter and late records, per-entity feature state and the reconciliation of
counts. The Bytewax dataflows in ``streaming/`` only wire these together."""
