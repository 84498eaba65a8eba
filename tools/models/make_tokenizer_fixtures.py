#!/usr/bin/env python3
"""Tiny UMT5-style tokenizer fixtures for the Swift port of FlashWorld's prompt tokenization.

FlashWorld tokenizes "[Static] " + prompt with the umt5-xxl `T5TokenizerFast` (a sentencepiece Unigram vocabulary
converted to a Hugging Face `tokenizer.json`), padding to 512 with truncation. The real file (256,384 entries) is not
available here, so this script trains a small sentencepiece Unigram model the same way (nmt_nfkc normalization,
pad 0 / eos 1 / unk 2, no bos), converts it with transformers exactly as `T5TokenizerFast` is built from a
sentencepiece model, and records what the Hugging Face stack outputs for ~45 adversarial strings.

Writes Tests/ModelTests/Fixtures/tokenizer-tiny/ (committed; the Swift tests never run Python):

    tokenizer.json           backend_tokenizer as transformers' save_pretrained writes it
    tokenizer_config.json    as save_pretrained writes it (transformers 5 writes no special_tokens_map.json)
    cases.json               inputs and the outputs of every pipeline stage, one case per line
    manifest.json            versions, training settings, every tokenizer.json section (charsmap elided),
                             the pipeline variants that other transformers versions use, field docs, statistics

Set-up and run (CPU, ~1 minute, nothing is downloaded), from the repository root:

    /tmp/gsvenv/bin/pip install transformers tokenizers sentencepiece protobuf regex
    /tmp/gsvenv/bin/python tools/models/make_tokenizer_fixtures.py

Size: the full nmt_nfkc table is a 240 KB blob (320 KB as base64), which with a 2000-piece vocabulary would not fit the
400 KB budget of the folder. The model is trained with the full table, but the table written into tokenizer.json is
a *subset of the same rules* (all keys of 1, 2 or 4 code points, and the 3-code-point keys any case can reach),
compiled by sentencepiece's own builder, so the blob has the real format. The script checks that every case gives
identical normalized strings, tokens and ids under the full table and under the subset.

Checks made before anything is written (the script stops on any failure):
  * an independent reader of the precompiled_charsmap (double-array walk written here from the format) enumerates
    exactly the rules sentencepiece's Decompile() reports, for the full and the subset table;
  * a re-implementation of the tokenizers Precompiled normalizer (grapheme by grapheme, first trie hit) reproduces
    tokenizers' normalize_str for every case and for every one-character key of the full table;
  * a re-implementation of the Unigram Viterbi reproduces the model's tokens for every pre-token;
  * transformers (T5Tokenizer.from_pretrained on the saved folder, i.e. T5TokenizerFast) and the plain tokenizers
    library (Tokenizer.from_file, which is what transformers 4.x uses) agree on every case;
  * the committed files are byte-identical on a second run (sentencepiece trains single-threaded).
"""

import base64
import hashlib
import json
import pathlib
import platform
import random
import re
import shutil
import struct
import sys
import tempfile
import unicodedata

import regex  # grapheme clusters (\X), a transformers dependency
import sentencepiece as spm
import tokenizers
import transformers
from sentencepiece import sentencepiece_model_pb2 as spm_pb2
from tokenizers import Tokenizer, normalizers
from transformers import T5Tokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "ModelTests" / "Fixtures" / "tokenizer-tiny"
SEED = 20260312
VOCAB_SIZE = 2000
EXTRA_IDS = 3  # umt5 has hundreds of <extra_id_N> sentinels; three exercise the same mechanism cheaply
MAX_LENGTH = 512
PREFIX = "[Static] "
BUDGET = 400_000

# ----------------------------------------------------------------------------------------------------------------
# training corpus (generated, deterministic)
# ----------------------------------------------------------------------------------------------------------------

ADJ = ("ancient abandoned quiet busy narrow wide foggy misty rainy sunny snowy frozen golden silver rusty wooden "
       "glass stone marble brick neon glowing dark bright colorful pale vivid soft warm cold tall tiny huge "
       "crowded empty peaceful dramatic cinematic futuristic medieval gothic baroque rustic cozy modern "
       "overgrown flooded sunlit moonlit windswept hazy dusty wet dry shimmering towering crumbling hidden "
       "sacred royal humble elegant weathered painted tiled curved spiral floating underwater volcanic "
       "tropical arctic alpine coastal urban rural industrial mossy lush barren serene chaotic").split()
NOUN = ("castle village city town street alley market harbor bridge tower lighthouse temple shrine cathedral "
        "church monastery palace fortress ruins cabin cottage farmhouse barn mill station platform tunnel "
        "subway garden courtyard fountain plaza square park forest jungle meadow field valley canyon cliff "
        "mountain volcano glacier lake river waterfall stream pond beach island lagoon reef desert dune oasis "
        "cave grotto library museum gallery theater cafe restaurant kitchen bedroom attic basement workshop "
        "laboratory observatory greenhouse spaceship space station skyscraper rooftop balcony staircase "
        "corridor hallway arcade pier dock boat ship sailboat airship train tram bicycle lantern statue "
        "archway gate wall fence road highway path trail vineyard orchard rice terraces pagoda windmill").split()
PLACE = ("Kyoto Tokyo Paris Venice Rome Prague Vienna Lisbon Istanbul Marrakesh Cairo Petra Santorini Iceland "
         "Norway Patagonia Yosemite Scotland Bavaria Tuscany Provence Havana Rio Seoul Shanghai Hong Kong "
         "Singapore Bangkok Hanoi Kathmandu Tibet Mongolia Siberia Alaska Quebec Amsterdam Bruges Dubrovnik").split()
LIGHT = ("at sunrise|at sunset|at dusk|at dawn|at night|at noon|during golden hour|during blue hour|under a full "
         "moon|under heavy rain|in thick fog|in light snow|with soft morning light|with harsh midday sun|with "
         "volumetric light rays|lit by street lamps|lit by candles|under the northern lights|under a starry sky|"
         "after a storm|before a thunderstorm|in early spring|in late autumn|in midsummer|in deep winter").split("|")
STYLE = ("photorealistic|highly detailed|8k|4K UHD|HDR|wide angle|aerial view|drone shot|eye level|low angle|"
         "bird's-eye view|panoramic|35mm film|shallow depth of field|long exposure|tilt-shift|isometric|"
         "oil painting|watercolor|concept art|matte painting|Studio Ghibli style|Unreal Engine render|"
         "octane render|volumetric fog|ray tracing|cinematic lighting|symmetrical composition").split("|")
VERB = ("standing|sitting|walking|flying|floating|resting|sleeping|reflected|hidden|surrounded|covered|built|"
        "carved|perched|nestled|stretching|winding|glowing|drifting|crumbling").split("|")
PREP = "on in near beside behind above below under between across along over through inside outside".split()
EXTRA_EN = ("with people walking by|with a red umbrella|with cherry blossoms|with autumn leaves|with ivy on the "
            "walls|with boats moored nearby|with a stray cat|with paper lanterns|with steam rising|with birds "
            "circling|with laundry hanging|with graffiti|with market stalls|with a distant mountain range|"
            "with reflections in puddles|with fireflies|with a winding staircase|with stained glass windows").split("|")
MULTI = [
    "Un petit café à Paris, crème brûlée et thé glacé, façade élégante près de la Seine.",
    "Une forêt enneigée au crépuscule, lumière dorée, atmosphère paisible et mystérieuse.",
    "Ein gemütliches Häuschen im Schwarzwald, Nebel über den Bäumen, Straßenlaterne, Frühling.",
    "Die Brücke über die Moldau in Prag, Kopfsteinpflaster, Dämmerung, Schnee.",
    "Una plaza soleada en Sevilla, naranjos, azulejos, jalapeño y piñata en el mercado.",
    "Montañas nevadas de la Patagonia, lago turquesa, cielo despejado, niño con sombrero.",
    "Uma praia tranquila em São Paulo, coqueiros, pôr do sol, ação e emoção.",
    "Zamek w Łodzi nocą, śnieg, światła miasta, żółte latarnie.",
    "Zámek v Českém Krumlově, řeka Vltava, podzim, Dvořák hraje v dálce.",
    "Phố cổ Hội An về đêm, đèn lồng rực rỡ, sông Thu Bồn, tiếng Việt rất đẹp.",
    "Göteborg i vinterljus, Ångström-laboratoriet, fjällen i norr, smörgåsbord.",
    "İstanbul'da Boğaz manzarası, martılar, çay bahçesi, güneş batımı.",
    "Reykjavík undir norðurljósum, þögn og snjór, fjörður.",
    "一座古老的城市在夜晚灯火通明，街道上人来人往，远处是连绵的群山。",
    "山间的小木屋，清晨的薄雾，湖面倒映着金色的阳光。",
    "繁华的上海外滩，霓虹灯闪烁，黄浦江上游船穿梭。",
    "江南水乡的小桥流水人家，细雨蒙蒙，青石板路。",
    "长城蜿蜒在秋天的山脊上，红叶满山，天空湛蓝。",
    "沙漠中的绿洲，骆驼商队，夕阳西下，金色沙丘。",
    "雪后的故宫，红墙金瓦，游客稀少，安静祥和。",
    "未来城市的天际线，飞行汽车，高楼林立，赛博朋克风格。",
    "東京の夜景、雨に濡れた路地、ネオンの看板、静かな雰囲気。",
    "京都の古いお寺、紅葉、石畳の道、朝の光。",
    "富士山と桜、春の湖、ひらがなとカタカナの看板、電車が走る。",
    "北海道の雪原、星空、小さな木造の駅。",
    "서울의 밤거리, 네온사인, 비 오는 골목, 포장마차.",
    "경복궁의 가을, 단풍, 한복을 입은 사람들, 맑은 하늘.",
    "제주도의 해변, 돌담, 유채꽃, 푸른 바다.",
]
SPECIAL_LINES = [
    "ＡＢＣ１２３！？（全角）ｆｕｌｌ　ｗｉｄｔｈ ｔｅｘｔ",
    "ﬁeld of ﬂowers, ﬃ ﬄ ligatures, ① ② ③ ④ ⑤, ™ ℃ ½ ¼ x² m³ 5㎞ 10㎏ Ⅻ Ⅳ",
    "ｶﾀｶﾅ ﾃｽﾄ ｶﾞｷﾞｸﾞ, half width katakana",
    "🌅 sunrise 🏔️ mountains 🌊 waves 🏙️ city 🌸 blossoms 🌙 moon ⭐ star 🔥 fire",
    "👍🏽 👨‍👩‍👧 🇯🇵 🇫🇷 ❤️ ✨ 🎨 📷",
    "price $12.99, 50% off, 3.5m tall, 1920x1080, f/2.8, 50mm, 12:30pm, 2024-05-01, #1, @home",
    "quotes \"double\" 'single' “curly” ‘curly’ «guillemets» — dash – en … ellipsis",
    "math → ← ↑ ↓ ≥ ≤ ≠ ∞ ° ± × ÷ µ Ω π √ ∑",
    "[brackets] {braces} (parens) <angles> a/b a\\b a|b a_b a-b a+b a=b a*b a&b a^b a~b",
]


def make_corpus(rng: random.Random) -> list:
    lines = []
    for i in range(2400):
        kind = i % 6
        a, b = rng.choice(ADJ), rng.choice(ADJ)
        n1, n2 = rng.choice(NOUN), rng.choice(NOUN)
        if kind == 0:
            s = f"A {a} {n1} {rng.choice(PREP)} a {b} {n2} {rng.choice(LIGHT)}, {rng.choice(STYLE)}."
        elif kind == 1:
            s = f"{a.capitalize()} {n1} in {rng.choice(PLACE)} {rng.choice(LIGHT)}, {rng.choice(EXTRA_EN)}."
        elif kind == 2:
            s = (f"The {n1} {rng.choice(VERB)} {rng.choice(PREP)} the {b} {n2}, {rng.choice(STYLE)}, "
                 f"{rng.choice(STYLE)}")
        elif kind == 3:
            s = (f"{rng.randint(2, 12)} {a} {n1}s and {rng.randint(1, 99)} {n2}s, "
                 f"{rng.choice(LIGHT)} ({rng.choice(STYLE)})")
        elif kind == 4:
            s = f"{a} {n1}, {b} {n2}, {rng.choice(ADJ)} {rng.choice(NOUN)}; {rng.choice(EXTRA_EN)}!"
        else:
            s = (f"Wide shot of a {a} {n1} {rng.choice(VERB)} {rng.choice(PREP)} {rng.choice(PLACE)}: "
                 f"{rng.choice(LIGHT)} - {rng.choice(STYLE)}?")
        lines.append(s)
    # invented place names (syllable compounds) give the trainer many more distinct substrings
    syl = ("ka lo ri ma ven dor sel tha mir qua zen bro fal gar hel ist jun kel lum nor pel ros sta tor ul vin "
           "wes yar zo ash ber cal dun eld fen gro hav iro ket lin mor nev oth pra quin ral sol tev urn vos").split()
    for _ in range(1500):
        name = "".join(rng.choice(syl) for _ in range(rng.randint(2, 4))).capitalize()
        lines.append(f"The {rng.choice(ADJ)} {rng.choice(NOUN)} of {name} {rng.choice(LIGHT)}, {rng.choice(STYLE)}")
    # recombined fragments of the non-English lines give the trainer more multi-byte substrings
    frags = [f.strip() for line in MULTI for f in re.split(r"[,，、。.]", line) if f.strip()]
    for _ in range(700):
        lines.append("、".join(rng.sample(frags, 3)) if rng.random() < 0.5 else ", ".join(rng.sample(frags, 3)))
    for _ in range(6):
        lines += MULTI
    for _ in range(4):
        lines += SPECIAL_LINES
    rng.shuffle(lines)
    return lines


# ----------------------------------------------------------------------------------------------------------------
# precompiled_charsmap: an independent reader (format notes in tools/models/TOKENIZER_NOTES.md)
# ----------------------------------------------------------------------------------------------------------------

class CharsMap:
    """sentencepiece normalizer blob: u32 LE trie byte size, darts-clone double array (u32 LE units), then
    NUL-terminated UTF-8 replacement strings addressed by byte offset."""

    def __init__(self, blob: bytes):
        (trie_size,) = struct.unpack_from("<I", blob, 0)
        assert trie_size % 4 == 0 and 4 + trie_size < len(blob)
        self.units = struct.unpack_from(f"<{trie_size // 4}I", blob, 4)
        self.strings = blob[4 + trie_size:]

    @staticmethod
    def _leaf(u):
        return (u >> 8) & 1

    @staticmethod
    def _label(u):
        return u & 0x800000FF

    @staticmethod
    def _offset(u):
        return (u >> 10) << ((u & 0x200) >> 6)

    def _string_at(self, off: int) -> str:
        end = self.strings.index(b"\0", off)
        return self.strings[off:end].decode("utf-8")

    def prefix_hits(self, key: bytes) -> list:
        """(matched byte length, replacement) for every rule whose key is a prefix of `key`, shortest first."""
        units = self.units
        pos = self._offset(units[0])
        hits = []
        for i, c in enumerate(key):
            if c == 0:
                break
            pos ^= c
            if pos >= len(units) or self._label(units[pos]) != c:
                break
            u = units[pos]
            pos ^= self._offset(u)
            if self._leaf(u):
                hits.append((i + 1, self._string_at(units[pos] & 0x7FFFFFFF)))
        return hits

    def rules(self) -> dict:
        """Every key -> replacement, by walking the double array depth first."""
        out = {}
        units = self.units

        def walk(pos, prefix):
            for c in range(1, 256):
                child = pos ^ c
                if child >= len(units) or self._label(units[child]) != c:
                    continue
                u = units[child]
                nxt = child ^ self._offset(u)
                key = prefix + bytes([c])
                if self._leaf(u):
                    out[key.decode("utf-8")] = self._string_at(units[nxt] & 0x7FFFFFFF)
                walk(nxt, key)

        walk(self._offset(units[0]), b"")
        return out


def hf_precompiled(cm: CharsMap, text: str) -> str:
    """What the tokenizers `Precompiled` normalizer does: per extended grapheme cluster, if the cluster is shorter
    than 6 UTF-8 bytes and some rule key is a prefix of it, the FIRST (shortest) such rule replaces the whole
    cluster; otherwise each code point is looked up alone (first hit replaces it, no hit keeps it)."""
    out = []
    for g in regex.findall(r"\X", text):
        gb = g.encode("utf-8")
        if len(gb) < 6:
            hits = cm.prefix_hits(gb)
            if hits:
                out.append(hits[0][1])
                continue
        for ch in g:
            hits = cm.prefix_hits(ch.encode("utf-8"))
            out.append(hits[0][1] if hits else ch)
    return "".join(out)


def viterbi(vocab: list, unk_id: int, piece: str) -> list:
    """tokenizers Unigram.encode_optimized: best path over byte positions, strict '>' keeps the first-found
    candidate on ties, unknown characters get min_score - 10 and adjacent unknowns are fused."""
    if not piece:
        return []
    index = {p: i for i, (p, _) in enumerate(vocab)}
    max_len = max(len(p.encode("utf-8")) for p, _ in vocab)
    unk_score = min(s for _, s in vocab) - 10.0
    data = piece.encode("utf-8")
    n = len(data)
    best = [None] * (n + 1)  # (score, start, id)
    best[0] = (0.0, None, None)
    pos = 0
    for ch in piece:
        ch_len = len(ch.encode("utf-8"))
        here = best[pos][0]
        single = False
        for ln in range(1, min(max_len, n - pos) + 1):  # shortest first, like the trie walk
            tok = data[pos:pos + ln].decode("utf-8", "replace")
            if tok not in index or tok.encode("utf-8") != data[pos:pos + ln]:
                continue
            sc = vocab[index[tok]][1] + here
            if best[pos + ln] is None or sc > best[pos + ln][0]:
                best[pos + ln] = (sc, pos, index[tok])
            if ln == ch_len:
                single = True
        if not single:
            sc = unk_score + here
            if best[pos + ch_len] is None or sc > best[pos + ch_len][0]:
                best[pos + ch_len] = (sc, pos, unk_id)
        pos += ch_len
    out = []
    end = n
    pending = b""
    while end > 0:
        _, start, tid = best[end]
        if tid == unk_id:
            pending = data[start:end] + pending
        else:
            if pending:
                out.append(pending.decode("utf-8"))
                pending = b""
            out.append(data[start:end].decode("utf-8"))
        end = start
    if pending:
        out.append(pending.decode("utf-8"))
    return out[::-1]


# ----------------------------------------------------------------------------------------------------------------
# cases
# ----------------------------------------------------------------------------------------------------------------

def base_cases() -> list:
    c = [
        ("empty", "", "FlashWorld with no prompt: the input is '[Static] ' with its trailing space"),
        ("spaces_only", "   ", "whitespace-only prompt"),
        ("tab_newline_only", "\t\n", "whitespace-only prompt made of control whitespace"),
        ("simple", "A cozy wooden cabin in a snowy forest at night", "plain English prompt"),
        ("flashworld_like", "A serene Japanese garden with a red wooden bridge over a koi pond, cherry blossoms, "
         "morning mist, photorealistic, 4K.", "a typical scene prompt"),
        ("case_mix", "UPPER lower MiXeD CamelCase iPhone", "no lower-casing anywhere"),
        ("punctuation", "Hello, world! (A test) - yes: it's 'quoted' & \"double\"... #1 @home 50% $3.99 a/b\\c",
         "ASCII punctuation"),
        ("typographic_punct", "“curly” ‘quotes’ «guillemets» — em – en … ellipsis • bullet", "non-ASCII punctuation"),
        ("digits", "1920x1080, 3.5m tall, 12:30pm, f/2.8, 2024-05-01, 007, 3,141,592", "digits are not split"),
        ("accents_precomposed", "Café in São Paulo, crème brûlée, Zürich, Łódź, Dvořák, Tiếng Việt",
         "precomposed Latin letters"),
        ("accents_decomposed", "Cafe\u0301 e\u0301te\u0301 Zu\u0308rich Vie\u0302\u0323t",
         "base letter + combining marks: a rule keyed on the "
         "cluster's first two code points composes them; in 'Vie\\u0302\\u0323t' the third (dot below) is dropped"),
        ("chinese", "一座古老的城市在夜晚灯火通明，远处是连绵的群山。", "CJK ideographs, full-width comma"),
        ("japanese", "東京の夜景、ひらがなとカタカナ、富士山と桜。", "kanji, hiragana, katakana"),
        ("korean", "서울의 밤거리, 네온사인, 비 오는 골목", "precomposed Hangul"),
        ("hangul_jamo", "\u1100\u1161\u11a8 \u1100\u1161", "conjoining jamo: the 9-byte cluster is looked up "
         "code point by code point and stays decomposed, the 6-byte one too (sentencepiece would compose both)"),
        ("fullwidth", "ＡＢＣ　１２３！？（テスト）ｆｕｌｌ ｗｉｄｔｈ", "full-width forms and the ideographic space"),
        ("halfwidth_katakana", "ｶﾀｶﾅ ｶﾞｷﾞｸﾞ ﾃｽﾄ", "half-width katakana; voiced marks are 6-byte clusters and are "
         "not composed"),
        ("nfkc_compat", "ﬁeld of ﬂowers ﬃ, ① ② ⑳, ™ ℃ ½ x² m³ 5㎞ Ⅻ ℌ ſ", "compatibility characters NFKC rewrites"),
        ("emoji", "sunset 🌅 over mountains 🏔️ and sea 🌊, city 🏙️ ✨", "emoji, with variation selectors"),
        ("emoji_sequences", "family 👨‍👩‍👧 thumbs 👍🏽 flag 🇯🇵 heart ❤️", "ZWJ sequence, skin tone, flag: "
         "clusters of 6+ bytes, looked up per code point"),
        ("tabs_multispace", "a\tb  c   d\n\ne", "tabs, runs of spaces, blank line"),
        ("lead_trail_space", "  leading and trailing   ", "leading and trailing spaces"),
        ("crlf", "line one\r\nline two\rthree", "CR LF is one grapheme cluster"),
        ("unicode_spaces", "a\u00a0b\u2003c\u3000d\u200be\u2009f", "no-break, em, ideographic, zero-width, thin "
         "space"),
        ("nel_line_separator", "a\u0085b\u2028c\u2029d", "NEL stays as is in the normalizer (it is whitespace for "
         "WhitespaceSplit only), U+2028/2029 become spaces"),
        ("control_chars", "a\x01b\x7fc\x00d\x1be", "C0 controls and DEL; NUL is never matched by the trie"),
        ("soft_hyphen_bom", "co\u00adoperate \ufeffstart\u200d", "soft hyphen (kept), BOM, ZWJ"),
        ("cluster_quirk", "Ａ\u0301 ①\u0301 e\u0301\u0301 Ａ\u0301\u0301", "clusters under 6 bytes take the first "
         "(shortest) rule and lose the rest of the cluster; the 7-byte one is done per code point"),
        ("unknown_chars", "ᚠᚢᚦ runes ☃ snowman 𓀀 glyph ꙮ", "characters absent from the vocabulary"),
        ("unknown_scripts", "Привет мир, αβγ δ, مرحبا, שלום", "scripts absent from the training text"),
        ("unknown_fused", "xᚠᚢy ᚠ.ᚢ", "adjacent unknown characters are fused into one <unk> token"),
        ("literal_specials", "a </s> b <pad> c <unk> d</s>e", "special tokens in the text are split out before "
         "normalization and keep their ids"),
        ("fullwidth_specials", "＜／ｓ＞ and ＜ｐａｄ＞ ＜unk＞", "become '</s>' etc. only after normalization, so they "
         "are matched by the Unigram trie as ordinary pieces (score 0)"),
        ("extra_ids", "<extra_id_0> fill <extra_id_2>", "sentinel tokens are added special tokens too"),
        ("brackets", "[Static] [Dynamic] {curly} <angle> (round)", "the FlashWorld prefix repeated"),
        ("math_symbols", "→ ← ≥ ≤ ≠ ∞ ° ± × ÷ µ Ω π √ ∑", "symbols, some rewritten by NFKC (µ)"),
        ("long_space_run", "a" + " " * 40 + "b" + "\t" * 5 + "c", "long whitespace runs"),
        ("literal_metaspace", "a\u2581b \u2581\u2581c\u2581", "U+2581 typed in the prompt: nmt_nfkc rewrites it to a "
         "space, so it acts as one"),
        ("spacing_accents", "it\u00b4s na\u00a8ve \u309b a \u0301b c\u3000\u0301d", "NFKC turns the spacing accents "
         "into space + combining mark; WhitespaceSplit (per code point) then leaves the mark as a word of its own, "
         "which a split on grapheme clusters would drop with the space; the 5-byte cluster U+3000 U+0301 becomes one "
         "space"),
        ("mixed_scripts", "Tokyo東京2024年の夜ＮＩＧＨＴ-view№5", "scripts and widths with no spaces between them"),
    ]
    return [{"name": n, "text": t, "doc": d} for n, t, d in c]


# ----------------------------------------------------------------------------------------------------------------
# tokenizer construction
# ----------------------------------------------------------------------------------------------------------------

def train(corpus: list, work: pathlib.Path) -> bytes:
    work.mkdir(parents=True, exist_ok=True)
    (work / "corpus.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(work / "corpus.txt"), model_prefix=str(work / "full"), model_type="unigram",
        vocab_size=VOCAB_SIZE, normalization_rule_name="nmt_nfkc", character_coverage=0.9995,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        num_threads=1, shuffle_input_sentence=False, minloglevel=2)
    return (work / "full.model").read_bytes()


def load_t5(model_bytes: bytes, folder: pathlib.Path) -> T5Tokenizer:
    """transformers' own sentencepiece -> fast conversion (T5TokenizerFast is T5Tokenizer in transformers 5)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(model_bytes)
    return T5Tokenizer.from_pretrained(str(folder), extra_ids=EXTRA_IDS)


def call_flashworld(tok, text: str) -> dict:
    enc = tok(PREFIX + text, padding="max_length", max_length=MAX_LENGTH, truncation=True, add_special_tokens=True)
    ids, mask = list(enc["input_ids"]), list(enc["attention_mask"])
    assert len(ids) == MAX_LENGTH and len(mask) == MAX_LENGTH
    n = sum(mask)
    assert mask == [1] * n + [0] * (MAX_LENGTH - n) and ids[n:] == [0] * (MAX_LENGTH - n)
    return {"ids": ids[:n], "tokens": enc.tokens()[:n]}


def raw_encode(tk: Tokenizer, text: str) -> dict:
    tk = Tokenizer.from_str(tk.to_str())
    tk.enable_truncation(max_length=MAX_LENGTH, stride=0, strategy="longest_first", direction="right")
    tk.enable_padding(direction="right", pad_id=0, pad_type_id=0, pad_token="<pad>", length=MAX_LENGTH)
    e = tk.encode(PREFIX + text)
    n = sum(e.attention_mask)
    return {"ids": e.ids[:n], "tokens": e.tokens[:n]}


def added_token_split(text: str, specials: list) -> list:
    """Leftmost-longest split at added (special) tokens, which tokenizers does on the raw text first."""
    pat = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))
    out, last = [], 0
    for m in pat.finditer(text):
        if m.start() > last:
            out.append((False, text[last:m.start()]))
        out.append((True, m.group(0)))
        last = m.end()
    if last < len(text):
        out.append((False, text[last:]))
    return out


def variant_json(base: dict, name: str, charsmap_b64: str) -> dict:
    pre = {"type": "Precompiled", "precompiled_charsmap": charsmap_b64}
    j = json.loads(json.dumps(base))
    if name == "spm_converter":
        j["normalizer"] = {"type": "Sequence", "normalizers": [
            pre, {"type": "Strip", "strip_left": False, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"}]}
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                              "split": True}
        j["decoder"] = dict(j["pre_tokenizer"])
    elif name == "spm_converter_first":
        j["normalizer"] = variant_json(base, "spm_converter", charsmap_b64)["normalizer"]
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                              "split": True}
        j["decoder"] = dict(j["pre_tokenizer"])
    elif name == "legacy_2023":
        j["normalizer"] = {"type": "Sequence", "normalizers": [
            pre, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
        j["decoder"] = dict(j["pre_tokenizer"])
    elif name == "t5_2020":
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}]}
        j["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
    else:
        raise ValueError(name)
    return j


VARIANTS = {
    "spm_converter": "what transformers' SpmConverter/T5Converter (4.4x-4.57, still present in 5.x) writes when it "
                     "converts spiece.model: normalizer Sequence[Precompiled, Strip(right), Replace(/ {2,}/ -> "
                     "'\u2581')], pre_tokenizer Metaspace(always, split). transformers 4.57 (FlashWorld's pin) runs a "
                     "tokenizer.json exactly as written, so this is what it would run on a file of this layout.",
    "spm_converter_first": "the same with prepend_scheme 'first' (the converter's choice when legacy=False): only "
                           "segments after a special token differ",
    "legacy_2023": "the older SpmConverter layout (about transformers 4.10-4.33, tokenizers < 0.14 field names): "
                   "normalizer Sequence[Precompiled, Replace(/ {2,}/ -> ' ')], pre_tokenizer Metaspace with "
                   "add_prefix_space true (read by tokenizers as prepend_scheme always, split true)",
    "t5_2020": "the original t5 tokenizer.json layout (normalizer Precompiled, pre_tokenizer Sequence[WhitespaceSplit, "
               "Metaspace add_prefix_space true]); should always equal the main file",
}


def stage_outputs(tk: Tokenizer, specials: list, text: str) -> dict:
    full = PREFIX + text
    out = {"normalized": tk.normalizer.normalize_str(full),
           "pre_tokens": [p for p, _ in tk.pre_tokenizer.pre_tokenize_str(tk.normalizer.normalize_str(full))]}
    segs = added_token_split(full, specials)
    if any(a for a, _ in segs):
        out["segments"] = []
        for is_added, s in segs:
            if is_added:
                out["segments"].append({"added_token": s})
            else:
                nm = tk.normalizer.normalize_str(s)
                out["segments"].append({"text": s, "normalized": nm,
                                        "pre_tokens": [p for p, _ in tk.pre_tokenizer.pre_tokenize_str(nm)]})
    return out


def make_long_cases(tok, rng: random.Random) -> list:
    def count(t):
        return len(tok(PREFIX + t, add_special_tokens=True)["input_ids"])

    words = []
    for _ in range(80):
        words += f"{rng.choice(ADJ)} {rng.choice(NOUN)} {rng.choice(PREP)} the {rng.choice(NOUN)},".split()
    long_en = " ".join(words[:420])
    cjk = "".join(MULTI[13:28]) * 6

    def exact(target):  # content tokens + </s> == target
        ws = []
        pool = ["a", "the", "of", "in", "and"] + ADJ + NOUN
        i = 0
        while True:
            cur = count(" ".join(ws))
            if cur == target:
                return " ".join(ws)
            w = pool[i % len(pool)]
            i += 1
            if count(" ".join(ws + [w])) <= target:
                ws.append(w)
            if i > 20000:
                raise RuntimeError("could not hit the exact length")

    return [
        {"name": "long_english", "text": long_en, "doc": "well over 512 tokens: truncated to 511 content ids + </s>"},
        {"name": "long_cjk", "text": cjk, "doc": "multi-byte text over 512 tokens"},
        {"name": "exact_511_plus_eos", "text": exact(512), "doc": "511 content tokens + </s> = 512: nothing cut, no "
         "padding"},
        {"name": "exact_512_plus_eos", "text": exact(513), "doc": "512 content tokens + </s> = 513: the last content "
         "token is cut, </s> stays at index 511"},
    ]


# ----------------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------------

def generate(out: pathlib.Path, work: pathlib.Path) -> dict:
    rng = random.Random(SEED)
    corpus = make_corpus(rng)
    full_model = train(corpus, work)
    proto = spm_pb2.ModelProto()
    proto.ParseFromString(full_model)
    full_blob = proto.normalizer_spec.precompiled_charsmap
    full_cm = CharsMap(full_blob)

    # --- the reader agrees with sentencepiece's own decompiler on the full table
    full_rules = full_cm.rules()
    decomp = dict(spm.SentencePieceNormalizer(model_proto=full_model).Decompile())
    assert full_rules == decomp, "charsmap reader disagrees with sentencepiece Decompile"
    hf_full = normalizers.Precompiled(full_blob)
    for k in full_rules:  # every one-character key: the re-implementation equals tokenizers
        if len(k) == 1:
            assert hf_precompiled(full_cm, k) == hf_full.normalize_str(k), repr(k)

    tok_full = load_t5(full_model, work / "full_tok")
    specials = sorted(tok_full.all_special_tokens, key=len, reverse=True)
    cases = base_cases() + make_long_cases(tok_full, rng)

    # --- subset of the nmt_nfkc rules: every key that is a prefix of a case input at any code point boundary
    # (covers every lookup tokenizers or sentencepiece can make on these inputs), plus every key that is not three
    # code points long
    keep = set()
    for c in cases:
        s = PREFIX + c["text"]
        for i in range(len(s)):
            for ln, _ in full_cm.prefix_hits(s[i:].encode("utf-8")[:64]):
                keep.add(s[i:].encode("utf-8")[:ln].decode("utf-8"))
    for k in full_rules:
        if len(k) != 3:  # the 3-code-point keys (base + two marks, Hangul L+V+T) are 91% of the table
            keep.add(k)
    sub_rules = sorted((k, full_rules[k]) for k in keep)
    sub_blob = spm_pb2.NormalizerSpec()
    sub_blob.ParseFromString(spm.SentencePieceNormalizer(norm_map=sub_rules).serialized_normalizer_spec())
    sub_blob = sub_blob.precompiled_charsmap
    sub_cm = CharsMap(sub_blob)
    assert sub_cm.rules() == dict(sub_rules)
    assert dict(spm.SentencePieceNormalizer(
        normalizer_spec=spm_pb2.NormalizerSpec(name="x", precompiled_charsmap=sub_blob)).Decompile()) == dict(sub_rules)

    proto.normalizer_spec.precompiled_charsmap = sub_blob
    sub_model = proto.SerializeToString()
    tok_sub = load_t5(sub_model, work / "sub_tok")

    # --- the committed folder: save_pretrained, then reload the way FlashWorld does
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    saved = tok_sub.save_pretrained(str(out))
    written = sorted(pathlib.Path(p).name for p in saved)
    tok = T5Tokenizer.from_pretrained(str(out))
    tk_file = Tokenizer.from_file(str(out / "tokenizer.json"))
    tj = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    cm_b64 = tj["normalizer"]["precompiled_charsmap"] if tj["normalizer"]["type"] == "Precompiled" else None
    assert cm_b64 is not None and base64.b64decode(cm_b64) == sub_blob
    vocab = [(p, s) for p, s in tj["model"]["vocab"]]
    unk_id = tj["model"]["unk_id"]

    variant_tk = {v: Tokenizer.from_str(json.dumps(variant_json(tj, v, cm_b64))) for v in VARIANTS}
    sp = spm.SentencePieceProcessor(model_proto=full_model)

    stats = {"sentencepiece_differs": [], "variants_differ": {v: [] for v in VARIANTS}, "truncated": []}
    records = []
    for c in cases:
        ref = call_flashworld(tok_full, c["text"])  # full nmt_nfkc table
        got = call_flashworld(tok, c["text"])  # subset table, reloaded from the committed folder
        assert got == ref, f"{c['name']}: subset charsmap changes the result"
        assert raw_encode(tk_file, c["text"]) == got, f"{c['name']}: tokenizers.from_file differs from transformers"
        st = stage_outputs(tk_file, specials, c["text"])
        st_full = stage_outputs(tok_full.backend_tokenizer, specials, c["text"])
        assert st == st_full, f"{c['name']}: stage outputs differ under the full table"
        assert hf_precompiled(sub_cm, PREFIX + c["text"]) == st["normalized"], c["name"]
        assert hf_precompiled(full_cm, PREFIX + c["text"]) == st["normalized"], c["name"]
        untrunc = tk_file.encode(PREFIX + c["text"]).tokens
        if "segments" in st:
            mine = [t for sg in st["segments"] for t in ([sg["added_token"]] if "added_token" in sg else
                                                         [x for p in sg["pre_tokens"] for x in viterbi(vocab, unk_id, p)])]
        else:
            mine = [x for p in st["pre_tokens"] for x in viterbi(vocab, unk_id, p)]
        assert mine + ["</s>"] == untrunc, f"{c['name']}: Viterbi re-implementation differs"
        full_len = len(untrunc)
        rec = {"name": c["name"], "doc": c["doc"], "text": c["text"], "length": len(got["ids"]),
               "untruncated_length": full_len, "ids": got["ids"], "tokens": got["tokens"],
               "normalized": st["normalized"], "pre_tokens": st["pre_tokens"]}
        if "segments" in st:
            rec["segments"] = st["segments"]
        if full_len > MAX_LENGTH:
            stats["truncated"].append(c["name"])
            assert got["ids"][-1] == 1 and got["ids"][:-1] == tk_file.encode(PREFIX + c["text"]).ids[:MAX_LENGTH - 1]
        diffs = {}
        for v, vt in variant_tk.items():
            r = raw_encode(vt, c["text"])
            if r["ids"] != got["ids"]:
                diffs[v] = {"ids": r["ids"], "tokens": r["tokens"]}
                stats["variants_differ"][v].append(c["name"])
        if diffs:
            rec["variant_outputs"] = diffs
        sp_ids = sp.encode(PREFIX + c["text"], out_type=int)[:MAX_LENGTH - 1] + [1]
        if sp_ids != got["ids"]:
            rec["sentencepiece_ids"] = sp_ids
            rec["sentencepiece_pieces"] = [sp.id_to_piece(i) for i in sp_ids]
            stats["sentencepiece_differs"].append(c["name"])
        records.append(rec)

    with open(out / "cases.json", "w", encoding="utf-8") as f:
        f.write("{\n\"prefix\": " + json.dumps(PREFIX) + ",\n\"max_length\": " + str(MAX_LENGTH) +
                ",\n\"pad_id\": 0,\n\"eos_id\": 1,\n\"unk_id\": " + str(unk_id) + ",\n\"cases\": [\n")
        f.write(",\n".join(visible(json.dumps(r, ensure_ascii=False)) for r in records))
        f.write("\n]\n}\n")

    def elide(section):
        s = json.loads(json.dumps(section))
        if isinstance(s, dict) and s.get("type") == "Precompiled":
            s["precompiled_charsmap"] = f"<base64, {len(cm_b64)} chars, see manifest.charsmap>"
        if isinstance(s, dict) and s.get("type") == "Sequence" and "normalizers" in s:
            s["normalizers"] = [elide(x) for x in s["normalizers"]]
        return s

    scores = [s for _, s in vocab]
    manifest = {
        "generator": "tools/models/make_tokenizer_fixtures.py",
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                     "sentencepiece": spm.__version__, "protobuf": __import__("google.protobuf").protobuf.__version__,
                     "regex": regex.__version__, "python": platform.python_version()},
        "seed": SEED,
        "flashworld_call": "tokenizer('[Static] ' + text, padding='max_length', max_length=512, truncation=True, "
                           "add_special_tokens=True) with tokenizer = T5TokenizerFast.from_pretrained(.., "
                           "subfolder='tokenizer')",
        "files_written_by_save_pretrained": written,
        "training": {
            "library": "sentencepiece " + spm.__version__, "model_type": "unigram",
            "vocab_size_requested": VOCAB_SIZE, "pieces": len(proto.pieces),
            "normalization_rule_name": "nmt_nfkc", "character_coverage": 0.9995,
            "pad_id": 0, "eos_id": 1, "unk_id": 2, "bos_id": -1, "byte_fallback": False,
            "add_dummy_prefix": proto.normalizer_spec.add_dummy_prefix,
            "remove_extra_whitespaces": proto.normalizer_spec.remove_extra_whitespaces,
            "escape_whitespaces": proto.normalizer_spec.escape_whitespaces,
            "corpus_lines": len(corpus), "num_threads": 1,
            "extra_ids": EXTRA_IDS,
        },
        "charsmap": {
            "what": "normalizer.precompiled_charsmap in tokenizer.json, base64 of sentencepiece's normalizer blob",
            "full_nmt_nfkc_bytes": len(full_blob), "full_nmt_nfkc_rules": len(full_rules),
            "full_nmt_nfkc_sha256": hashlib.sha256(full_blob).hexdigest(),
            "written_bytes": len(sub_blob), "written_rules": len(sub_rules),
            "written_sha256": hashlib.sha256(sub_blob).hexdigest(),
            "written_trie_units": len(sub_cm.units),
            "subset": "every nmt_nfkc rule whose key is 1, 2 or 4 code points long, plus the 3-code-point rules "
                      "whose key is a prefix of some case input at a code point boundary (the other 3-code-point "
                      "keys, base letter + two combining marks and Hangul L+V+T jamo, are 91% of the table); "
                      "compiled with sentencepiece's builder (SentencePieceNormalizer(norm_map)). Every case gives "
                      "the same normalized string, pre-tokens, tokens and ids with the full table (checked).",
            "rule_key_lengths_in_code_points": {str(k): v for k, v in sorted(
                __import__("collections").Counter(len(k) for k, _ in sub_rules).items())},
        },
        "tokenizer_json": {
            "top_level_keys": list(tj.keys()),
            "version": tj.get("version"), "truncation": tj.get("truncation"), "padding": tj.get("padding"),
            "added_tokens": tj["added_tokens"],
            "normalizer": elide(tj["normalizer"]),
            "pre_tokenizer": tj["pre_tokenizer"],
            "model": {"type": tj["model"]["type"], "unk_id": tj["model"]["unk_id"],
                      "byte_fallback": tj["model"].get("byte_fallback"),
                      "other_keys": sorted(k for k in tj["model"] if k not in ("type", "unk_id", "byte_fallback",
                                                                                "vocab")),
                      "vocab_entries": len(vocab), "vocab_head": vocab[:6], "vocab_tail": vocab[-5:],
                      "score_min": min(scores), "score_max": max(scores),
                      "unk_score_used_by_viterbi": min(scores) - 10.0,
                      "scores_are": "float32 values from the sentencepiece model, printed as JSON numbers; read "
                                    "them as float64 (tokenizers sums path scores in f64)"},
            "post_processor": tj["post_processor"],
            "decoder": tj["decoder"],
        },
        "transformers_5_rebuild": "transformers >= 5 does not run the normalizer/pre_tokenizer/decoder written in a "
                                  "T5 tokenizer.json: T5Tokenizer.__init__ rebuilds them (Precompiled with the file's "
                                  "charsmap; Sequence[WhitespaceSplit, Metaspace(always, split)]; TemplateProcessing "
                                  "$A </s>) and keeps only the vocab, the charsmap and the added tokens. That rebuilt "
                                  "pipeline is what save_pretrained wrote here, so file and runtime agree.",
        "cross_version_check": "tools/models/check_tokenizer_fixtures.py re-runs every case under the installed "
                               "transformers. When these fixtures were made: transformers 4.57.0 (FlashWorld's "
                               "pin) with tokenizers 0.22.2 reproduced every case's ids from tokenizer.json, and "
                               "reproduced each variant's variant_outputs from a file of that layout (4.x runs the "
                               "file as written); transformers 5.23.0 gave the main ids for every layout.",
        "tokenizer_config_note": "tokenizer_config.json is in the transformers 5 format (extra_special_tokens as a "
                                 "list), which transformers 4.57 refuses to load; tokenizer.json alone carries "
                                 "everything the encoding needs (added tokens, pipeline, vocab, post-processor).",
        "variants": {"doc": "the same vocab and charsmap under other pipeline layouts that a real tokenizer.json may "
                            "carry; a case lists variant_outputs only for variants whose ids differ from 'ids'",
                     **{k: {"doc": v, "normalizer": elide(variant_json(tj, k, cm_b64)["normalizer"]),
                            "pre_tokenizer": variant_json(tj, k, cm_b64)["pre_tokenizer"],
                            "cases_that_differ": stats["variants_differ"][k]} for k, v in VARIANTS.items()}},
        "cases_fields": {
            "text": "the prompt; the tokenized string is prefix + text ('[Static] ' + text)",
            "length": "attention_mask sum; input_ids is ids followed by 512-length zeros (pad id 0), the mask is "
                      "length ones then zeros",
            "untruncated_length": "ids + </s> without truncation",
            "ids": "input_ids[:length] from transformers (T5Tokenizer.from_pretrained on this folder)",
            "tokens": "the token strings (an <unk> token shows the original fused characters, not '<unk>')",
            "normalized": "backend_tokenizer.normalizer.normalize_str(prefix + text) over the whole string",
            "pre_tokens": "backend_tokenizer.pre_tokenizer.pre_tokenize_str(normalized), pieces only",
            "segments": "present when the input contains added (special) tokens: tokenizers first splits the raw "
                        "text at them (leftmost, longest), then normalizes and pre-tokenizes each remaining piece "
                        "on its own, so these (not the whole-string fields) are what the model sees",
            "variant_outputs": "ids and tokens under the manifest's pipeline variants, only where they differ",
            "sentencepiece_ids": "what the sentencepiece library itself gives (+ </s>, cut the same way), only "
                                 "where it differs: the fast tokenizer is the reference, this shows where a port "
                                 "that follows sentencepiece instead would go wrong",
        },
        "stats": {"cases": len(records), **stats},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def visible(dumped: str) -> str:
    """JSON with raw UTF-8, except that invisible or line-breaking characters are written as \\uXXXX escapes."""
    def esc(ch):
        return "\\u%04x" % ord(ch)
    out = "".join(esc(ch) if ord(ch) < 0x10000 and (
        0x7F <= ord(ch) <= 0x9F or ch in "\u00ad\u2028\u2029" or
        (unicodedata.category(ch) in ("Zs", "Zl", "Zp", "Mn", "Cf") and ch != " ")) else ch for ch in dumped)
    assert json.loads(out) == json.loads(dumped)
    return out


def digest(folder: pathlib.Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        manifest = generate(OUT, tmp / "a")
        first = digest(OUT)
        generate(tmp / "again", tmp / "b")
        assert digest(tmp / "again") == first, "second run wrote different bytes"
    sizes = {p.name: p.stat().st_size for p in sorted(OUT.iterdir())}
    total = sum(sizes.values())
    for k, v in sizes.items():
        print(f"{k:24s} {v:8d}")
    print(f"{'total':24s} {total:8d}  (budget {BUDGET})")
    s = manifest["stats"]
    print("cases", s["cases"], "truncated", s["truncated"])
    print("sentencepiece differs on", s["sentencepiece_differs"])
    for v, names in s["variants_differ"].items():
        print(f"variant {v} differs on", names)
    if total > BUDGET:
        sys.exit("over budget")


if __name__ == "__main__":
    main()
