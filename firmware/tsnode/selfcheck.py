"""Node self-check: MicroPython version, free heap, and which firmware modules load.

`run()` prints one "key: value" line per fact (the host's `tinysense demo` shows them) and
returns them as a dict. Importing a module must not start anything, so this is safe to run
while the app is stopped.
"""

import gc
import sys

# The parts DESIGN.md names; anything else found in tsnode/ is checked too.
EXPECTED = ("board", "engine", "uplink", "sensors", "agent", "app")


def _version():
    v = sys.implementation.version
    text = "%d.%d.%d" % v[:3]
    if len(v) > 3 and v[3]:
        text += "-" + v[3]
    mpy = getattr(sys.implementation, "_mpy", 0)
    arch = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
            "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")
    a = (mpy >> 10) & 0x3F
    return "%s on %s (mpy %d.%d, %s)" % (text, sys.platform, mpy & 0xFF, (mpy >> 8) & 3,
                                          arch[a] if a < len(arch) else a)


def _discover():
    # Subpackages and modules actually present next to tsnode/__init__.
    import os

    import tsnode

    names = list(EXPECTED)
    base = tsnode.__file__.rsplit("/", 1)[0] if "/" in tsnode.__file__ else ""
    try:
        for entry in os.ilistdir(base or "."):
            name = entry[0]
            if entry[1] != 0x4000:
                if not (name.endswith(".py") or name.endswith(".mpy")):
                    continue
                name = name.rsplit(".", 1)[0]
            if name not in names and name not in ("__init__", "selfcheck") \
                    and not name.startswith("_"):
                names.append(name)
    except OSError:
        pass
    return names


def check_modules():
    """[("tsnode.<name>", "ok" | "missing" | "error: ...")] for each firmware module."""
    result = []
    for name in _discover():
        full = "tsnode." + name
        try:
            __import__(full)
            status = "ok"
        except ImportError as e:
            # Missing only if the module itself is absent; a broken import inside is an error.
            status = "missing" if full in str(e) or ("'%s'" % name) in str(e) \
                else "error: %r" % (e,)
        except Exception as e:  # noqa: BLE001 (report, do not stop the self-check)
            status = "error: %r" % (e,)
        result.append((full, status))
        gc.collect()
    return result


def run():
    """Print the self-check and return it as a dict (modules: {name: status})."""
    facts = [("micropython", _version())]
    try:
        from tsnode import board

        facts.append(("board", "%s (%s)" % (board.config().get("name", "?"), board.platform)))
    except Exception as e:  # noqa: BLE001
        facts.append(("board", "error: %r" % (e,)))
    modules = check_modules()
    gc.collect()
    facts.append(("heap free", gc.mem_free()))
    facts.append(("heap used", gc.mem_alloc()))
    print("tinysense self-check")
    for key, value in facts:
        print("%s: %s" % (key, value))
    for name, status in modules:
        print("module %s: %s" % (name, status))
    result = dict(facts)
    result["modules"] = dict(modules)
    return result
