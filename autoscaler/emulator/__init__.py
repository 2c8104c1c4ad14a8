"""A vLLM-compatible engine emulator: the engine model driven in real time behind vLLM's APIs."""
