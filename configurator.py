"""
A tiny configurator, after nanoGPT's: `script.py [config/file.py] [--key=value ...]`.

The caller's defaults are plain variables; a config file (Python, from the repo) sets some,
then `--key=value` overrides them. Values on the command line are parsed as Python
literals (ast.literal_eval: numbers, strings, lists, None...), never executed. A key the
script does not define, or a value of the wrong type, is an error that lists the valid keys.
`-h` / `--help` prints the script's docstring and its keys (see usage()).
"""
import ast
import io
import os
import sys
import tokenize


def _check(config, key, value, where):
    if key not in config:
        raise ValueError(f"unknown config key {key!r} ({where}); valid keys: {', '.join(sorted(config))}")
    old = config[key]
    if old is None or type(value) is type(old):
        return value
    if value is None:
        raise ValueError(f"config key {key!r} ({where}) cannot be None: give a {type(old).__name__}, like the default {old!r}")
    if type(old) is float and type(value) is int:
        return float(value)
    if type(old) in (list, tuple) and type(value) in (list, tuple):
        return type(old)(value)
    raise ValueError(f"config key {key!r} ({where}) must be {type(old).__name__}, got {value!r}")


def configure(config, argv):
    """config: dict of defaults, updated in place from argv (a list of strings). Returns config."""
    for arg in argv:
        if not arg.startswith("--"):
            if not os.path.isfile(arg):
                raise ValueError(f"config file {arg!r} not found (give a path such as config/shapes_cpu.py)")
            ns = {"__file__": arg}  # so that a config can build on another one next to it
            try:
                exec(compile(open(arg).read(), arg, "exec"), ns)  # config files are code from the repo
            except Exception as e:  # SyntaxError, NameError...: where, and what
                line = getattr(e, "lineno", None) or (e.__traceback__.tb_next.tb_lineno if e.__traceback__.tb_next else "?")
                raise ValueError(f"config file {arg} line {line}: {type(e).__name__}: {getattr(e, 'msg', e)}; fix the file") from None
            for key, value in ns.items():
                if not key.startswith("_") and not callable(value) and type(value).__name__ != "module":
                    config[key] = _check(config, key, value, arg)
        else:
            key, eq, text = arg[2:].partition("=")
            if not eq:
                raise ValueError(f"expected --key=value, got {arg!r}")
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text  # a bare word is a string: --fusion=concat
            config[key] = _check(config, key, value, arg)
    return config


def usage(config, source, config_files=()):
    """The --help text, generated from the script's own source text so that it cannot drift: the
    module docstring, then every key of config with its default and the comment written next to
    it (`key = default  # comment`, or `"key": default,  # comment` in a dict), under the comment
    lines that head its group. config_files: what each of them sets is shown next to the key."""
    text = open(source).read()
    tree = ast.parse(text)
    comments, alone = {}, {}  # line -> comment; lines that hold nothing but a comment
    for t in tokenize.generate_tokens(io.StringIO(text).readline):
        if t.type == tokenize.COMMENT:
            comment = t.string.lstrip("#").strip()
            (alone if not t.line[:t.start[1]].strip() else comments)[t.start[0]] = comment
    where = {}  # key -> the line that defines it; module level and `if` blocks, not functions
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.If):
            todo += node.body + node.orelse
            continue
        if isinstance(node, ast.Assign):
            names = [e for t in node.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
            for n in names:
                if isinstance(n, ast.Name):
                    where.setdefault(n.id, node.end_lineno)
        for d in ast.walk(node) if isinstance(node, (ast.Assign, ast.Expr)) else ():
            if isinstance(d, ast.Dict):
                for k, v in zip(d.keys, d.values):
                    if isinstance(k, ast.Constant) and isinstance(k.value, str):
                        where.setdefault(k.value, v.end_lineno)
    set_by, now = {}, dict(config)
    for f in config_files:  # in order: a later file wins, as in configure()
        after = configure(dict(now), [f])
        set_by.update({k: (os.path.relpath(f), v) for k, v in after.items() if v != now[k]})
        now = after
    lines = [(ast.get_docstring(tree) or "").strip(), ""]
    if set_by:
        files = ", ".join(sorted({f for f, _ in set_by.values()}))
        lines += [f"Keys and defaults; [{files} sets ...] marks a default that file overrides.", ""]
    else:
        lines += ["Keys and defaults:", ""]
    last = min([where[k] for k in config if k in where], default=1) - 1
    while last in alone:  # the comment block just above the first key heads the list
        last -= 1
    for key in config:
        line = where.get(key)
        if line is not None:
            for h in range(last + 1, line):
                if h in alone and alone[h].strip("-= "):
                    lines.append(f"  # {alone[h]}")
            last = max(last, line)
        entry = f"{f'  --{key}={config[key]!r}':<40} {comments.get(line, '')}".rstrip()
        if key in set_by:
            entry += f"  [{set_by[key][0]} sets {set_by[key][1]!r}]"
        lines.append(entry)
    return "\n".join(lines)


def check_ranges(config, script, at_least_1="", at_least_0="", positive="", fraction="", open_fraction=""):
    """A number out of its range ends the program with one line, before any work: each argument is
    a space-separated list of keys (fraction: 0..1; open_fraction: strictly between 0 and 1)."""
    rules = [(at_least_1, lambda v: v >= 1, "must be >= 1"), (at_least_0, lambda v: v >= 0, "must be >= 0"),
             (positive, lambda v: v > 0, "must be > 0"), (fraction, lambda v: 0 <= v <= 1, "must be between 0 and 1"),
             (open_fraction, lambda v: 0 < v < 1, "must be between 0 and 1 (exclusive)")]
    for keys, ok, what in rules:
        for k in keys.split():
            if not ok(config[k]):  # NaN fails every rule
                sys.exit(f"{script}: {k}={config[k]} {what}")


def configure_or_exit(config, argv, script, source=None):
    """configure(), but a bad argument ends the program with one line: '<script>: <what was wrong>',
    and -h/--help prints usage() and exits 0. source: the script's file (default: the caller's)."""
    if "-h" in argv or "--help" in argv:
        source = source or sys._getframe(1).f_code.co_filename
        files = [a for a in argv if not a.startswith("-")]
        try:
            print(usage(config, source, files))
        except ValueError as e:
            sys.exit(f"{script}: {e}")
        sys.exit(0)
    try:
        return configure(config, argv)
    except ValueError as e:
        sys.exit(f"{script}: {e}")
