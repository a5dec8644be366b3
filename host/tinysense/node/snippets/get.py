# Print the file _PATH as base64 lines (1536 bytes each); the host joins and decodes them.
# Runs on the node in one exec; one preallocated buffer, so any file size fits in the heap.
# ruff: noqa: F821 (helpers are deleted from the REPL's globals at the end; params are prepended)
import binascii


def _tsg_main(path):
    buf = bytearray(1536)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            print(binascii.b2a_base64(mv[:n]).decode(), end="")


_tsg_main(_PATH)
del _tsg_main, _PATH
