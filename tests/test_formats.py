"""Raw readers on the real fixtures, against an independent line-by-line reader; bad input.

NTU files are read by the C parser (`skelctl/data/_speedups.c`) when it is built, and by the
numpy reader otherwise or when C refuses a file: the NTU tests run with both (`parser`), and
the two are compared token form by token form and on corrupted files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skelctl.data import formats
from skelctl.data.denoise import select_bodies
from skelctl.data.formats import (
    BODY_INFO_FIELDS,
    JOINT_FIELDS,
    MAX_BODIES,
    MAX_FRAMES,
    NUM_JOINTS,
    NtuName,
    parse_ntu_name,
    parse_pku_name,
    read_ntu_skeleton,
    read_pku_labels,
    read_pku_skeleton,
    read_pku_splits,
)
from skelctl.errors import SkelctlError

FIXTURES = Path(__file__).parent / "fixtures"
NTU_FILES = sorted((FIXTURES / "ntu").glob("*.skeleton"))
PKU_FILE = FIXTURES / "pku" / "A10N08-L.txt"
SMALL = FIXTURES / "ntu" / "S001C001P001R001A005.skeleton"  # 54 frames, 1 body, LF


@pytest.fixture(params=["c", "numpy"])
def parser(request, monkeypatch) -> str:
    """Read NTU files with the C parser (and numpy for what it refuses), or with numpy alone."""
    if request.param == "c":
        assert formats._speedups is not None, NOT_BUILT
    else:
        monkeypatch.setattr(formats, "_speedups", None)
    return request.param


NOT_BUILT = "the C extension skelctl.data._speedups is not built: run `pip install -e .`"


def reference_read(path: Path) -> dict:
    """What a plain line-by-line reader (the ST-GCN kind) gets out of a .skeleton file."""
    lines = path.read_text().splitlines()
    counts, frames, ids, info, joints = [], [], [], [], []
    row = 1
    for frame in range(int(lines[0])):
        counts.append(int(lines[row]))
        row += 1
        for _ in range(counts[-1]):
            fields = lines[row].split()
            ids.append(int(fields[0]))
            info.append([float(v) for v in fields[1:]])
            assert int(lines[row + 1]) == 25
            joints.append([[float(v) for v in lines[row + 2 + j].split()] for j in range(25)])
            frames.append(frame)
            row += 27
    assert row == len(lines)
    return {
        "body_counts": np.array(counts),
        "body_frame": np.array(frames),
        "body_id": np.array(ids, dtype=np.int64),
        "body_info": np.array(info, dtype=np.float32),
        "joints": np.array(joints, dtype=np.float32),
    }


def assert_same_file(a, b) -> None:
    for field in ("body_counts", "body_frame", "body_id", "body_info", "joints"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_fixtures_cover_both_line_endings_and_two_bodies():
    crlf = [p for p in NTU_FILES if b"\r\n" in p.read_bytes()]
    assert 0 < len(crlf) < len(NTU_FILES)
    assert any(read_ntu_skeleton(p).body_counts.max() == 2 for p in NTU_FILES)


@pytest.mark.parametrize("path", NTU_FILES, ids=lambda p: p.stem)
def test_ntu_matches_line_by_line_reader(path, parser):
    f = read_ntu_skeleton(path)
    expected = reference_read(path)
    for field, value in expected.items():
        got = getattr(f, field)
        np.testing.assert_array_equal(got, value, err_msg=field)
    assert f.joints.dtype == np.float32 and f.body_id.dtype == np.int64
    assert f.frame_count == len(expected["body_counts"])
    assert f.name == parse_ntu_name(path.name)
    assert f.path == str(path)
    np.testing.assert_array_equal(f.xyz, expected["joints"][..., :3])
    # body IDs are ~2^56: float64 would have rounded them
    assert (f.body_id > 2**53).all()


@pytest.mark.parametrize("path", NTU_FILES[:6], ids=lambda p: p.stem)
def test_ntu_crlf_and_lf_read_the_same(path, tmp_path, parser):
    data = path.read_bytes()
    lf = data.replace(b"\r\n", b"\n")
    crlf = lf.replace(b"\n", b"\r\n")
    (tmp_path / "lf").mkdir()
    (tmp_path / "crlf").mkdir()
    (tmp_path / "lf" / path.name).write_bytes(lf)
    (tmp_path / "crlf" / path.name).write_bytes(crlf)
    a = read_ntu_skeleton(tmp_path / "lf" / path.name)
    b = read_ntu_skeleton(tmp_path / "crlf" / path.name)
    assert_same_file(a, b)
    assert_same_file(a, read_ntu_skeleton(path))


def test_ntu_bytes_source_and_names():
    path = NTU_FILES[0]
    from_bytes = read_ntu_skeleton(path.read_bytes())
    assert from_bytes.name is None and from_bytes.path == "<bytes>"
    named = read_ntu_skeleton(path.read_bytes(), "raw.zip/nturgb+d_skeletons/" + path.name)
    assert named.name == parse_ntu_name(path.stem)
    assert_same_file(from_bytes, read_ntu_skeleton(path))


def test_parse_ntu_name():
    assert parse_ntu_name("S017C003P020R002A055.skeleton") == NtuName(17, 3, 20, 2, 55)
    assert parse_ntu_name("/data/raw/S032C001P106R001A120.skeleton").action == 120
    assert parse_ntu_name("S001C002P003R002A013").stem == "S001C002P003R002A013"
    for bad in ("S001C002P003R002A013.txt", "s001c002p003r002a013.skeleton", "S1C2P3R2A13",
                "S001C004P003R002A013.skeleton", "S000C001P001R001A001", "S001C001P001R003A001",
                "S001C001P001R001A121", "S033C001P001R001A001", "S001C001P107R001A001"):
        with pytest.raises(SkelctlError) as info:
            parse_ntu_name(bad)
        assert info.value.path == bad


def test_wrong_file_name_is_rejected(tmp_path):
    target = tmp_path / "sample.skeleton"
    target.write_bytes(SMALL.read_bytes())
    with pytest.raises(SkelctlError, match="not an NTU sample name"):
        read_ntu_skeleton(target)


# --- bad NTU input ------------------------------------------------------------------------------
def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def replace_line(lines: list[bytes], index: int, text: bytes) -> bytes:
    edited = list(lines)
    edited[index] = text
    return b"\n".join(edited)


def replace_token(lines: list[bytes], index: int, token: int, text: bytes) -> bytes:
    fields = lines[index].split(b" ")
    fields[token] = text
    return replace_line(lines, index, b" ".join(fields))


BASE = lines_of(SMALL)  # line 1 frame count, 2 body count, 3 body info, 4 joint count, 5.. joints
BAD_NTU = {
    "empty": (b"", 1, "empty file"),
    "only whitespace": (b" \n\r\n\t\n", 1, "empty file"),
    "frame count 0": (replace_line(BASE, 0, b"0"), 1, "frame count is 0"),
    "absurd frame count": (replace_line(BASE, 0, b"999999"), 1, "above the limit"),
    "negative frame count": (replace_line(BASE, 0, b"-3"), 1, "frame count"),
    "fractional body count": (replace_line(BASE, 1, b"1.5"), 2, "body count"),
    "absurd body count": (replace_line(BASE, 1, b"17"), 2, "above the limit of 16"),
    "wrong joint count": (replace_line(BASE, 3, b"20"), 4, "joint count of 25, got 20"),
    "joint count of 26": (replace_line(BASE, 3 + 28, b"26"), 4 + 28, "got 26"),  # frame 2
    "non-numeric token": (replace_token(BASE, 10, 2, b"abc"), 11, "expected a number, got 'abc'"),
    "two dots": (replace_token(BASE, 10, 2, b"3.78.1"), 11, "expected a number"),
    "bare sign": (replace_token(BASE, 12, 0, b"-"), 13, "expected a number, got '-'"),
    "NaN": (replace_token(BASE, 20, 1, b"NaN"), 21, "not a finite number"),
    "inf": (replace_token(BASE, 20, 1, b"-inf"), 21, "not a finite number"),
    "overflow": (replace_token(BASE, 20, 1, b"1e39"), 21, "not a finite float32"),
    "body ID not an integer": (replace_token(BASE, 2, 0, b"7205.5"), 3, "body ID"),
    "body ID beyond int64": (replace_token(BASE, 2, 0, b"99999999999999999999"), 3, "body ID"),
    "binary junk": (replace_line(BASE, 40, b"\x00\x01\x02\xfe garbage"), 41, "binary"),
    "non-UTF-8 byte": (replace_token(BASE, 7, 0, b"0.2\xe91"), 8, "non-UTF-8"),
    "letters in a count": (replace_line(BASE, 1, b"one"), 2, "expected a number"),
    "trailing garbage": (b"\n".join(BASE) + b"\n1 2 3\n", len(BASE) + 1, "unexpected data"),
    "extra frame": (b"\n".join(BASE) + b"\n0\n", len(BASE) + 1, "unexpected data"),
}


@pytest.mark.parametrize("case", sorted(BAD_NTU))
def test_bad_ntu_input_names_path_and_line(case, parser):
    data, line, reason = BAD_NTU[case]
    name = "raw/" + SMALL.name
    for text in (data, data.replace(b"\n", b"\r\n")):  # lines count the same with CRLF
        with pytest.raises(SkelctlError) as info:
            read_ntu_skeleton(text, name)
        assert info.value.path == name
        assert info.value.line == line, info.value.message
        assert reason in info.value.reason


@pytest.mark.parametrize("cut", [0.3, 0.999])
def test_truncated_file_reports_its_last_line(cut, parser):
    data = SMALL.read_bytes()
    truncated = data[: int(len(data) * cut)]
    with pytest.raises(SkelctlError) as info:
        read_ntu_skeleton(truncated, SMALL.name)
    assert "truncated" in info.value.reason
    assert info.value.line == truncated.rstrip().count(b"\n") + 1


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SkelctlError, match="cannot read file"):
        read_ntu_skeleton(tmp_path / "S001C001P001R001A001.skeleton")


CORRUPTIONS = {
    "kind": st.sampled_from(["truncate", "flip", "insert"]),
    "position": st.floats(0, 1),
    "junk": st.binary(min_size=1, max_size=12),
}


def corrupt(kind: str, position: float, junk: bytes) -> bytes:
    data = SMALL.read_bytes()
    at = int(position * len(data))
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        return data[:at] + junk + data[at + len(junk):]
    return data[:at] + junk + data[at:]


# Random corruptions of a real file: either a clean parse or a SkelctlError, never a crash.
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(**CORRUPTIONS)
def test_random_corruption_never_crashes(kind, position, junk, parser):
    data = corrupt(kind, position, junk)
    try:
        parsed = read_ntu_skeleton(data, SMALL.name)
    except SkelctlError as exc:
        assert exc.path == SMALL.name and exc.line is not None and exc.line >= 1
        return
    for method in ("denoise", "energy", "first"):
        try:
            clip = select_bodies(parsed, method)
        except SkelctlError:
            continue
        assert clip.ndim == 4 and np.isfinite(clip).all()


# --- the C parser against the numpy reader ------------------------------------------------------
def test_c_extension_is_built_for_this_format():
    """Fails rather than skips without the extension (CI builds it), so both readers are tested."""
    assert formats._speedups is not None, NOT_BUILT
    native = formats._speedups
    assert (native.NUM_JOINTS, native.BODY_INFO_FIELDS, native.JOINT_FIELDS) == (
        NUM_JOINTS, len(BODY_INFO_FIELDS), len(JOINT_FIELDS))


def outcome(data: bytes, native: bool, monkeypatch) -> tuple:
    """What the public reader makes of `data`: its arrays, or the error's (path, line, reason)."""
    with monkeypatch.context() as patch:
        if not native:
            patch.setattr(formats, "_speedups", None)
        try:
            f = read_ntu_skeleton(data, "raw/" + SMALL.name)
        except SkelctlError as exc:
            return ("error", exc.path, exc.line, exc.reason)
    return tuple(getattr(f, field) for field in ("body_counts", "body_id", "body_info", "joints"))


def assert_same_outcome(data: bytes, monkeypatch) -> bool:
    """C and numpy agree bit for bit (signs of zeros included), or fail with the same error, and C
    refuses every file numpy rejects (it never explains errors itself). True for a clean file."""
    assert formats._speedups is not None, NOT_BUILT
    c, plain = outcome(data, True, monkeypatch), outcome(data, False, monkeypatch)
    if isinstance(plain[0], str):
        assert formats._speedups.parse_ntu(data, MAX_FRAMES, MAX_BODIES) is None
        assert c == plain
        return False
    for got, expected in zip(c, plain, strict=True):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert got.tobytes() == expected.tobytes()
    return True


def with_joint_tokens(tokens: list[bytes]) -> bytes:
    """SMALL with its joint lines' numbers replaced by `tokens` (cycled), line structure kept."""
    lines = lines_of(SMALL)
    k = 0
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) == len(JOINT_FIELDS):
            fields = [tokens[(k + j) % len(tokens)] for j in range(len(fields))]
            k += len(fields)
            lines[i] = b" ".join(fields) + (b"\r" if line.endswith(b"\r") else b"")
    return b"\n".join(lines)


# Beyond NUMBER_FORMS: the lengths where the C reader switches methods (8 and 16 digits, with
# and without a dot, the dot in the second 8 bytes), exponents, signs, leading zeros.
C_NUMBER_FORMS = [
    b"12345678", b"123456789", b"1234567.8", b"12345678.9", b"0.05349901", b"-0.001234567",
    b"1234567890123456", b"12345678901234567", b"123456789012345.6", b"9007199254740993",
    b"9007199254740992.5", b"-12345678.90123456", b".12345678", b"-.123456789", b"0000000001",
    b"-0.0", b"+0.5", b"+12", b"1E5", b"1e-7", b"-7.257856E-05", b"1.5e+22", b"3e-45",
    b"1e-46", b"123456789012345678901234567890", b"0." + b"0" * 30 + b"7", b"3.4028235e38",
]


def test_c_and_numpy_agree_on_every_number_form(monkeypatch):
    rng = np.random.default_rng(1)
    tokens = NUMBER_FORMS + C_NUMBER_FORMS
    for _ in range(3000):  # plus what a float32 printer writes
        value = np.float32(rng.normal() * 10.0 ** rng.integers(-9, 9))
        form = rng.choice(["{:.7g}", "{:.9g}", "{:.4f}", "{:.12f}", "{!r}", "{:.3e}", "{:.8E}"])
        tokens.append(form.format(float(value)).encode())
    data = with_joint_tokens(tokens)
    assert formats._speedups.parse_ntu(data, MAX_FRAMES, MAX_BODIES) is not None  # no fallback
    assert assert_same_outcome(data, monkeypatch)
    joints = read_ntu_skeleton(data).joints.reshape(-1)
    expected = [np.float32(float(tokens[k % len(tokens)])) for k in range(len(joints))]
    assert joints.tobytes() == np.array(expected, dtype=np.float32).tobytes()


BAD_TOKENS = [
    b"1.2.3", b"--1", b"1-", b"-", b".", b"+", b"-.", b"1e", b"e5", b"1e+", b"1e5.5", b"0x10",
    b"1_0", b"nan", b"-inf", b"1,5", b"+-1", b"1..", b"..1", b"12345678.9.1", b"1e39", b"-1e39",
    b"3.5e38", b"1" * 80, b"\x001", b"1\x00", b"\xc3\xa9", b"1\x0c2",
]


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_c_refuses_every_bad_number(token, monkeypatch):
    for at in (0, 5, 11):  # first, middle and last number of a joint line
        tokens = [b"0.5"] * 300
        tokens[at + 12 * 7] = token
        assert not assert_same_outcome(with_joint_tokens(tokens), monkeypatch)


@pytest.mark.parametrize("case", sorted(BAD_NTU))
def test_c_refuses_every_bad_file(case, monkeypatch):
    data = BAD_NTU[case][0]
    for text in (data, data.replace(b"\n", b"\r\n")):
        assert not assert_same_outcome(text, monkeypatch)


@pytest.mark.parametrize("line, text", [(1, b"1.0"), (1, b"+1"), (1, b"01"), (3, b"25.0"),
                                        (3, b"+25"), (3, b"0025")])
def test_unusual_counts_read_the_same(line, text, monkeypatch):
    """The numpy reader takes a count written as any number it reads exactly, C only plain
    digits: what C refuses, numpy reads, so the outcome is the same."""
    assert assert_same_outcome(replace_line(BASE, line, text), monkeypatch)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(**CORRUPTIONS)
def test_c_and_numpy_agree_on_random_corruptions(kind, position, junk, monkeypatch):
    assert_same_outcome(corrupt(kind, position, junk), monkeypatch)


# --- the number parser, through PKU files (150 numbers per line) --------------------------------
NUMBER_FORMS = [
    b"0", b"-0", b"1", b"+1", b"25", b"72057594037931101", b"0.2181153", b"-0.2059419",
    b"1036.233", b"-7.257856E-05", b"1e-3", b"2E+2", b"5.", b".5", b"-.5", b"+.25",
    b"000123.4500", b"123456789012345", b"12345678901234.5", b"0.12345678901234567890",
    b"-1234567.891011121314", b"3.4028234e38", b"1e-50", b"9" * 15, b"0." + b"0" * 13 + b"1",
]


def test_number_forms_parse_like_float(tmp_path):
    rng = np.random.default_rng(0)
    tokens = [NUMBER_FORMS[i % len(NUMBER_FORMS)] for i in range(150 * 4)]
    for _ in range(150 * 40):  # plus generated ones, as the fast path sees in real files
        value = rng.normal() * 10.0 ** rng.integers(-6, 5)
        form = rng.choice(["{:.7g}", "{:.7G}", "{:.4f}", "{:.10f}", "{!r}", "{:.3e}"])
        tokens.append(form.format(float(np.float32(value))).encode())
    rows = [b" ".join(tokens[i:i + 150]) for i in range(0, len(tokens), 150)]
    data = b"\r\n ".join(rows) + b"\r\n"
    values = read_pku_skeleton(data, "numbers.txt").reshape(-1)
    expected = np.array([np.float32(float(t)) for t in tokens], dtype=np.float32)
    np.testing.assert_array_equal(values, expected)
    assert (np.signbit(values) == np.signbit(expected)).all()


# --- PKU-MMD ------------------------------------------------------------------------------------
def test_pku_skeleton_matches_loadtxt(tmp_path):
    video = read_pku_skeleton(PKU_FILE)
    assert video.shape == (1040, 2, 25, 3) and video.dtype == np.float32
    expected = np.loadtxt(PKU_FILE, dtype=np.float64).astype(np.float32).reshape(-1, 2, 25, 3)
    np.testing.assert_array_equal(video, expected)
    present = video.any(axis=(2, 3))
    assert present[:, 0].all() and 0 < present[:, 1].sum() < len(video)  # body 2 from frame 312
    crlf = tmp_path / PKU_FILE.name
    crlf.write_bytes(PKU_FILE.read_bytes().replace(b"\n", b"\r\n"))
    np.testing.assert_array_equal(read_pku_skeleton(crlf), video)


def test_bad_pku_skeleton_names_the_line():
    lines = PKU_FILE.read_bytes().split(b"\n")
    short = list(lines)
    short[6] = b" ".join(short[6].split()[:149])
    cases = {
        b"": (1, "empty file"),
        b"\n".join(short): (7, "got 149"),
        b"\n".join(lines[:9] + [lines[9] + b" 1.0"] + lines[10:]): (10, "got 151"),
        b"\n".join(lines[:3] + [b" nan " + lines[3].split(None, 1)[1]] + lines[4:]): (4, "finite"),
        b"\n".join(lines[:5] + [b"\x89PNG"] + lines[5:]): (6, "binary"),
    }
    for data, (line, reason) in cases.items():
        with pytest.raises(SkelctlError) as info:
            read_pku_skeleton(data, "A10N08-L.txt")
        assert (info.value.path, info.value.line) == ("A10N08-L.txt", line)
        assert reason in info.value.reason


def test_pku_labels(tmp_path):
    path = tmp_path / "0002-L.txt"
    path.write_text("12,10,20,1\n\n 5, 100 ,180,2,\r\n,,,\n41,500,520,1")
    rows = read_pku_labels(path)
    assert rows.dtype == np.int64
    np.testing.assert_array_equal(rows, [[12, 10, 20, 1], [5, 100, 180, 2], [41, 500, 520, 1]])
    assert read_pku_labels(b"").shape == (0, 4)
    for text, line in ((b"1,2,3\n", 1), (b"1,2,3,4\n1,a,3,4\n", 2), (b"1,20,3,1", 1),
                       (b"0,2,3,1", 1), (b"1,2,3,4,5", 1), (b"1,-2,3,1", 1)):
        with pytest.raises(SkelctlError) as info:
            read_pku_labels(text, "labels.txt")
        assert (info.value.path, info.value.line) == ("labels.txt", line)
    with pytest.raises(SkelctlError, match="UTF-8"):
        read_pku_labels(b"1,2,3,4\n\xff", "labels.txt")


def write_split(path: Path, train: list[str], test: list[str], header: str) -> None:
    path.write_text(f"Training videos: \n{', '.join(train)}\n{header}\n{', '.join(test)}\n")


def test_pku_splits_both_versions_and_spellings(tmp_path):
    v1 = tmp_path / "v1"
    v1.mkdir()
    write_split(v1 / "cross-subject.txt", ["0002-L", "0002-M"], ["0003-R"], "Validataion videos:")
    write_split(v1 / "cross_view.txt", ["0002-M", "0003-R"], ["0002-L"], "Validation videos:")
    splits = read_pku_splits(v1, 1)
    assert splits == {"xsub": (["0002-L", "0002-M"], ["0003-R"]),
                      "xview": (["0002-M", "0003-R"], ["0002-L"])}
    v2 = tmp_path / "v2"
    v2.mkdir()
    write_split(v2 / "cross_subject_v2.txt", ["A01N01-L", "A10N08-L"], ["A01N02-M"],
                "Validataion videos:")
    assert read_pku_splits(v2, 2) == {"xsub": (["A01N01-L", "A10N08-L"], ["A01N02-M"])}
    (v2 / "cross-view-v2.txt").write_text("\ufeffTraining videos: A01N01-L,\r\n"
                                          "Validataion videos: A01N01-M, A01N01-R\r\n")
    assert read_pku_splits(v2, 2)["xview"] == (["A01N01-L"], ["A01N01-M", "A01N01-R"])
    with pytest.raises(SkelctlError, match="no PKU-MMD v1 split file"):
        read_pku_splits(v2, 1)
    with pytest.raises(SkelctlError, match="not found"):
        read_pku_splits(tmp_path / "nowhere", 2)
    with pytest.raises(SkelctlError, match="version"):
        read_pku_splits(v2, 3)


def test_bad_pku_split_file_names_the_line(tmp_path):
    (tmp_path / "cross-view.txt").write_text("Training videos:\n0002-L, oops\nValidataion videos:\n0003-R\n")
    with pytest.raises(SkelctlError) as info:
        read_pku_splits(tmp_path, 1)
    assert info.value.line == 2 and "oops" in info.value.reason
    (tmp_path / "cross-view.txt").write_text("0002-L\n")
    with pytest.raises(SkelctlError, match="Training videos"):
        read_pku_splits(tmp_path, 1)
    (tmp_path / "cross-view.txt").write_text("Training videos:\n0002-L\n")
    with pytest.raises(SkelctlError, match="validation list"):
        read_pku_splits(tmp_path, 1)


def test_parse_pku_name():
    v1 = parse_pku_name("0002-L.txt")
    assert (v1.stem, v1.version, v1.view, v1.subject) == ("0002-L", 1, "L", -1)
    v2 = parse_pku_name(PKU_FILE)
    assert (v2.stem, v2.version, v2.view, v2.subject) == ("A10N08-L", 2, "L", 8)
    for bad in ("0002-X.txt", "A10N08.txt", "2-L", "A1N8-L", "0002-L.skeleton"):
        with pytest.raises(SkelctlError):
            parse_pku_name(bad)
