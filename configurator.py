"""
A tiny configurator, after nanoGPT's: `script.py [config/file.py] [--key=value ...]`.

The caller's defaults are plain variables; a config file (Python, from the repo) sets some,
then `--key=value` overrides them. Values on the command line are parsed as Python
literals (ast.literal_eval: numbers, strings, lists, None...), never executed. A key the
script does not define, or a value of the wrong type, is an error that lists the valid keys.
"""
import ast
import os
import sys


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


def configure_or_exit(config, argv, script):
    """configure(), but a bad argument ends the program with one line: '<script>: <what was wrong>'."""
    try:
        return configure(config, argv)
    except ValueError as e:
        sys.exit(f"{script}: {e}")
