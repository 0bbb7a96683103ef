"""Models before they run: the catalog, GGUF headers, the memory fit, and the store that gets files onto disk."""
