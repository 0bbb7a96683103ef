"""JavaScript: one persistent node process, so globals, functions and `let`/`const` carry over between runs.

node runs a small driver that reads one JSON line per run from a private command pipe, runs the code with
`vm.runInThisContext` (file name `code.js`, so stack traces give the user's line numbers), awaits a
returned promise, prints the value of the last expression like the node REPL does, and writes `D` to a
private control pipe. stdout and stderr share one pipe, so their order is kept. stdin is /dev/null: a
script that reads it sees end-of-file at once instead of hanging. stop() sends SIGINT, which the driver
turns into an exception in the running code (`breakOnSigint`); if node has not finished 2 s later it is
replaced and the model told that its state is gone.
"""

from __future__ import annotations

import codecs
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Generator, Iterator

from oi_local.computer.languages.base import (
    active_line,
    find_runtime,
    missing_runtime,
    output,
    run_timeout,
    timeout_message,
)
from oi_local.computer.languages.piped_process import (
    PipedLanguage,
    Rung,
    StopLadder,
    final_output,
    read_available,
    send_signal,
)
from oi_local.env import TIMEOUTS

STOP_GRACE = 2 * TIMEOUTS.code_stop_step  # after SIGINT, then node is replaced

_DRIVER = r"""
const vm = require('vm'), fs = require('fs'), util = require('util'), readline = require('readline');
const [commandFd, controlFd] = process.env.OI_LOCAL_FDS.split(' ').map(Number);
delete process.env.OI_LOCAL_FDS;
process.on('SIGINT', () => {});
const ours = /node:vm|node:internal|\[eval\]|sigintHandlersWrap/;
const describe = (e) => ((e && e.stack) || String(e)).split('\n').filter((l) => !ours.test(l)).join('\n') + '\n';
process.on('uncaughtException', (e) => process.stderr.write(describe(e)));
process.on('unhandledRejection', (e) => process.stderr.write(describe(e)));
const lines = readline.createInterface({ input: fs.createReadStream(null, { fd: commandFd }) });
let queue = Promise.resolve();
lines.on('line', (line) => { queue = queue.then(() => runCell(JSON.parse(line))); });
lines.on('close', () => process.exit(0));
async function runCell(code) {
  try {
    let value;
    try {
      value = vm.runInThisContext(code, { filename: 'code.js', breakOnSigint: true });
    } catch (e) {
      // Top-level await: run the code as an async function (same line numbers; its declarations stay local).
      if (!(e instanceof SyntaxError && /await is only valid/.test(e.message))) throw e;
      value = vm.runInThisContext('(async () => { ' + code + '\n})()', { filename: 'code.js', breakOnSigint: true });
    }
    if (value && typeof value.then === 'function') value = await value;
    if (value !== undefined) process.stdout.write(util.inspect(value) + '\n');
  } catch (e) {
    process.stderr.write(describe(e));
  }
  fs.writeSync(controlFd, 'D\n');
}
"""


class JavaScript(PipedLanguage):
    name = "javascript"
    aliases = ("js", "node", "nodejs")
    executables = ("node", "nodejs")

    def run(self, code: str) -> Iterator[dict]:
        node = find_runtime(self.executables)
        if node is None:
            yield output(missing_runtime("JavaScript", self.executables, "Install Node.js to run it."))
            return
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start(node)
        yield from self._run(code)

    def _start(self, node: str) -> None:
        self._kill()
        self._start_process(lambda command_fd, control_fd: [node, "-e", _DRIVER], dict(os.environ))

    def _run(self, code: str) -> Iterator[dict]:
        process = self._process
        assert process is not None
        self._stop_requested.clear()
        self._running = True
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        finished = False
        try:
            try:
                os.write(self._command_fd, (json.dumps(code) + "\n").encode())
            except OSError:
                pass  # node is gone: reported below
            done = yield from self._follow(process, decoder)
            if done:
                yield from final_output(process.stdout.fileno(), decoder)
            finished = True
            yield active_line(None)
        finally:
            self._running = False
            if not finished and self._process is process:
                # The consumer stopped reading mid-run: the code may go on, so replace node.
                self._kill()

    def _follow(self, process: subprocess.Popen, decoder: codecs.IncrementalDecoder) -> Generator[dict, None, bool]:
        """Pass the run's output on until node reports the run done (True), or exits or is replaced (False)."""
        limit = run_timeout(self.computer)
        started = time.monotonic()
        ladder = StopLadder([Rung(0.0, lambda: send_signal(process.pid, signal.SIGINT))], give_up_after=STOP_GRACE)
        stdout_fd = process.stdout.fileno()
        while True:
            readable, _, _ = select.select([stdout_fd, self._control_fd], [], [], 0.25)
            if stdout_fd in readable:
                text = decoder.decode(read_available(stdout_fd))
                if text:
                    yield output(text)
            if self._control_fd in readable and b"D" in read_available(self._control_fd):
                return True
            if process.poll() is not None:
                yield from final_output(stdout_fd, decoder)
                yield output(
                    f"\n[node exited with code {process.returncode}. The next run starts a new node: "
                    "variables from earlier runs are gone.]\n"
                )
                self._kill()
                return False
            now = time.monotonic()
            if not ladder.started:
                if limit is not None and now - started > limit:
                    yield output(timeout_message(limit))
                    self._stop_requested.set()
                if self._stop_requested.is_set():
                    ladder.start(now)
            elif ladder.climb(now):
                self._kill()
                yield output(
                    "\n[node did not stop when interrupted, so it was replaced: variables from earlier runs "
                    "are gone.]\n"
                )
                return False
