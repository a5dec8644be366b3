"""Node driver: run CCM seal/open on the cases in argv[1] (JSON); print one line per case."""

import json
import sys

from tsnode.uplink import ccm
from tsnode.uplink.ccm import CCM

if len(sys.argv) > 2 and sys.argv[2] == "nochain":
    # Simulate a port whose CBC object restarts from its IV on every call.
    import cryptolib

    class _NoChain:
        def __init__(self, key, mode, iv=None):
            self.key, self.mode, self.iv = key, mode, iv
            self.ecb = cryptolib.aes(key, mode) if mode == 1 else None

        def encrypt(self, src, dst):
            if self.ecb:
                return self.ecb.encrypt(src, dst)
            return cryptolib.aes(self.key, self.mode, self.iv).encrypt(src, dst)

    class _Mod:
        aes = _NoChain

    ccm.cryptolib = _Mod

with open(sys.argv[1]) as f:
    groups = json.load(f)
for g in groups:
    c = CCM(bytes.fromhex(g["key"]), g["m"], g["nlen"], g["max_len"], g["max_aad"])
    for case in g["cases"]:
        nonce = bytes.fromhex(case["nonce"])
        aad = bytes.fromhex(case["aad"])
        sealed = c.seal(nonce, aad, bytes.fromhex(case["pt"]))
        opened = c.open(nonce, aad, bytes.fromhex(case["expect"]))
        forged = [c.open(nonce, aad, bytes.fromhex(t)) for t in case.get("tampered", [])]
        bad_aad = [c.open(nonce, bytes.fromhex(a), bytes.fromhex(case["expect"]))
                   for a in case.get("tampered_aad", [])]
        print(sealed.hex(), "-" if opened is None else "p" + opened.hex(),
              "".join("1" if x is None else "0" for x in forged + bad_aad) or "_")
