"""AES-CCM (RFC 3610, NIST SP 800-38C) built only on cryptolib's ECB (1) and CBC (2) modes.

Stock ESP32 MicroPython has no CTR mode, so the CTR keystream is made by ECB-encrypting a
buffer of counter blocks A_0..A_k in ONE call, and the CBC-MAC is ONE CBC call over the
formatted blocks B_0..B_r. Each seal/open is therefore two C calls into (hardware) AES
plus a few viper loops; Python-level per-block work is avoided.

Memory: every buffer is allocated in __init__ (about 4 x (max_len + max_aad + 48) bytes).
The CBC object is created once and never reset: CBC-MAC with IV = V over B_0.. equals
CBC-MAC with IV = 0 over (B_0 xor V)..., so V (the previous call's last output block) is
folded into B_0. The memoryview slices handed to cryptolib are cached per size, so
seal_into allocates nothing once a size has been seen; open_into allocates one view (the
received tag).
"""

# ruff: noqa: F821  (ptr8 is a viper built-in type, unknown to ruff)
import cryptolib
import micropython
from micropython import const

_ECB = const(1)
_CBC = const(2)


@micropython.viper
def _copy(dst: ptr8, off: int, src: ptr8, n: int):
    i = 0
    while i < n:
        dst[off + i] = src[i]
        i += 1


@micropython.viper
def _zero(dst: ptr8, off: int, n: int):
    i = 0
    while i < n:
        dst[off + i] = 0
        i += 1


@micropython.viper
def _xor(dst: ptr8, a: ptr8, b: ptr8, n: int):
    i = 0
    while i < n:
        dst[i] = a[i] ^ b[i]
        i += 1


@micropython.viper
def _copy16_from(dst: ptr8, src: ptr8, off: int):
    i = 0
    while i < 16:
        dst[i] = src[off + i]
        i += 1


@micropython.viper
def _diff(a: ptr8, b: ptr8, n: int) -> int:
    # Constant time in the data: always reads all n bytes, no early exit.
    acc = 0
    i = 0
    while i < n:
        acc |= a[i] ^ b[i]
        i += 1
    return acc


@micropython.viper
def _ctr_blocks(buf: ptr8, nblocks: int, width: int):
    # Block 0 holds A_0 (counter field zero); A_j = A_0 with j big-endian in the last
    # `width` bytes. j < 2^16 here, so bytes beyond the lowest 4 stay zero.
    j = 1
    while j < nblocks:
        base = j << 4
        k = 0
        while k < 16:
            buf[base + k] = buf[k]
            k += 1
        v = j
        k = 15
        while k >= 16 - width:
            buf[base + k] = v & 0xFF
            v = v >> 8
            k -= 1
        j += 1


class CCM:
    """One key; seal_into/open_into reuse preallocated buffers (not re-entrant)."""

    def __init__(self, key, tag_len=8, nonce_len=13, max_len=1024, max_aad=64):
        if tag_len < 4 or tag_len > 16 or tag_len & 1:
            raise ValueError("CCM tag length is 4, 6, ..., 16")
        if nonce_len < 7 or nonce_len > 13:
            raise ValueError("CCM nonce length is 7..13")
        self.tag_len = tag_len
        self._nlen = nonce_len
        self._l = 15 - nonce_len
        if self._l < 4 and max_len >= 1 << (8 * self._l):
            raise ValueError("max_len too large for this nonce length")
        if max_aad >= 0xFF00:
            raise ValueError("associated data is limited to 65279 bytes")
        self.max_len = max_len
        self.max_aad = max_aad
        self._ecb = cryptolib.aes(key, _ECB)
        self._cbc = cryptolib.aes(key, _CBC, bytes(16))
        self._chain = bytearray(16)  # IV the CBC object will chain from next
        self._x = bytearray(16)  # the CBC-MAC value X of the last message
        # Probe once whether this port's CBC object carries its IV from call to call
        # (MicroPython's cryptolib does, via mbedTLS/axTLS); if not, the IV stays zero.
        o1 = bytearray(16)
        o2 = bytearray(16)
        self._cbc.encrypt(self._x, o1)
        self._cbc.encrypt(self._x, o2)
        self._chains = o1 != o2
        if self._chains:
            _copy(self._chain, 0, o2, 16)
        aad_room = (2 + max_aad + 15) & ~15 if max_aad else 0
        msg_room = (max_len + 15) & ~15
        self._mac = bytearray(16 + aad_room + msg_room)
        self._macout = bytearray(len(self._mac))
        self._mac_mv = memoryview(self._mac)
        self._macout_mv = memoryview(self._macout)
        nblk = msg_room // 16 + 1
        self._ctr = bytearray(16 * nblk)
        self._ks = bytearray(16 * nblk)
        self._ctr_mv = memoryview(self._ctr)
        self._ks_mv = memoryview(self._ks)
        self._ks1 = self._ks_mv[16:]  # S_1 S_2 ...: the message keystream
        self._tag = bytearray(16)
        self._views = {}  # size -> (input view, output view): slices made once per size

    def _pair(self, key, a, b, size):
        # Cached memoryview slices, so a steady stream of similar frames allocates none;
        # at most 16 sizes are kept (a few hundred bytes).
        v = self._views.get(key)
        if v is None:
            if len(self._views) >= 16:
                self._views = {}
            v = self._views[key] = (a[:size], b[:size])
        return v

    def _check(self, nonce, alen, n):
        if len(nonce) != self._nlen:
            raise ValueError("wrong nonce length")
        if alen > self.max_aad or n > self.max_len or n < 0:
            raise ValueError("message or associated data too long")

    def _keystream(self, nonce, n):
        c = self._ctr
        c[0] = self._l - 1
        _copy(c, 1, nonce, self._nlen)
        _zero(c, 1 + self._nlen, self._l)
        size = ((n + 15) & ~15) + 16
        _ctr_blocks(c, size >> 4, self._l)
        src, dst = self._pair(size, self._ctr_mv, self._ks_mv, size)
        self._ecb.encrypt(src, dst)

    def _cbc_mac(self, nonce, aad, alen, msg, n):
        # Leaves T xor S_0 (the transmitted tag, first tag_len bytes) in self._tag.
        b = self._mac
        m = self.tag_len
        b[0] = (0x40 if alen else 0) | (((m - 2) >> 1) << 3) | (self._l - 1)
        _copy(b, 1, nonce, self._nlen)
        v = n
        for i in range(15, self._nlen, -1):
            b[i] = v & 0xFF
            v >>= 8
        pos = 16
        if alen:
            b[16] = alen >> 8
            b[17] = alen & 0xFF
            _copy(b, 18, aad, alen)
            end = 18 + alen
            pos = (end + 15) & ~15
            _zero(b, end, pos - end)
        _copy(b, pos, msg, n)
        end = pos + n
        pos = (end + 15) & ~15
        _zero(b, end, pos - end)
        _xor(b, b, self._chain, 16)
        src, dst = self._pair(-pos, self._mac_mv, self._macout_mv, pos)
        self._cbc.encrypt(src, dst)
        _copy16_from(self._x, self._macout, pos - 16)
        if self._chains:
            _copy(self._chain, 0, self._x, 16)  # the IV of the next call
        _xor(self._tag, self._x, self._ks, m)

    def seal_into(self, nonce, aad, msg, out, n=-1):
        """Write ciphertext || tag of msg[:n] to out[0:n + tag_len]; return that length."""
        if n < 0:
            n = len(msg)
        alen = len(aad) if aad else 0
        self._check(nonce, alen, n)
        self._keystream(nonce, n)
        self._cbc_mac(nonce, aad, alen, msg, n)
        _xor(out, msg, self._ks1, n)
        _copy(out, n, self._tag, self.tag_len)
        return n + self.tag_len

    def open_into(self, nonce, aad, data, out, n=-1):
        """Authenticate data[:n] (ciphertext || tag), write the plaintext to out.

        Returns the plaintext length, or -1 when the tag is wrong (then out[:len] is
        zeroed: unauthenticated plaintext is never left behind).
        """
        if n < 0:
            n = len(data)
        m = self.tag_len
        if n < m:
            return -1
        n -= m
        alen = len(aad) if aad else 0
        self._check(nonce, alen, n)
        self._keystream(nonce, n)
        _xor(out, data, self._ks1, n)
        self._cbc_mac(nonce, aad, alen, out, n)
        if _diff(self._tag, memoryview(data)[n:], m):
            _zero(out, 0, n)
            return -1
        return n

    def seal(self, nonce, aad, msg):
        """Allocating convenience: bytes ciphertext || tag."""
        out = bytearray(len(msg) + self.tag_len)
        self.seal_into(nonce, aad, msg, out)
        return bytes(out)

    def open(self, nonce, aad, data):
        """Allocating convenience: the plaintext bytes, or None when authentication fails."""
        out = bytearray(max(len(data) - self.tag_len, 0))
        n = self.open_into(nonce, aad, data, out)
        return None if n < 0 else bytes(out)
