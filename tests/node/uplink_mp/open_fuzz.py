"""Node driver: throw argv[2] random and mutated frames at Codec.open (key/frame in argv[1]
as hex "key:frame"); print counts. Only FrameError may come out; no mutation may open."""

import random
import sys

from tsnode.uplink.frame import Codec, FrameError

key_hex, frame_hex = sys.argv[1].split(":")
good = bytes.fromhex(frame_hex)
codec = Codec(bytes.fromhex(key_hex), 0)
n = int(sys.argv[2])
random.seed(int(sys.argv[3]))
accepted = 0
rejected = 0
reasons = {}
for i in range(n):
    kind = i % 4
    if kind == 0:  # random bytes of a random length
        frame = bytes(random.getrandbits(8) for _ in range(random.getrandbits(11) % 1100))
    else:
        b = bytearray(good)
        for _ in range(1 + random.getrandbits(3)):
            op = random.getrandbits(2)
            if op == 0 and b:
                b[random.getrandbits(16) % len(b)] ^= 1 << random.getrandbits(3)
            elif op == 1 and b:
                b = b[:random.getrandbits(16) % len(b)]
            elif op == 2:
                b.append(random.getrandbits(8))
            elif b:
                j = random.getrandbits(16) % len(b)
                b[j] = random.getrandbits(8)
        frame = bytes(b)
    try:
        codec.open(frame)
        if frame != good:
            accepted += 1
    except FrameError as e:
        rejected += 1
        reasons[e.reason] = reasons.get(e.reason, 0) + 1
print("accepted", accepted, "rejected", rejected)
print(" ".join(sorted(reasons)))
