"""A launcher process for tests: starts (or reuses) a llama.cpp server through oi_local, says so on stdout, then
obeys commands read from stdin. Several of these at once play several `interpreter --local` runs.

    python tests/server_launcher.py MODEL HOME MODEL_ID [--fresh]

First line on stdout (JSON): pid, port, api_key, log_path, reused, watchdog_pid. Then, per stdin line:
  chat N   stream a chat completion of at most N tokens; prints {"text", "finish_reason", "chunks"}
  exit     stop this handle (server.stop()) and exit 0
End of input exits the same way through the exit hooks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

from oi_local.machine.paths import app_paths
from oi_local.models.fit import Fit
from oi_local.serving.runners import llamacpp

FIT = Fit(True, 2048, 0, 256, 0, 0, 0, 0, None, "test")


SMOLLM2_END_OF_TURN = "2"  # <|im_end|>


def chat(server, max_tokens: int, *, to_the_limit: bool = False) -> dict:
    """Stream one reply. to_the_limit bans the end-of-turn token, so the reply runs all max_tokens long:
    without it the test model ends its count after about 50 tokens, under a second on a fast machine."""
    ep = server.endpoint
    body = {"model": ep.model_id, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "Count from 1 to 1000, one number per line."}]}
    if to_the_limit:
        body["logit_bias"] = {SMOLLM2_END_OF_TURN: -100}
    text, finish, chunks = [], None, 0
    with httpx.stream("POST", f"{ep.api_base}/chat/completions", json=body, timeout=300,
                      headers={"Authorization": f"Bearer {ep.api_key}"}) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = json.loads(line[6:])["choices"][0]
            chunks += 1
            text.append(choice.get("delta", {}).get("content") or "")
            finish = choice.get("finish_reason") or finish
    return {"text": "".join(text), "finish_reason": finish, "chunks": chunks}


def main() -> None:
    model, home, model_id, *flags = sys.argv[1:]
    server = llamacpp.start(Path(model), FIT, paths=app_paths({"OI_LOCAL_HOME": home}), model_id=model_id,
                            reuse="--fresh" not in flags, progress=False)
    watchdog = server.process.pid if server.process is not None else 0
    print(json.dumps({"pid": server.pid, "port": server.port, "api_key": server.endpoint.api_key,
                      "log_path": str(server.log_path), "reused": server.reused, "watchdog_pid": watchdog}),
          flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "chat":
            print(json.dumps(chat(server, int(rest[0]))), flush=True)
        elif command == "exit":
            server.stop()
            print(json.dumps({"stopped": True}), flush=True)
            return


if __name__ == "__main__":
    main()
