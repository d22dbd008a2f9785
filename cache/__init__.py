"""copilot-bridge caches: exact (embedded SQLite or Redis) and semantic (Qdrant Edge or server)."""
