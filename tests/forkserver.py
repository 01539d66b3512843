"""Run the repository's scripts (train.py, sample.py, ...) as the tests need them: each in its own
process, with its exit code, stdout and stderr, as `python script.py args` would give them.

A fresh interpreter costs seconds of CPU before the script does anything (importing torch, and
torch's compiler, which the optimizers import on first use). So one server process imports them
once, for the whole test session, and forks a child per script: the child starts with torch
loaded, runs the script with runpy and exits as Python would (traceback included).
`python tests/forkserver.py` is the server: a JSON [script, args] per line on stdin, a JSON
[exit code, stdout, stderr] per line on stdout.
"""
import atexit
import json
import os
import select
import subprocess
import sys
from collections import namedtuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Result = namedtuple("Result", "returncode stdout stderr")
HANG = 3600  # seconds: a guard against a hung script only, never a speed check (a loaded machine is slow)


def serve():
    import runpy
    import tempfile
    os.chdir(ROOT)
    sys.path.insert(0, ROOT)
    import torch._dynamo  # noqa: F401  what the optimizers import on first use
    import checkpoint, data.batches, data.shapes.prepare, evaluate, stage0, tqdm  # noqa: F401, E401
    for line in sys.stdin:
        script, args = json.loads(line)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # stdin is the server's request pipe
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.argv, code = [script] + args, 0
                try:
                    runpy.run_path(script, run_name="__main__")
                except SystemExit as e:  # what the interpreter does with it
                    code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
                    if not isinstance(e.code, (int, type(None))):
                        print(e.code, file=sys.stderr)
                except BaseException:
                    sys.excepthook(*sys.exc_info())  # as the interpreter does: a script may set its own
                    code = 1
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            out.seek(0)
            err.seek(0)
            result = [os.waitstatus_to_exitcode(status), out.read().decode(errors="replace"),
                      err.read().decode(errors="replace")]
        print(json.dumps(result), flush=True)


_server = None


def run(script, *args):
    """`python script *args` in ROOT with one thread -> Result(returncode, stdout, stderr)."""
    global _server
    if _server is None or _server.poll() is not None:
        _server = subprocess.Popen([sys.executable, os.path.abspath(__file__)], cwd=ROOT, text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   env=dict(os.environ, OMP_NUM_THREADS="1"))
        atexit.register(_server.kill)
    _server.stdin.write(json.dumps([script, [str(a) for a in args]]) + "\n")
    _server.stdin.flush()
    if not select.select([_server.stdout], [], [], HANG)[0]:
        _server.kill()
        raise AssertionError(f"{script} {args} did not finish in {HANG} s")
    line = _server.stdout.readline()
    assert line, f"the test fork server died running {script} {args}"
    return Result(*json.loads(line))


def run_all(cases):
    """cases: [(script, [args])] -> [Result], one after the other."""
    return [run(script, *args) for script, args in cases]


if __name__ == "__main__":
    serve()
