"""Command-line tools (absl flags), each with a run() entry for its console script."""
