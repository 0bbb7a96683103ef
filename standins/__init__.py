"""What tests/ and bench/ share (bench/ imports nothing from tests/): stand-ins for services no machine here
can reach (the Hugging Face Hub, Ollama), speaking their real protocols to the real client libraries, and a
llama.cpp server started by hand (raw_llama). tests/ finds them on pytest's pythonpath; bench/ as this package."""
