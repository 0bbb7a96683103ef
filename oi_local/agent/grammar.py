"""GBNF grammars for the reply envelope (constrained decoding on llama.cpp-family servers: llama-cpp-python's
server, llama.cpp's llama-server and llamafile take a `grammar` field in the request body).

Only the envelope is constrained: the reply is exactly one fenced code block in one of the given languages;
what the code says is the model's own.
"""

from __future__ import annotations


def code_block(languages: tuple[str, ...] = ("python", "shell")) -> str:
    """One markdown code block in one of `languages`, and nothing after it."""
    names = " | ".join(f'"{name}"' for name in languages)
    return "\n".join([
        'root ::= "```" lang "\\n" line+ "```"',
        f"lang ::= {names}",
        "line ::= [^`\\n]* \"\\n\"",
    ])
