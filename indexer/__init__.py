"""copilot-bridge: indexer package."""
