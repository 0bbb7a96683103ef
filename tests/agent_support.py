"""Support for the agent's tests: recording real replies of the test model as parser fixtures.

Run `python tests/agent_support.py http://127.0.0.1:PORT/v1` against a llama.cpp server with the test model
to (re)record tests/fixtures/replies/model_*.txt (the replies the fence parser's property test splits).
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

REPLIES = Path(__file__).parent / "fixtures" / "replies"

RECORD_PROMPTS = [
    "What is 17 * 23?",
    "List the files in the current directory.",
    "Print the contents of the file notes.txt",
    "Write a python function that reverses a string, and a shell command that counts lines in a file.",
    "Show me how to print hello world in bash and in javascript.",
    "Explain what a markdown code block is, with an example.",
    "Create a file named hello.txt containing hello world.",
    "What is the current date? Use code.",
]


def record(api_base: str, api_key: str | None = None) -> list[Path]:
    from oi_local.agent.templates import LOCAL_DEFAULT

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    written = []
    for index, prompt in enumerate(RECORD_PROMPTS):
        for temperature in (0.0, 0.8):
            body = {
                "model": "x",
                "temperature": temperature,
                "seed": 7,
                "max_tokens": 300,
                "messages": [
                    {"role": "system", "content": LOCAL_DEFAULT.system_message},
                    {"role": "user", "content": prompt},
                ],
            }
            reply = httpx.post(f"{api_base}/chat/completions", json=body, headers=headers, timeout=120)
            reply.raise_for_status()
            path = REPLIES / f"model_{index:02d}_t{int(temperature * 10)}.txt"
            path.write_text(reply.json()["choices"][0]["message"]["content"], encoding="utf-8")
            written.append(path)
    return written


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for path in record(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None):
        print(path)
