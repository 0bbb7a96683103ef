"""The code a Python kernel runs once when it starts (sent as text by python.py; never imported here).

It installs the active-line markers (an IPython AST transformer that puts a call to a builtin marker before
each statement, see python.py) and puts the everyday standard modules into builtins. Everything it defines
is deleted again, so the user's namespace starts empty.
"""


def __oi_local_setup(mime, preload):
    import ast
    import builtins
    import collections
    import importlib
    import threading
    import time

    from IPython import get_ipython
    from IPython.display import publish_display_data

    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    state = {"last": None, "highest": 0, "at": 0.0, "parent": None}
    latest = collections.deque([None], maxlen=1)
    running = threading.Event()

    def report(line):
        try:
            if line == state["last"]:
                return
            now = time.monotonic()
            if line <= state["highest"] and now - state["at"] < 0.05:
                return
            first = state["last"] is None
            state["last"], state["at"] = line, now
            state["highest"] = max(state["highest"], line)
            if first and state["parent"] is not None:
                send(line)  # nothing printed yet in this cell: no need for publish's stream flush
            else:
                publish_display_data({mime: {"line": line}})
        except Exception:
            pass

    def send(line):
        kernel.session.send(kernel.iopub_socket, "display_data",
                            {"data": {mime: {"line": line}}, "metadata": {}, "transient": {}},
                            parent=state["parent"])

    def before(*_):
        state.update(last=None, highest=0, at=0.0)
        latest.append(None)
        try:
            state["parent"] = kernel.get_parent("shell")
        except Exception:
            state["parent"] = None
        running.set()

    def after(*_):
        running.clear()

    def watch_loops():
        # Statements inside loops only append their line to a deque (a C call, cheap in tight loops);
        # this thread publishes the latest one every 50 ms while a cell runs.
        while True:
            running.wait()
            time.sleep(0.05)
            line = latest[0]
            if line is None or line == state["last"] or not running.is_set() or state["parent"] is None:
                continue
            state["last"] = line
            try:
                send(line)
            except Exception:
                pass

    builtins.__oi_local_active_line__ = report
    builtins.__oi_local_loop_line__ = latest.append
    shell.events.register("pre_run_cell", before)
    shell.events.register("post_run_cell", after)
    if kernel is not None:
        threading.Thread(target=watch_loops, name="oi-local-active-line", daemon=True).start()

    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    loops = (ast.For, ast.AsyncFor, ast.While)

    class ActiveLines(ast.NodeTransformer):
        def mark(self, body, in_loop):
            marker = "__oi_local_loop_line__" if in_loop and kernel is not None else "__oi_local_active_line__"
            marked = []
            for statement in body:
                if not (isinstance(statement, ast.ImportFrom) and statement.module == "__future__"):
                    call = ast.Expr(ast.Call(ast.Name(marker, ast.Load()), [ast.Constant(statement.lineno)], []))
                    marked.append(ast.copy_location(call, statement))
                if not isinstance(statement, nested):
                    for field in ("body", "orelse", "finalbody"):
                        inner = getattr(statement, field, None)
                        if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                            looping = in_loop or (field == "body" and isinstance(statement, loops))
                            setattr(statement, field, self.mark(inner, looping))
                    for part in getattr(statement, "handlers", []) + getattr(statement, "cases", []):
                        part.body = self.mark(part.body, in_loop)
                marked.append(statement)
            return marked

        def visit_Module(self, node):
            node.body = self.mark(node.body, False)
            return ast.fix_missing_locations(node)

    shell.ast_transformers.append(ActiveLines())

    # Everyday modules, in builtins: no name in the user's namespace, still there after %reset, and any
    # variable or import of the same name shadows them.
    for alias, module_name, attribute in preload:
        try:
            module = importlib.import_module(module_name)
            setattr(builtins, alias, getattr(module, attribute) if attribute else module)
        except Exception:
            pass
    try:
        import sys
        sys.stdout.flush_interval = sys.stderr.flush_interval = 0.05
    except Exception:
        pass
