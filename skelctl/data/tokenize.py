"""The numpy number tokenizer of the raw-file readers (`formats.py` defines the formats):
`Tokens(data, path)` finds every token of a whitespace-separated buffer at once and converts
all numbers in one vectorised pass (`decimals`: 8 digits per uint64 lane), re-reading unusual
tokens strictly; errors name the line. The C extension `_speedups` beside it is the faster path
for clean NTU files.
"""

from __future__ import annotations

import math
import re
import threading

import numpy as np

from skelctl.errors import SkelctlError

_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT64_LIMIT = 2**63


def quote(text: str | bytes, limit: int = 40) -> str:
    """A short printable quote of user data for error messages."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="backslashreplace")
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


# Numbers are converted without a Python call each: every byte gets a code (digit value, 0x10
# for '.', 0x40 for '-', 0 otherwise), each token is read as the 16 code bytes that end where it
# ends (two little-endian uint64 lanes, byte k of the window in bits 8k..8k+7), and the digits of
# a lane are combined in three multiply-shift steps (SWAR). Tokens with an exponent, more than 15
# characters or anything unusual take the strict path through float().
_DOT_BITS = np.uint64(0x1010101010101010)
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_MINUS_BITS = np.uint64(0x4040404040404040)
_FAST_MAX_LEN = 15  # <= 15 digits: the integer mantissa is exact in float64
# _INSIDE[w, n]: the bytes of lane w (0: window bytes 0-7, 1: bytes 8-15) that belong to a token
# of n characters ending at the end of the window.
_INSIDE = np.array(
    [[sum(0xFF << (8 * (k - 8 * w)) for k in range(8 * w, 8 * w + 8) if k >= 16 - n)
      for n in range(17)] for w in range(2)],
    dtype=np.uint64,
)
# The dot's window position p, keyed by (bits below it in lane 0) - (bits below it in lane 1)
# mod 256 (a lane without the dot counts 64): 196 + 8p in lane 0, 60 - 8(p - 8) in lane 1, 0 for
# no dot. Per key: 10^(digits after the dot) and 10 times that (for no dot, a power above any
# 15-digit value, so the integer part comes out as 0).
_DOT_KEY = {196 + 8 * p: p for p in range(8)} | {60 - 8 * (p - 8): p for p in range(8, 16)}
_SCALE = np.ones(256)
_SCALE_UP = np.full(256, 1e17)
for _key, _position in _DOT_KEY.items():
    _SCALE[_key] = 10.0 ** (15 - _position)
    _SCALE_UP[_key] = 10.0 ** (16 - _position)
_WORKSPACE_LIMIT = 1 << 22  # elements (PKU-MMD videos are ~1.5 MB); bigger ones are not kept


class Workspace(threading.local):
    """Work arrays kept from one file to the next, per thread.

    A fresh numpy temporary of a few hundred KiB costs a page fault per 4 KiB, more than the
    arithmetic done on it, and a file takes ~60 array operations; reusing the buffers removes
    that cost and keeps them in cache.
    """

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, key: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        size = math.prod(shape)
        if size > _WORKSPACE_LIMIT:
            return np.empty(shape, dtype)
        array = self.arrays.get(key)
        if array is None or array.size < size or array.dtype != dtype:
            array = np.empty(max(size * 5 // 4, 1024), dtype)
            self.arrays[key] = array
        return array[:size].reshape(shape)


WORK = Workspace()


class Tokens:
    """A whitespace-separated buffer of numbers: where its tokens are, their values, typed
    access and error lines. Its arrays live in the thread's workspace: valid until the next
    file is read on this thread.

    `values` holds every token as converted by the fast path, and NaN for tokens it leaves to
    the strict path (exponents, long tokens, anything unusual): `numbers` and `integer` re-read
    those from the text, so the fast path never has to judge a malformed token.
    """

    def __init__(self, data: bytes, path: str):
        self.data, self.path = data, path
        n = len(data)
        raw = np.frombuffer(data, np.uint8)
        get = WORK.get
        # Per-byte codes (digit value, 0x10 for '.', 0x40 for '-'), 8-byte aligned, with 16 zero
        # bytes in front (the first token's window).
        words = get("codes", ((n + 40) // 8,), np.uint64)
        padded = words.view(np.uint8)
        padded[:16] = 0
        padded[16 + n:] = 0
        codes = padded[16:16 + n]
        space = get("space", (n + 2,), np.bool_)  # space[b + 1] is byte b; both ends padded
        space[0] = space[-1] = True
        is_space = space[1:-1]
        scratch = get("byte", (n,), np.uint8)
        digit, dot, sign, exponent, odd, bare = (
            get(key, (n,), np.bool_) for key in ("digit", "dot", "sign", "exponent", "odd", "bare")
        )
        np.subtract(raw, 9, out=scratch)
        np.less(scratch, 5, out=is_space)  # \t \n \v \f \r
        np.equal(raw, 32, out=odd)
        is_space |= odd
        np.subtract(raw, 48, out=codes)
        np.less(codes, 10, out=digit)
        np.multiply(codes, digit, out=codes)
        np.equal(raw, 46, out=dot)
        np.left_shift(dot.view(np.uint8), 4, out=scratch)
        codes |= scratch
        np.equal(raw, 45, out=sign)
        np.left_shift(sign.view(np.uint8), 6, out=scratch)
        codes |= scratch
        np.equal(raw, 43, out=odd)
        sign |= odd
        np.bitwise_or(raw, 32, out=scratch)
        np.equal(scratch, 101, out=exponent)  # E e
        # The classes are disjoint: counting them finds a foreign byte faster than OR-ing masks.
        dots = int(np.count_nonzero(dot))
        if dots + sum(np.count_nonzero(m) for m in (is_space, digit, sign, exponent)) != n:
            allowed = odd
            np.logical_or(is_space, digit, out=allowed)
            allowed |= dot
            allowed |= sign
            allowed |= exponent
            self._reject_byte(int(np.argmin(allowed)))

        # Bytes whose token the fast path would misread: an exponent, a sign that neither opens
        # a token nor follows an exponent, a sign or dot ending a token with no digit before it
        # ('-', '.', '-.').
        np.greater(sign, space[:-2], out=odd)
        np.greater(odd[1:], exponent[:-1], out=odd[1:])
        odd |= exponent
        np.logical_or(sign, dot, out=bare)
        bare &= space[2:]
        np.greater(bare[1:], digit[:-1], out=bare[1:])
        odd |= bare

        edges = np.flatnonzero(space[1:] != space[:-1])
        self.count = len(edges) // 2
        self.starts = get("starts", (self.count,), np.int64)
        self.ends = get("ends", (self.count,), np.int64)
        np.copyto(self.starts, edges[0::2])
        np.copyto(self.ends, edges[1::2])
        self.values, strict, dotted = decimals(words, self.starts, self.ends)
        if dotted != dots:  # a token with several dots (or one beyond its 16-byte window)
            strict |= np.add.reduceat(dot, self.starts, dtype=np.int64) > 1
        if odd.any():
            strict[np.searchsorted(self.ends, sparse_positions(odd), "right")] = True
        np.copyto(self.values, np.nan, where=strict)

    def token(self, i: int) -> bytes:
        return self.data[self.starts[i]:self.ends[i]]

    def line_of(self, offset: int) -> int:
        return self.data.count(b"\n", 0, offset) + 1

    def error(self, i: int, reason: str) -> SkelctlError:
        return SkelctlError(reason, self.path, self.line_of(int(self.starts[i])))

    def truncated(self, what: str) -> SkelctlError:
        last = self.line_of(int(self.starts[self.count - 1])) if self.count else 1
        return SkelctlError(f"truncated file: {what}", self.path, last)

    def integer(self, i: int, what: str, low: int, high: int) -> int:
        """Token i as an integer in [low, high] (a count), with a message naming the count."""
        if i >= self.count:
            raise self.truncated(f"it ends where the {what} should be")
        token = self.token(i)
        if not token.isdigit():
            raise self.error(i, f"expected the {what} (an integer), got {quote(token)}")
        value = int(token)
        if low <= value <= high:
            return value
        if low == high:
            raise self.error(i, f"expected a {what} of {low}, got {value}")
        if value < low:
            raise self.error(i, f"{what} is {value} (at least {low} expected)")
        raise self.error(i, f"{what} {value} is above the limit of {high}")

    def body_ids(self, index: np.ndarray) -> np.ndarray:
        """int64 tokens at `index`, exact (Kinect body IDs are ~2^56, beyond float64)."""
        tokens = [self.data[s:e] for s, e in zip(self.starts[index].tolist(),
                                                 self.ends[index].tolist(), strict=True)]
        for k, token in enumerate(tokens):
            if not token.isdigit() or len(token) > 19 or int(token) >= _INT64_LIMIT:
                raise self.error(int(index[k]),
                                 f"expected a body ID (an integer below 2^63), got {quote(token)}")
        return np.array([int(t) for t in tokens], dtype=np.int64)

    def numbers(self, index: np.ndarray | None = None) -> np.ndarray:
        """float32 tokens at `index` (any shape; all when None), rejecting non-numbers and
        values beyond float32 with the token's line."""
        if index is None:
            flat, values = None, self.values
        else:
            flat = index.reshape(-1)
            values = WORK.get("picked", flat.shape, np.float64)
            np.take(self.values, flat, out=values, mode="clip")
        result = values.astype(np.float32)
        # The strict path: rare. (The fast path reads at most 15 digits: always finite.)
        for k in np.flatnonzero(np.isnan(values)).tolist():
            i = k if flat is None else int(flat[k])
            token = self.token(i)
            if _NUMBER.fullmatch(token) is None:
                raise self.error(i, f"expected a number, got {quote(token)}")
            with np.errstate(over="ignore"):
                result[k] = np.float32(float(token))
            if not np.isfinite(result[k]):
                raise self.error(i, f"not a finite float32 number: {quote(token)}")
        return result if index is None else result.reshape(index.shape)

    def _reject_byte(self, offset: int) -> None:
        """Explain the first byte that cannot occur in a file of numbers."""
        line = self.line_of(offset)
        byte = self.data[offset]
        if not 33 <= byte <= 126:
            raise SkelctlError(
                f"binary or non-UTF-8 data (byte 0x{byte:02x}); expected text numbers",
                self.path,
                line,
            )
        start = offset
        while start > 0 and 33 <= self.data[start - 1] <= 126:
            start -= 1
        end = offset
        while end < len(self.data) and 33 <= self.data[end] <= 126:
            end += 1
        token = self.data[start:end]
        if token.lstrip(b"+-").lower() in (b"nan", b"inf", b"infinity"):
            raise SkelctlError(f"not a finite number: {quote(token)}", self.path, line)
        raise SkelctlError(f"expected a number, got {quote(token)}", self.path, line)


def sparse_positions(mask: np.ndarray) -> np.ndarray:
    """Indices of the few True entries of a bool array: flatnonzero over 8-byte words first,
    because a byte-wise scan of a whole file costs ~10x more than one vectorised operation."""
    whole = len(mask) // 8 * 8
    words = np.flatnonzero(mask[:whole].view(np.uint64))
    candidates = (words[:, None] * 8 + np.arange(8)).reshape(-1)
    return np.concatenate([candidates[mask[candidates]], whole + np.flatnonzero(mask[whole:])])


def decimals(
    words: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """(values, strict, dotted) for the tokens ending at `ends` of a buffer coded as in `Tokens`.

    values is float64, correctly rounded like float(), for every token of the form
    [+-]digits[.digits] of at most 15 characters (if it has at most one dot: `dotted`, the
    number of tokens with a dot, lets the caller check that); strict marks tokens too long to
    read. The arrays are workspace arrays.
    """
    get = WORK.get
    k = len(starts)
    first_word = get("first_word", (k,), np.intp)  # the 3 aligned words covering each window
    np.right_shift(ends, 3, out=first_word)
    aligned = get("aligned", (3, k), np.uint64)
    for w in range(3):
        np.take(words[w:], first_word, out=aligned[w], mode="clip")
    shift = get("shift", (k,), np.uint64)
    np.bitwise_and(ends, 7, out=shift.view(np.int64))
    shift <<= np.uint64(3)
    lanes = get("lanes", (2, k), np.uint64)
    np.right_shift(aligned[:2], shift, out=lanes)
    np.subtract(np.uint64(64), shift, out=shift)  # a shift by 64 gives 0 in numpy
    other = get("other", (2, k), np.uint64)
    np.left_shift(aligned[1:], shift, out=other)
    lanes |= other

    lengths = get("lengths", (k,), np.int64)
    np.subtract(ends, starts, out=lengths)
    strict = get("strict", (k,), np.bool_)
    np.greater(lengths, _FAST_MAX_LEN, out=strict)
    np.take(_INSIDE, lengths, axis=1, out=other, mode="clip")  # clipped to 16: all bytes
    lanes &= other  # drop the neighbouring tokens' bytes
    marks = other
    np.bitwise_or(lanes[0], lanes[1], out=marks[0])
    negative = get("negative", (k,), np.bool_)
    np.bitwise_and(marks[0], _MINUS_BITS, out=marks[0])
    np.not_equal(marks[0], 0, out=negative)  # a '-' can only open a fast token
    dots = marks
    np.bitwise_and(lanes, _DOT_BITS, out=dots)
    lanes &= _LOW_NIBBLES  # digit values, 0 for the dot
    # Bits below the dot bit in each lane (64 without one): their difference mod 256 names the
    # dot's window position (see _DOT_KEY).
    dots -= np.uint64(1)
    per_lane = get("per_lane", (2, k), np.uint8)
    np.bitwise_count(dots, out=per_lane)
    dot_key = per_lane[0]
    dot_key -= per_lane[1]
    dotted = k - int(np.count_nonzero(dot_key == 0))

    lanes *= np.uint64(2561)  # 10 * 2^8 + 1: pairs of digits
    lanes >>= np.uint64(8)
    lanes &= np.uint64(0x00FF00FF00FF00FF)
    lanes *= np.uint64(6553601)  # 100 * 2^16 + 1: groups of four
    lanes >>= np.uint64(16)
    lanes &= np.uint64(0x0000FFFF0000FFFF)
    lanes *= np.uint64(42949672960001)  # 10^4 * 2^32 + 1: all eight
    lanes >>= np.uint64(32)
    lanes[0] *= np.uint64(10**8)
    lanes[0] += lanes[1]

    # The dot was read as a 0 digit: whole = high * 10^(f+1) + low with f digits after the dot,
    # and the number is (high * 10^f + low) / 10^f, one correctly rounded division.
    values = get("values", (k,), np.float64)
    np.copyto(values, lanes[0], casting="unsafe")
    scale = get("scale", (k,), np.float64)
    high = get("high", (k,), np.float64)
    np.take(_SCALE_UP, dot_key, out=scale, mode="clip")
    np.divide(values, scale, out=high)
    np.floor(high, out=high)
    np.take(_SCALE, dot_key, out=scale, mode="clip")
    high *= scale
    high *= 9.0
    values -= high
    values /= scale
    np.negative(values, out=values, where=negative)
    return values, strict, dotted
