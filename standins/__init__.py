"""Stand-ins for services no machine here can reach (the Hugging Face Hub, Ollama), speaking their real
protocols to the real client libraries. Used by tests/ (on pytest's pythonpath) and bench/ (as this package)."""
