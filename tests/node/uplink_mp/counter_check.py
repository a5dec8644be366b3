"""Node driver: counter store scenarios in the directory argv[1]; asserts, prints OK lines."""

import os
import sys

from tsnode.uplink.counter import CounterError, CounterStore, _pack, key_check

root = sys.argv[1]
K1 = bytes(range(16))
K2 = bytes(range(1, 17))


def fresh(name):
    d = root + "/" + name
    os.mkdir(d)
    return d


def refuses(fn):
    try:
        fn()
    except CounterError:
        return True
    return False


# 1. no state -> refuse; create; 150 takes with block 64 = 3 writes; reboot resumes at 192
d = fresh("basic")
st = CounterStore(d, 64)
assert refuses(lambda: st.open(K1))
st.create(K1)
c = st.open(K1)
got = [c.take() for _ in range(150)]
assert got == list(range(150)), got[:5]
assert c.writes == 3 and c.boot == 1, (c.writes, c.boot)
c2 = CounterStore(d, 64).open(K1)
assert c2.boot == 2 and c2.take() == 192 and c2.writes == 1
assert refuses(lambda: st.create(K1))  # never reset the same key's state
print("OK basic")

# 2. the newest slot damaged -> resume past anything it could have reserved
d = fresh("damaged")
st = CounterStore(d, 64)
st.create(K1)
c = st.open(K1)
used = [c.take() for _ in range(130)]  # limits 64, 128, 192 written alternately
newest = st.newest(key_check(K1))
with open(st.paths[newest[0]], "r+b") as f:
    f.seek(10)
    f.write(b"\xff")
c = CounterStore(d, 64).open(K1)
first = c.take()
assert c.damaged and first > max(used) and first >= 128 + 65536, first
print("OK damaged")

# 3. both slots corrupt -> refuse (never guess)
d = fresh("both")
st = CounterStore(d, 8)
st.create(K1)
c = st.open(K1)
for _ in range(20):
    c.take()
for p in st.paths:
    with open(p, "wb") as f:
        f.write(b"TSC1" + bytes(20))
assert refuses(lambda: CounterStore(d, 8).open(K1))
print("OK both_corrupt")

# 4. state of another key is not ours; a new key starts at 0 and outranks the old record
d = fresh("rotate")
st = CounterStore(d, 4)
st.create(K1)
c = st.open(K1)
for _ in range(10):
    c.take()
assert refuses(lambda: st.open(K2))
st.create(K2)
c = st.open(K2)
assert c.take() == 0
assert refuses(lambda: st.open(K1))  # the old key's record was the one overwritten
print("OK rotate")

# 5. a complete .tmp record (cut between write and rename) is honoured
d = fresh("tmp")
st = CounterStore(d, 16)
st.create(K1)
with open(st.paths[1] + ".tmp", "wb") as f:
    f.write(_pack(9, 5000, 3, key_check(K1)))
c = CounterStore(d, 16).open(K1)
assert c.take() == 5000 and c.boot == 4
print("OK tmp")

# 6. exhaustion at 2^32 - 1, limit never beyond it
d = fresh("exhaust")
st = CounterStore(d, 64)
st.write(0, 1, 0xFFFFFFF0, 0, key_check(K1))
c = st.open(K1)
got = [c.take() for _ in range(15)]
assert got[-1] == 0xFFFFFFFE, hex(got[-1])
assert refuses(c.take)
print("OK exhaust")
