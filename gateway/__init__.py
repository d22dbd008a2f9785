"""copilot-bridge gateway: OpenAI- and Ollama-compatible HTTP API, routing and accounting."""
