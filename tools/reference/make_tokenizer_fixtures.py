#!/usr/bin/env python3
"""Reference fixtures for the CLIP tokenizer tests (Tests/CLIPTokenizerTests/Fixtures/).

    /work/main/tools/reference/.venv/bin/python tools/reference/make_tokenizer_fixtures.py

Writes
  corpus.json  curated strings + a deterministic random mixed-script corpus, each with
               open_clip.tokenize(text, context_length=77) and SimpleTokenizer.decode(encode(text));
               a few with other context lengths.
  gzip.json    small inputs compressed by Python's gzip/zlib (stored, fixed-Huffman, dynamic
               blocks, several members) for the Swift inflater.
Versions used are recorded in both files.
"""
import base64
import gzip
import json
import pathlib
import random
import sys
import unicodedata
import zlib

import ftfy
import open_clip
import regex
from open_clip.tokenizer import _tokenizer, tokenize

OUT = pathlib.Path(__file__).resolve().parents[2] / "Tests/CLIPTokenizerTests/Fixtures"

CURATED = [
    # plain captions
    "a photo of a cat", "A Photo Of A Dog.", "a diagram", "an image of a red car parked on the street",
    "two people walking on the beach at sunset", "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "a photo of a {}.", "itap of a {}.", "a bad photo of the {}.", "a origami {}.",
    # empty / whitespace
    "", " ", "   ", "\t", "\n", "\r\n", " \t\n\r\x0b\x0c ", "a  b", "a\t\tb", "a\n\nb\r\nc", "  leading and trailing  ",
    "tabs\tin\tthe\tmiddle", "line one\nline two\nline three", "nbsp\u00a0here", "ideographic\u3000space",
    "em\u2003space and thin\u2009space", "line\u2028sep para\u2029sep", "next\x85line",
    # contractions
    "it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "I'LL", "IT'S", "WE'VE", "THEY'RE", "SHE'D",
    "'s 't 're 've 'm 'll 'd", "''s", "it''s", "rock'n'roll", "o'clock", "cats' toys", "'hello'",
    "it\u2019s curly", "\u2018single\u2019 and \u201cdouble\u201d", "\u201ehalf\u201f",
    "modifier\u02bcapostrophe", "it\u02bcs", "\u00abguillemets\u00bb", "\u2039single guillemets\u203a",
    # numbers
    "123", "3.14159", "1,000,000", "2024-01-15", "12:30pm", "$19.99", "100%", "-42", "1e10", "0x1F",
    "\u0661\u0662\u0663 arabic digits", "\u0967\u0968\u0969 devanagari digits", "\u00bd \u00bc \u00be fractions",
    "\u2160 \u2161 \u2162 roman", "x\u00b2 + y\u00b3", "\u2460\u2461\u2462 circled", "\uff11\uff12\uff13 fullwidth digits",
    # punctuation runs
    "!!!", "?!?!", "...", "hello, world!", "wait... what?!", "--", "(parentheses)", "[brackets] {braces}",
    "a/b\\c", "@user #hashtag", "#1 best", "a_b_c", "snake_case_name", "***bold***", "~~~", ":-) ;-( :D",
    "quote \"inside\" text", "\u2014em dash\u2013en dash", "\u2026ellipsis", "\u00bfque?\u00a1si!",
    # accents
    "caf\u00e9", "cafe\u0301", "na\u00efve r\u00e9sum\u00e9", "nai\u0308ve", "Cr\u00e8me Br\u00fbl\u00e9e",
    "\u00c0 LA MODE", "\u00fcber stra\u00dfe", "STRASSE STRA\u1e9eE", "\u00e5ngstr\u00f6m", "\u00f1and\u00fa",
    "\u0130stanbul", "I\u0307stanbul", "\u0131\u015f\u0131k", "\u0152uvre \u00e6on", "Dvo\u0159\u00e1k",
    "\u1e9b\u0323", "q\u0307\u0323", "a\u0323\u0307", "a\u0307\u0323", "\u212b ohm \u2126 kelvin \u212a",
    # Greek / Cyrillic (final sigma)
    "\u039f\u0394\u039f\u03a3", "\u03a3\u0391\u03a3 \u03a3", "\u039a\u0391\u039b\u0397\u039c\u0395\u03a1\u0391 \u039a\u039f\u03a3\u039c\u0395",
    "\u03a3.", "A\u03a3'", "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440", "\u041c\u041e\u0421\u041a\u0412\u0410",
    # CJK
    "\u732b\u306e\u5199\u771f", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u4e2d\u6587\u5b57\u7b26", "\ud55c\uad6d\uc5b4 \ubb38\uc7a5",
    "\u1100\u1161\u11a8 jamo", "\uff8a\uff9d\uff76\uff78 halfwidth katakana", "\u30ab\u3099 combining voiced",
    "\u6771\u4eac\u30bf\u30ef\u30fc 2024", "\u3001\u3002\u300c\u300d punctuation", "\U0002000b extension B",
    # Arabic / Hebrew / Hindi / Thai
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", "\u0627\u0644\u0652\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u0651\u064e\u0629",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd", "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0915\u094d\u0937\u0924\u094d\u0930\u093f\u092f", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22", "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8", "\u0531\u0580\u0574\u0565\u0576",
    "\u1780\u1798\u17d2\u1796\u17bb\u1787\u17b6", "\u0b85\u0bae\u0bcd\u0bae\u0bbe", "\u1203\u1308\u122d",
    # emoji
    "\U0001f600", "\U0001f431 cat", "I \u2764\ufe0f NY", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f1ef\U0001f1f5 flag", "\U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f",
    "#\ufe0f\u20e3 keycap", "\U0001f469\U0001f3ff\u200d\U0001f4bb", "\u263a \u2603 \u2708", "\U0001f525\U0001f525\U0001f525 lit",
    "emoji\U0001f600in\U0001f600text",
    # HTML entities
    "&amp;", "&lt;", "&gt;", "&#39;", "&amp;amp;", "&amp;amp;amp;", "Tom &amp; Jerry", "caf&eacute;", "&EACUTE;",
    "&#x2019;s", "&#8217;", "&#x41;&#66;", "&nbsp;space", "&copy; 2024", "&hellip;", "&notit;", "&not",
    "this&not that", "&amp", "&ampxyz;", "fish &chips", "AT&T", "&#0;", "&#128;", "&#x80;", "&#xD800;",
    "&#1114112;", "&#99999999999999999999;", "&#12", "&#x;", "&#;", "&unknownentity;", "<b>bold</b> &amp; more",
    "1 < 2 &amp; 3", "a<b &lt; c", "&lt;b&gt;tag&lt;/b&gt;", "&LT;", "&QUOT;", "&Amp;", "&NTILDE;",
    "line &amp;\nline <b> &amp;\nthird &amp;", "&#65&#66&#67", "&#x1F600;", "&#128512;",
    # ftfy fixers
    "\ufb01sh \ufb02y \ufb00 \ufb03 \ufb04 \ufb05 \ufb06", "\u0132sselmeer \u0133s", "\u0149", "\u01c4 \u01c5 \u01c6 \u01c7 \u01c8 \u01c9 \u01ca \u01cb \u01cc \u01f1 \u01f2 \u01f3",
    "\uff2c\uff2f\uff35\uff24 \uff2e\uff2f\uff29\uff33\uff25\uff33", "\uff01\uff1f\uff08\uff09", "\uffe5100 \uffe0 \uffe1",
    "\x1b[36;44mcolored\x1b[0m text", "\x1b[1mbold", "bell\x07char", "null\x00char", "del\x7fchar", "zero\u200bwidth",
    "zw\u200cnj\u200dj", "bom\ufeffmark", "\u206aarabic control", "\ufffcobject", "rtl\u200fmark", "soft\u00adhyphen",
    "c1 \x80 \x85 \x91quoted\x92 \x9d", "\u2122\u00ae\u00a9", "tag\U000e0041chars",
    # math / symbols
    "\u2200x \u2203y: x \u2264 y", "\u222b f(x) dx = \u221e", "\u03b1 + \u03b2 = \u03b3", "\u2211\u220f\u221a\u2248\u2260",
    "E = mc\u00b2", "\u00b5m \u03bcm", "\u2103 \u2109", "\u00b1 \u00d7 \u00f7", "\U0001d400\U0001d401 math bold", "\u2124\u211d\u2102",
    # URLs / code
    "https://www.example.com/path?q=1&r=2#frag", "http://example.com/a&amp;b", "user@example.com",
    "www.openai.com/clip", "C:\\Users\\name\\file.txt", "def f(x): return x**2", "<start_of_text>", "<end_of_text>",
    "hello <start_of_text> world <end_of_text>", "<START_OF_TEXT>", "<\u017ftart_of_text>", "x<end_of_text>y", "!<end_of_text>",
    # decode edge cases and the one code point IGNORECASE changes (U+0345)
    "</w> tag", "x</w>y", "\u1fb3", "\u03b1\u0345", "\u0345 alone", "a\u0345b", "!\u0345!",
    # long
    "a photo of a " + "very " * 100 + "long caption",
    " ".join(["word%d" % i for i in range(120)]),
    "supercalifragilisticexpialidocious" * 10,
    "\u732b" * 200,
    "\U0001f600" * 100,
    "1234567890" * 20,
    ("the quick brown fox jumps over the lazy dog. " * 8).strip(),
    "a " * 74 + "b",  # exactly fills 77 with sot/eot (75 tokens)
    "a " * 75 + "b",  # one too many
    "a " * 76,
]

MOJIBAKE = [
    "caf\u00c3\u00a9", "\u00e2\u0153\u201d No problems", "sch\u00c3\u00b6n", "voil\u00c3\u00a0 le travail",
    "\u00c3\u00a9l\u00c3\u00a8ve", "I\u00e2\u20ac\u2122m", "\u00e2\u20ac\u0153quoted\u00e2\u20ac\u009d",
]

OTHER_CONTEXT = [
    ("a photo of a cat", 5), ("a photo of a cat", 1), ("a photo of a cat", 2), ("a photo of a cat", 3),
    ("", 2), ("", 1), ("hello world", 100), ("\u732b" * 30, 16),
]

# Blocks for the random corpus: assigned characters from many scripts, in Unicode 14 (the
# unicodedata of the Python used) so every library agrees on their properties.
BLOCKS = [
    (0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x530, 0x58F), (0x590, 0x5FF),
    (0x600, 0x6FF), (0x900, 0x97F), (0x980, 0x9FF), (0xE00, 0xE7F), (0x10A0, 0x10FF), (0x1100, 0x11FF),
    (0x1E00, 0x1EFF), (0x2000, 0x206F), (0x2070, 0x209F), (0x20A0, 0x20BF), (0x2100, 0x214F),
    (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2460, 0x24FF), (0x2500, 0x257F), (0x2600, 0x26FF),
    (0x3000, 0x303F), (0x3040, 0x309F), (0x30A0, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00),
    (0xFB00, 0xFB4F), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F),
    (0x1F900, 0x1F9FF), (0x1D400, 0x1D4FF), (0x0300, 0x036F),
]
WORDS = ["a", "photo", "of", "the", "cat", "dog's", "I'LL", "&amp;", "&lt;", "&#39;", "&eacute;", "...",
         "!!", "2024", "3.5", "\u00e9t\u00e9", "\u732b", "\U0001f44d\U0001f3fd", "\u2019", "\u201c", "\t", "\n", "  "]


def random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 14)):
        if rng.random() < 0.4:
            parts.append(rng.choice(WORDS))
        else:
            lo, hi = rng.choice(BLOCKS)
            chars = []
            for _ in range(rng.randint(1, 8)):
                while True:
                    c = chr(rng.randint(lo, hi))
                    if unicodedata.category(c) not in ("Cn", "Cs", "Co"):
                        break
                chars.append(c)
            parts.append("".join(chars))
        parts.append(rng.choice([" ", " ", " ", "", "  ", "\n", "\t", ", "]))
    return "".join(parts)


def row(text, context_length=77):
    return tokenize([text], context_length=context_length)[0].tolist()


def uses_mojibake_fix(text: str) -> bool:
    return ftfy.fix_text(text) != ftfy.fix_text(text, fix_encoding=False)


def entry(text, context_length=77):
    ids = _tokenizer.encode(text)
    return {"text": text, "context_length": context_length, "ids": row(text, context_length),
            "decoded": _tokenizer.decode(ids)}


def dump_one_entry_per_line(obj: dict) -> str:
    """JSON with one list element per line: readable diffs without 70,000 one-number lines."""
    def val(v):
        if isinstance(v, list):
            return "[\n" + ",\n".join(json.dumps(x, ensure_ascii=False) for x in v) + "\n]"
        return json.dumps(v, ensure_ascii=False)
    return "{\n" + ",\n".join(f"{json.dumps(k)}: {val(v)}" for k, v in obj.items()) + "\n}\n"


def main():
    versions = {"python": sys.version.split()[0], "open_clip": open_clip.__version__, "ftfy": ftfy.__version__,
                "regex": regex.__version__, "unicodedata": unicodedata.unidata_version}
    curated = []
    for t in CURATED:
        assert not uses_mojibake_fix(t), f"curated string relies on ftfy's mojibake repair: {t!r}"
        curated.append(entry(t))
    for t, n in OTHER_CONTEXT:
        curated.append(entry(t, n))
    mojibake = []
    for t in MOJIBAKE:
        assert uses_mojibake_fix(t), t
        fixed = ftfy.fix_text(t)
        assert row(fixed) == row(t), t  # tokenizing the repaired text gives the same ids
        mojibake.append({"text": t, "repaired": fixed, "ids": row(t)})
    rng = random.Random(1234)
    rand, dropped = [], 0
    while len(rand) < 500:
        t = random_text(rng)
        if uses_mojibake_fix(t):
            dropped += 1
            continue
        rand.append(entry(t))
    corpus = {
        "generator": "tools/reference/make_tokenizer_fixtures.py", "versions": versions,
        "curated": curated, "random": rand, "random_seed": 1234, "random_dropped_for_mojibake": dropped,
        "mojibake": mojibake,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "corpus.json").write_text(dump_one_entry_per_line(corpus))

    # gzip cases
    text = b"".join(b"line %d: the quick brown fox %s\n" % (i, b"ab" * (i % 7)) for i in range(120))
    noise_rng = random.Random(7)
    noise = bytes(noise_rng.getrandbits(8) for _ in range(3000))

    def zgzip(data, level, strategy=zlib.Z_DEFAULT_STRATEGY, mem_level=9):
        c = zlib.compressobj(level, zlib.DEFLATED, 31, mem_level, strategy)
        return c.compress(data) + c.flush()

    cases = [
        ("empty", b"", gzip.compress(b"", mtime=0)),
        ("stored", text, gzip.compress(text, compresslevel=0, mtime=0)),
        ("fixed", text, zgzip(text, 6, zlib.Z_FIXED)),
        ("dynamic", text, gzip.compress(text, compresslevel=9, mtime=0)),
        ("noise", noise, gzip.compress(noise, compresslevel=6, mtime=0)),
        ("rle", b"a" * 5000 + b"b" * 300, zgzip(b"a" * 5000 + b"b" * 300, 6, zlib.Z_RLE)),
        ("huffman_only", text, zgzip(text, 6, zlib.Z_HUFFMAN_ONLY)),
        ("two_members", text + noise, gzip.compress(text, mtime=0) + gzip.compress(noise, mtime=0)),
        ("many_stored", noise, zgzip(noise, 0, mem_level=1)),  # small buffers: many stored blocks
    ]
    for name, raw, comp in cases:
        assert gzip.decompress(comp) == raw, name
    gz = {"generator": "tools/reference/make_tokenizer_fixtures.py", "versions": versions,
          "cases": [{"name": n, "gzip": base64.b64encode(c).decode(), "raw": base64.b64encode(r).decode(),
                     "crc32": zlib.crc32(r)} for n, r, c in cases]}
    (OUT / "gzip.json").write_text(json.dumps(gz, indent=0) + "\n")
    print(f"curated {len(curated)}, random {len(rand)} (dropped {dropped}), mojibake {len(mojibake)}, gzip {len(cases)}")


if __name__ == "__main__":
    main()
