"""A live session's life on every surface: created within every limit, found, finished, deleted."""
