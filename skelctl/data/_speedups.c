/* Optional C speedups of skelctl.data, built by setup.py when a C compiler (GCC or Clang) is
 * there; without them the numpy and h5py code gives the same results, slower.
 *
 * parse_ntu: the fast path of formats.read_ntu_skeleton, an NTU RGB+D .skeleton file read
 * without the GIL. It only says "clean file, here are the arrays" or "not clean" (None):
 * every message about a bad file comes from the numpy reader, which re-reads a file this
 * parser refuses. So it must never accept a file that reader rejects, and must give the same
 * numbers for a file both accept; it may be stricter (counts must be plain digits), as
 * refusing costs only time. Two passes, so that no token waits for the one before it: pass 1
 * marks the separators of 64 bytes at a time and lists where every token starts and ends,
 * pass 2 walks the format over that list and converts each number on its own. Numbers are
 * converted like Python's float() followed by a cast to float32: digits at most 2^53 and a
 * decimal exponent within +-22 are exact after one correctly rounded division or
 * multiplication (Clinger's fast path); the rare others are converted afterwards with
 * PyOS_string_to_double, the routine float() uses.
 *
 * shuffle_lzf: a chunk of the dataset writer (store.py), shuffled and LZF-compressed as
 * HDF5's shuffle filter and h5py's lzf filter store it (see "chunk compression" below).
 */
#if !defined(__GNUC__)
#error "skelctl.data._speedups uses GCC/Clang builtins; without them skelctl uses numpy and h5py"
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

/* The record layout of the format (tests check it against formats.py). */
#define NUM_JOINTS 25
#define BODY_INFO_FIELDS 9
#define JOINT_FIELDS 12
#define NUMBERS_PER_BODY (BODY_INFO_FIELDS + NUM_JOINTS * JOINT_FIELDS)
#define TOKENS_PER_BODY (NUMBERS_PER_BODY + 2) /* + body ID + joint count */
#define MAX_EXACT_TOKEN 63 /* a longer number is refused (the numpy reader then reads it) */

static const double POWERS_OF_TEN[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static const uint64_t INTEGER_POWERS_OF_TEN[9] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
};

/* The separators of the numpy reader: \t \n \v \f \r and space. */
static inline int is_space(unsigned char c) { return c == ' ' || (unsigned char)(c - 9) < 5; }
static inline int is_digit(unsigned char c) { return (unsigned char)(c - '0') < 10; }

/* ---- pass 1: where the tokens are --------------------------------------------------------- */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LITTLE_ENDIAN_WORDS 1
static inline uint64_t load_word(const unsigned char *p) {
    uint64_t word;
    memcpy(&word, p, sizeof word); /* byte k of the text in bits 8k..8k+7 */
    return word;
}

#if !defined(__SSE2__)
/* Bit k set when byte k of the 8 is a separator. */
static inline unsigned separator_bits(uint64_t word) {
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7Fu, high = 0x8080808080808080u;
    const uint64_t each = 0x0101010101010101u;
    uint64_t blank = word ^ (0x20 * each);
    blank = ~(((blank & low7) + low7) | blank) & high;          /* == 0x20 */
    uint64_t at_least_9 = (word & low7) + (0x80 - 9) * each;    /* high bit: byte >= 9 */
    uint64_t at_least_14 = (word & low7) + (0x80 - 14) * each;  /* high bit: byte >= 14 */
    uint64_t control = at_least_9 & ~at_least_14 & ~word & high; /* 9..13 */
    return (unsigned)((((blank | control) >> 7) * 0x0102040810204080u) >> 56);
}
#endif
#else
#define LITTLE_ENDIAN_WORDS 0
#endif

/* Bit k set when byte k of the 64 is a separator: 16 bytes at a time with SSE2 (every x86-64
 * has it), else 8 with SWAR, else one. */
static inline uint64_t separator_mask(const unsigned char *block) {
    uint64_t mask = 0;
#if defined(__SSE2__)
    const __m128i blank = _mm_set1_epi8(' '), tab = _mm_set1_epi8(9), four = _mm_set1_epi8(4);
    for (int k = 0; k < 4; k++) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(block + 16 * k));
        __m128i control = _mm_sub_epi8(bytes, tab); /* 9..13 -> 0..4 */
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(bytes, blank),
                                   _mm_cmpeq_epi8(_mm_min_epu8(control, four), control));
        mask |= (uint64_t)(unsigned)_mm_movemask_epi8(hit) << (16 * k);
    }
#elif LITTLE_ENDIAN_WORDS
    for (int k = 0; k < 8; k++) mask |= (uint64_t)separator_bits(load_word(block + 8 * k)) << (8 * k);
#else
    for (int k = 0; k < 64; k++) mask |= (uint64_t)is_space(block[k]) << k;
#endif
    return mask;
}

/* Writes base + the index of every set bit of `bits` to out[0], out[2], ... and returns how
 * many. Eight are written whatever their number (the rest is garbage that later writes
 * replace): a loop exit per token would be a mispredicted branch per 64 bytes. */
#define BITS_OVERWRITE 16 /* entries (pairs) that may be written past the last position */
static inline Py_ssize_t put_positions(uint32_t *out, uint64_t bits, uint32_t base) {
    int count = __builtin_popcountll(bits);
    for (int k = 0; k < 8; k++, bits &= bits - 1)
        out[2 * k] = base + (uint32_t)__builtin_ctzll(bits | ((uint64_t)1 << 63));
    for (int k = 8; k < count; k++, bits &= bits - 1) out[2 * k] = base + (uint32_t)__builtin_ctzll(bits);
    return count;
}

/* Writes the [start, end) offsets of every token to bounds (room for size / 2 + 1 tokens and
 * BITS_OVERWRITE more); returns how many tokens there are. */
static Py_ssize_t find_tokens(const unsigned char *data, Py_ssize_t size, uint32_t *bounds) {
    Py_ssize_t starts = 0, ends = 0;
    uint64_t before = 1; /* the byte before the block is a separator (or the file start) */
    for (Py_ssize_t base = 0; base < size; base += 64) {
        unsigned char tail[64];
        const unsigned char *block = data + base;
        if (size - base < 64) { /* the last block, padded with separators */
            memset(tail, ' ', sizeof tail);
            memcpy(tail, block, (size_t)(size - base));
            block = tail;
        }
        uint64_t separators = separator_mask(block);
        uint64_t after_separator = (separators << 1) | before;
        before = separators >> 63;
        starts += put_positions(bounds + 2 * starts, ~separators & after_separator, (uint32_t)base);
        ends += put_positions(bounds + 2 * ends + 1, separators & ~after_separator, (uint32_t)base);
    }
    if (ends < starts) bounds[2 * ends + 1] = (uint32_t)size; /* a token up to the last byte */
    return starts;
}

/* ---- pass 2: tokens ------------------------------------------------------------------------ */
/* Each reader takes a token's bytes [p, end) (never empty, no separator inside) and returns 0
 * when it is what is expected. */

/* An integer of plain digits, at most `limit`. */
static int read_count(const unsigned char *p, const unsigned char *end, int64_t limit,
                      int64_t *out) {
    int64_t value = 0;
    for (; p < end; p++) {
        if (!is_digit(*p)) return -1;
        value = value * 10 + (*p - '0');
        if (value > limit) return -1;
    }
    *out = value;
    return 0;
}

/* A body ID: plain digits below 2^63. */
static int read_body_id(const unsigned char *p, const unsigned char *end, int64_t *out) {
    if (end - p > 19) return -1; /* 19 digits always fit in uint64 */
    uint64_t value = 0;
    for (; p < end; p++) {
        if (!is_digit(*p)) return -1;
        value = value * 10 + (uint64_t)(*p - '0');
    }
    if (value >= ((uint64_t)1 << 63)) return -1;
    *out = (int64_t)value;
    return 0;
}

#if LITTLE_ENDIAN_WORDS
#define PLAIN_READ 18 /* bytes the plain decimal readers read from a token's first byte on */

/* 0x80 in every byte of the word that is not a digit. */
static inline uint64_t not_digit_bytes(uint64_t word) {
    uint64_t t = word ^ 0x3030303030303030u; /* digits become 0..9 */
    return (((t & 0x7F7F7F7F7F7F7F7Fu) + 0x7676767676767676u) | t) & 0x8080808080808080u;
}

/* Index of the first '.' among the word's bytes; 8 when there is none. */
static inline int dot_index(uint64_t word) {
    uint64_t t = word ^ 0x2E2E2E2E2E2E2E2Eu; /* '.' becomes 0 */
    uint64_t dots = ~(((t & 0x7F7F7F7F7F7F7F7Fu) + 0x7F7F7F7F7F7F7F7Fu) | t) & 0x8080808080808080u;
    return dots ? __builtin_ctzll(dots) >> 3 : 8;
}

/* The low `count` bytes of a word, as a mask (count clamped to 0..8). */
static inline uint64_t low_bytes(int count) {
    return count <= 0 ? 0 : count >= 8 ? ~(uint64_t)0 : (((uint64_t)1 << (8 * count)) - 1);
}

/* 8 bytes of text with the byte at `dot` left out: `shifted` is the text one byte later. */
static inline uint64_t without_dot(uint64_t word, uint64_t shifted, int dot) {
    uint64_t before = low_bytes(dot);
    return (word & before) | (shifted & ~before);
}

/* The value of the word's first `count` (1..8) bytes, all digits (SWAR: 3 multiplications). */
static inline uint64_t digits_value(uint64_t word, int count) {
    word = (word << (64 - 8 * count)) & 0x0F0F0F0F0F0F0F0Fu; /* zeros in front: same value */
    word = ((word * 2561) >> 8) & 0x00FF00FF00FF00FFu;       /* 10 * 2^8 + 1: pairs */
    word = ((word * 6553601) >> 16) & 0x0000FFFF0000FFFFu;   /* 100 * 2^16 + 1: fours */
    return (word * 42949672960001u) >> 32;                    /* 10^4 * 2^32 + 1: all */
}

static inline float signed_quotient(uint64_t mantissa, int fraction, int negative) {
    double value = (double)(int64_t)mantissa / POWERS_OF_TEN[fraction]; /* one rounding */
    return (float)(negative ? -value : value);
}

/* digits[.digits] with 9 to 16 digits in [p, p + length): see read_plain_decimal. */
static int read_long_decimal(const unsigned char *p, int length, int negative, float *out) {
    if (length > 17) return -1;
    uint64_t first = load_word(p), second = load_word(p + 8);
    int dot = dot_index(first);
    if (dot == 8) dot += dot_index(second); /* 16: no dot */
    int has_dot = dot < 16 && dot < length, count = length - has_dot;
    uint64_t high = without_dot(first, load_word(p + 1), dot);
    uint64_t low = without_dot(second, load_word(p + 9), dot - 8);
    int rest = count - 8;
    if (count < 1 || count > 16 || (not_digit_bytes(high) & low_bytes(count)) ||
        (not_digit_bytes(low) & low_bytes(rest)))
        return -1;
    uint64_t mantissa = digits_value(high, count < 8 ? count : 8);
    if (rest > 0) mantissa = mantissa * INTEGER_POWERS_OF_TEN[rest] + digits_value(low, rest);
    if (mantissa > ((uint64_t)1 << 53)) return -1; /* not exact in a double */
    *out = signed_quotient(mantissa, has_dot ? length - 1 - dot : 0, negative);
    return 0;
}

/* The common forms -?digits[.digits] and -?.digits, into *out; anything else (a sign '+', an
 * exponent, a stray byte) returns -1 for read_any_number. Up to 8 digits the digits are
 * gathered into one word (those before the dot, then those after it), checked and converted
 * without a loop; longer ones take read_long_decimal. Needs PLAIN_READ bytes from p on. */
static inline int read_plain_decimal(const unsigned char *p, const unsigned char *end,
                                     float *out) {
    int negative = *p == '-';
    p += negative;
    int length = (int)(end - p);
    uint64_t word = load_word(p);
    int dot = dot_index(word);
    /* dot 8: none in the first 8 bytes (a longer token goes to read_long_decimal) */
    int has_dot = dot < 8 && dot < length, count = length - has_dot;
    if (count > 8) return read_long_decimal(p, length, negative, out);
    uint64_t digits = without_dot(word, load_word(p + 1), has_dot ? dot : 8);
    if (count < 1 || (not_digit_bytes(digits) & low_bytes(count))) return -1;
    *out = signed_quotient(digits_value(digits, count), has_dot ? length - 1 - dot : 0, negative);
    return 0;
}
#else
#define PLAIN_READ 0
static inline int read_plain_decimal(const unsigned char *p, const unsigned char *end,
                                     float *out) {
    (void)p, (void)end, (void)out;
    return -1;
}
#endif

/* Numbers left for PyOS_string_to_double: token and destination indices. */
typedef struct {
    Py_ssize_t *pairs;
    Py_ssize_t count, capacity;
} Deferred;

static int defer(Deferred *d, Py_ssize_t token, Py_ssize_t index) {
    if (d->count == d->capacity) {
        Py_ssize_t capacity = d->capacity ? 2 * d->capacity : 64;
        Py_ssize_t *grown = realloc(d->pairs, (size_t)capacity * 2 * sizeof(Py_ssize_t));
        if (grown == NULL) return -1;
        d->pairs = grown;
        d->capacity = capacity;
    }
    d->pairs[2 * d->count] = token;
    d->pairs[2 * d->count + 1] = index;
    d->count++;
    return 0;
}

/* Any number, [+-]?(digits[.digits*]|.digits)([eE][+-]?digits)?, into *out; or -2 when it is
 * valid but needs the exact conversion. */
static int read_any_number(const unsigned char *p, const unsigned char *end, float *out) {
    if (end - p > MAX_EXACT_TOKEN) return -1;
    int negative = 0;
    if (*p == '-' || *p == '+') negative = *p++ == '-';
    uint64_t mantissa = 0;
    int significant = 0, fraction = 0, digits = 0, in_fraction = 0;
    for (; p < end; p++) {
        if (is_digit(*p)) {
            digits++;
            fraction += in_fraction;
            if (significant < 19) {
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
                significant += mantissa != 0;
            } else {
                significant++; /* too many digits for the fast path */
            }
        } else if (*p == '.' && !in_fraction) {
            in_fraction = 1;
        } else {
            break;
        }
    }
    if (digits == 0) return -1;
    int64_t exponent = 0;
    if (p < end && (*p | 0x20) == 'e') {
        p++;
        int exponent_negative = 0;
        if (p < end && (*p == '-' || *p == '+')) exponent_negative = *p++ == '-';
        if (p == end) return -1;
        for (; p < end; p++) {
            if (!is_digit(*p)) return -1;
            if (exponent < 100000) exponent = exponent * 10 + (*p - '0');
        }
        if (exponent_negative) exponent = -exponent;
    }
    if (p != end) return -1;

    int64_t scale = exponent - fraction;
    double value = (double)mantissa;
    if (significant == 0) {
        value = 0.0;
    } else if (significant <= 19 && mantissa <= ((uint64_t)1 << 53) && scale >= -22 &&
               scale <= 22) {
        value = scale < 0 ? value / POWERS_OF_TEN[-scale] : value * POWERS_OF_TEN[scale];
    } else {
        return -2;
    }
    *out = (float)(negative ? -value : value);
    return 0;
}

/* Where pass 2 writes: buffers sized from the token count, so they never grow. */
typedef struct {
    const unsigned char *data, *end;
    const uint32_t *bounds; /* [start, end) of every token */
    Py_ssize_t tokens;
    int64_t *counts; /* (frames,) */
    int64_t *ids;    /* (bodies,) */
    float *numbers;  /* (bodies, NUMBERS_PER_BODY) */
    Py_ssize_t bodies;
    Deferred deferred;
} Records;

/* Token k as the two arguments of a reader. */
#define TOKEN(r, k) (r)->data + (r)->bounds[2 * (k)], (r)->data + (r)->bounds[2 * (k) + 1]

static inline __attribute__((always_inline)) int read_number(Records *r, Py_ssize_t token,
                                                             Py_ssize_t index) {
    const unsigned char *p = r->data + r->bounds[2 * token];
    const unsigned char *end = r->data + r->bounds[2 * token + 1];
    float *out = r->numbers + index;
    if (PLAIN_READ && r->end - p >= PLAIN_READ && read_plain_decimal(p, end, out) == 0) return 0;
    int status = read_any_number(p, end, out);
    return status == -2 ? defer(&r->deferred, token, index) : status;
}

/* The frames (from token 1 on) up to the last token: 0 when they are clean. Room for
 * (tokens - 1 - frames) / TOKENS_PER_BODY bodies. */
static int read_frames(Records *r, int64_t frames, int64_t max_bodies) {
    Py_ssize_t token = 1; /* the next one to read */
    for (int64_t frame = 0; frame < frames; frame++) {
        if (token >= r->tokens || read_count(TOKEN(r, token), max_bodies, &r->counts[frame]))
            return -1;
        token++;
        /* truncated: its bodies and the later frames' counts do not fit (nor in r->ids) */
        if (r->counts[frame] * TOKENS_PER_BODY > r->tokens - token - (frames - frame - 1))
            return -1;
        for (int64_t b = 0; b < r->counts[frame]; b++, r->bodies++) {
            int64_t joints;
            Py_ssize_t index = r->bodies * NUMBERS_PER_BODY;
            if (read_body_id(TOKEN(r, token), &r->ids[r->bodies])) return -1;
            token++;
            for (int k = 0; k < BODY_INFO_FIELDS; k++)
                if (read_number(r, token++, index++)) return -1;
            if (read_count(TOKEN(r, token), NUM_JOINTS, &joints) || joints != NUM_JOINTS)
                return -1;
            token++;
            for (int k = 0; k < NUM_JOINTS * JOINT_FIELDS; k++)
                if (read_number(r, token++, index++)) return -1;
        }
    }
    return token == r->tokens ? 0 : -1;
}

/* The deferred numbers, exactly as float() reads them: 0 when all are finite float32, 1 when
 * one is not, -1 with a Python error set. */
static int convert_deferred(Records *r) {
    char text[MAX_EXACT_TOKEN + 1];
    for (Py_ssize_t k = 0; k < r->deferred.count; k++) {
        Py_ssize_t token = r->deferred.pairs[2 * k];
        size_t length = r->bounds[2 * token + 1] - r->bounds[2 * token]; /* <= MAX_EXACT_TOKEN */
        memcpy(text, r->data + r->bounds[2 * token], length);
        text[length] = '\0';
        char *stop;
        double value = PyOS_string_to_double(text, &stop, NULL); /* overflow: +-inf */
        if (value == -1.0 && PyErr_Occurred()) return -1;
        float single = (float)value;
        if (*stop != '\0' || !isfinite(single)) return 1;
        r->numbers[r->deferred.pairs[2 * k + 1]] = single;
    }
    return 0;
}

PyDoc_STRVAR(parse_ntu_doc,
             "parse_ntu(data: bytes, max_frames: int, max_bodies: int)\n"
             "-> (body_counts, body_ids, numbers) | None\n\n"
             "Writable buffers of int64 (T,), int64 (B,) and float32 (B, 309) for a clean NTU "
             ".skeleton file; None for anything else (the numpy reader then explains it).");

static PyObject *parse_ntu(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *bytes;
    long long max_frames, max_bodies;
    if (!PyArg_ParseTuple(args, "SLL:parse_ntu", &bytes, &max_frames, &max_bodies)) return NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(bytes);
    if ((uint64_t)size >= UINT32_MAX) Py_RETURN_NONE; /* offsets are 32-bit */
    Records r = {.data = (const unsigned char *)PyBytes_AS_STRING(bytes)};
    r.end = r.data + size;
    uint32_t *bounds = malloc(((size_t)size / 2 + 1 + BITS_OVERWRITE) * 2 * sizeof(uint32_t));
    if (bounds == NULL) return PyErr_NoMemory();
    r.bounds = bounds;
    Py_BEGIN_ALLOW_THREADS;
    r.tokens = find_tokens(r.data, size, bounds);
    Py_END_ALLOW_THREADS;

    PyObject *counts = NULL, *ids = NULL, *numbers = NULL, *result = NULL;
    int64_t frames;
    if (r.tokens == 0 || read_count(TOKEN(&r, 0), max_frames, &frames) ||
        frames < 1 || frames > r.tokens - 1) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    Py_ssize_t most_bodies = (r.tokens - 1 - frames) / TOKENS_PER_BODY;
    counts = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(frames * sizeof(int64_t)));
    ids = PyByteArray_FromStringAndSize(NULL, most_bodies * (Py_ssize_t)sizeof(int64_t));
    numbers = PyByteArray_FromStringAndSize(
        NULL, most_bodies * NUMBERS_PER_BODY * (Py_ssize_t)sizeof(float));
    if (counts == NULL || ids == NULL || numbers == NULL) goto done;
    r.counts = (int64_t *)PyByteArray_AS_STRING(counts);
    r.ids = (int64_t *)PyByteArray_AS_STRING(ids);
    r.numbers = (float *)PyByteArray_AS_STRING(numbers);

    int status;
    Py_BEGIN_ALLOW_THREADS;
    status = read_frames(&r, frames, max_bodies);
    Py_END_ALLOW_THREADS;
    if (status == 0 && r.deferred.count) status = convert_deferred(&r);
    if (status < 0 && PyErr_Occurred()) goto done;
    if (status != 0) {
        result = Py_NewRef(Py_None); /* not a clean file */
        goto done;
    }
    if (PyByteArray_Resize(ids, r.bodies * (Py_ssize_t)sizeof(int64_t)) == 0 &&
        PyByteArray_Resize(numbers, r.bodies * NUMBERS_PER_BODY * (Py_ssize_t)sizeof(float)) == 0)
        result = PyTuple_Pack(3, counts, ids, numbers);
done:
    Py_XDECREF(counts);
    Py_XDECREF(ids);
    Py_XDECREF(numbers);
    free(bounds);
    free(r.deferred.pairs);
    return result;
}

/* ---- chunk compression --------------------------------------------------------------------- */
/* A dataset chunk byte-shuffled and LZF-compressed, as HDF5's shuffle filter followed by h5py's
 * lzf filter store it (any LZF decoder reads it), but several times faster than liblzf: instead
 * of hashing every position, the encoder only looks for repeats at a few given distances. For
 * skeleton frames (after shuffling, one plane per byte of the float32 values) these are the
 * previous byte, the previous joint's same coordinate and the same value one frame earlier,
 * which find about as much as liblzf does: absent bodies, exponents, still joints.
 *
 * The LZF format, as lzf_decompress reads it: a control byte c < 32 is followed by c + 1
 * literal bytes; otherwise it starts a copy of (c >> 5) + 2 bytes (when c >> 5 is 7, plus the
 * next byte) from ((c & 31) << 8 | the byte after) + 1 bytes back, byte by byte. */

#define LZF_MAX_LITERALS 32
#define LZF_MAX_COPY 264 /* 2 + 7 + 255 */
#define LZF_MAX_DISTANCE 8192
#define MAX_DISTANCES 8

typedef struct {
    unsigned char *bytes;
    Py_ssize_t size, capacity;
} Output;

static int emit_literals(Output *o, const unsigned char *p, Py_ssize_t count) {
    while (count > 0) {
        Py_ssize_t run = count < LZF_MAX_LITERALS ? count : LZF_MAX_LITERALS;
        if (o->size + 1 + run > o->capacity) return -1;
        o->bytes[o->size++] = (unsigned char)(run - 1);
        memcpy(o->bytes + o->size, p, (size_t)run);
        o->size += run;
        p += run;
        count -= run;
    }
    return 0;
}

static int emit_copy(Output *o, Py_ssize_t length, Py_ssize_t distance) {
    if (o->size + 3 > o->capacity) return -1;
    Py_ssize_t code = length - 2, back = distance - 1;
    o->bytes[o->size++] = (unsigned char)(((code < 7 ? code : 7) << 5) | (back >> 8));
    if (code >= 7) o->bytes[o->size++] = (unsigned char)(code - 7);
    o->bytes[o->size++] = (unsigned char)(back & 255);
    return 0;
}

/* How many bytes from in[i] on repeat those `distance` before (at most `limit`). */
static inline Py_ssize_t repeat_length(const unsigned char *in, Py_ssize_t i, Py_ssize_t distance,
                                       Py_ssize_t limit) {
    Py_ssize_t n = 0;
#if LITTLE_ENDIAN_WORDS
    for (; n + 8 <= limit; n += 8) {
        uint64_t diff = load_word(in + i + n) ^ load_word(in + i + n - distance);
        if (diff) return n + (__builtin_ctzll(diff) >> 3);
    }
#endif
    while (n < limit && in[i + n] == in[i + n - distance]) n++;
    return n;
}

#if LITTLE_ENDIAN_WORDS
/* 0x80 in byte j of the result when a repeat of at least 3 bytes, `distance` back, starts at
 * in[i + j] (j < 6; the word cannot tell for j = 6, 7). */
static inline uint64_t repeat_starts(const unsigned char *in, Py_ssize_t i, Py_ssize_t distance) {
    uint64_t diff = load_word(in + i) ^ load_word(in + i - distance);
    uint64_t same = ~(((diff & 0x7F7F7F7F7F7F7F7Fu) + 0x7F7F7F7F7F7F7F7Fu) | diff) &
                    0x8080808080808080u;
    return same & (same >> 8) & (same >> 16);
}
#endif

/* LZF stream of in[0, n) into out (capacity bytes): its size, or -1 when it does not fit.
 * Greedy: at the first position where some distance repeats 3 bytes or more, the longest
 * repeat is copied. */
static Py_ssize_t lzf_encode(const unsigned char *in, Py_ssize_t n, const Py_ssize_t *distances,
                             int count, unsigned char *out, Py_ssize_t capacity) {
    Output o = {out, 0, capacity};
    Py_ssize_t i = 0, literals = 0; /* literals: where the pending literal bytes start */
    while (i + 2 < n) {             /* a copy is at least 3 bytes */
#if LITTLE_ENDIAN_WORDS
        if (i + 8 <= n) { /* find the next position where a repeat starts, 6 bytes a step */
            uint64_t starts = 0;
            for (int k = 0; k < count; k++)
                if (distances[k] <= i) starts |= repeat_starts(in, i, distances[k]);
            if (starts == 0) {
                i += 6;
                continue;
            }
            i += __builtin_ctzll(starts) >> 3;
        }
#endif
        Py_ssize_t best = 0, best_distance = 0;
        Py_ssize_t limit = n - i < LZF_MAX_COPY ? n - i : LZF_MAX_COPY;
        for (int k = 0; k < count; k++) {
            if (distances[k] > i) continue;
            Py_ssize_t length = repeat_length(in, i, distances[k], limit);
            if (length > best) {
                best = length;
                best_distance = distances[k];
            }
        }
        if (best < 3) {
            i++;
            continue;
        }
        if (emit_literals(&o, in + literals, i - literals) || emit_copy(&o, best, best_distance))
            return -1;
        i += best;
        literals = i;
    }
    return emit_literals(&o, in + literals, n - literals) ? -1 : o.size;
}

/* HDF5's shuffle: byte k of every item goes to plane k. */
static void shuffle(const unsigned char *in, Py_ssize_t items, Py_ssize_t itemsize,
                    unsigned char *out) {
    if (itemsize == 4) { /* float32: one pass */
        for (Py_ssize_t i = 0; i < items; i++, in += 4) {
            out[i] = in[0];
            out[items + i] = in[1];
            out[2 * items + i] = in[2];
            out[3 * items + i] = in[3];
        }
        return;
    }
    for (Py_ssize_t k = 0; k < itemsize; k++)
        for (Py_ssize_t i = 0; i < items; i++) out[k * items + i] = in[i * itemsize + k];
}

PyDoc_STRVAR(shuffle_lzf_doc,
             "shuffle_lzf(chunk, itemsize: int, distances: tuple[int, ...]) -> (bytearray, bool)\n\n"
             "The chunk's bytes shuffled and LZF-compressed, True; or only shuffled, False, when "
             "compressing would not make them smaller (HDF5 then skips the lzf filter).");

static PyObject *shuffle_lzf(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer chunk;
    Py_ssize_t itemsize;
    PyObject *distance_tuple;
    if (!PyArg_ParseTuple(args, "y*nO!:shuffle_lzf", &chunk, &itemsize, &PyTuple_Type,
                          &distance_tuple))
        return NULL;
    Py_ssize_t distances[MAX_DISTANCES], count = PyTuple_GET_SIZE(distance_tuple);
    PyObject *result = NULL, *shuffled = NULL, *packed = NULL;
    if (itemsize < 1 || chunk.len % itemsize || count > MAX_DISTANCES) {
        PyErr_SetString(PyExc_ValueError, "shuffle_lzf: bad itemsize or too many distances");
        goto done;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        distances[k] = PyLong_AsSsize_t(PyTuple_GET_ITEM(distance_tuple, k));
        if (distances[k] == -1 && PyErr_Occurred()) goto done;
        if (distances[k] < 1 || distances[k] > LZF_MAX_DISTANCE) {
            PyErr_SetString(PyExc_ValueError, "shuffle_lzf: distances must lie in 1..8192");
            goto done;
        }
    }
    shuffled = PyByteArray_FromStringAndSize(NULL, chunk.len);
    packed = PyByteArray_FromStringAndSize(NULL, chunk.len);
    if (shuffled == NULL || packed == NULL) goto done;
    unsigned char *plain = (unsigned char *)PyByteArray_AS_STRING(shuffled);
    unsigned char *out = (unsigned char *)PyByteArray_AS_STRING(packed);
    Py_ssize_t size;
    Py_BEGIN_ALLOW_THREADS;
    shuffle(chunk.buf, chunk.len / itemsize, itemsize, plain);
    size = lzf_encode(plain, chunk.len, distances, (int)count, out, chunk.len - 1);
    Py_END_ALLOW_THREADS;
    if (size < 0) {
        result = Py_BuildValue("(OO)", shuffled, Py_False);
    } else if (PyByteArray_Resize(packed, size) == 0) {
        result = Py_BuildValue("(OO)", packed, Py_True);
    }
done:
    Py_XDECREF(shuffled);
    Py_XDECREF(packed);
    PyBuffer_Release(&chunk);
    return result;
}

static PyMethodDef methods[] = {
    {"parse_ntu", parse_ntu, METH_VARARGS, parse_ntu_doc},
    {"shuffle_lzf", shuffle_lzf, METH_VARARGS, shuffle_lzf_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_speedups",
    .m_doc = "Optional C speedups: the NTU .skeleton reader's fast path (formats.py) and chunk "
             "compression for the dataset writer (store.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "NUM_JOINTS", NUM_JOINTS) < 0 ||
        PyModule_AddIntConstant(m, "BODY_INFO_FIELDS", BODY_INFO_FIELDS) < 0 ||
        PyModule_AddIntConstant(m, "JOINT_FIELDS", JOINT_FIELDS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
