"""Writes the sentencepiece oracle fixtures that tests/tokenizer_test.cpp compares Agora's tokenizer against.

Usage: python make_tokenizer_fixtures.py OUT_DIR

Trains small BPE models on a generated, deterministic corpus and records what the official `sentencepiece`
library returns for a set of tricky strings. Written to OUT_DIR:
  tokenizer.model, tokenizer_cases.json   Llama-2 settings (byte fallback, identity normalizer, no whitespace
                                          cleanup, split digits).
  variant.model, variant_cases.json       no byte fallback (unknown characters -> <unk>), no dummy prefix,
                                          extra-whitespace removal, user-defined and extra control symbols.
  unused.model, unused_cases.json         variant.model with some merged pieces re-typed UNUSED, which
                                          sentencepiece splits back into their parts.
  tokenizer_unigram.model                 a unigram model, which Agora must refuse.
Each cases file is a JSON object: {"model": file name, "special_pieces": [...], "cases": [{text | text_hex, ids,
pieces, decoded, ids_bos_eos}], "special_cases": [{text, ids}]}; "special_cases" hold the ids expected with
parse_special, i.e. the text split on the literal control/user-defined pieces and each remaining segment encoded
on its own. Training is deterministic, so the files are identical from run to run.
"""

import json
import os
import random
import re
import sys
import tempfile

import sentencepiece as spm

# Piece types in sentencepiece_model.proto.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

ENGLISH = (
    "the quick brown fox jumps over the lazy dog while a tokenizer learns merges from text "
    "and every language model needs numbers like these and some punctuation too hello world "
    "training data is never clean enough so we add spaces tabs and other things it was the best of "
    "times it was the worst of times"
).split()
ACCENTED = "café naïve résumé façade jalapeño Ångström über straße crème brûlée São Paulo".split()
CJK = "日本語のテキスト 中文文本 한국어 東京 北京 漢字 ひらがな カタカナ".split()
# The trainer sees only the first few emoji; the others are left for byte fallback / <unk> at test time.
EMOJI_IN_CORPUS = ["🙂", "🚀", "🦙"]
EMOJI_RARE = ["🧬", "🪐", "🫠"]
PUNCT = [",", ".", "!", "?", ";", ":", "(", ")", "-", "'", '"']


def random_number(rng):
    kind = rng.randrange(3)
    if kind == 0:
        return str(rng.randrange(10 ** rng.randrange(1, 7)))
    if kind == 1:
        return f"{rng.randrange(100)}.{rng.randrange(100000)}"
    return f"{rng.randrange(1900, 2100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"


def corpus_line(rng):
    words = []
    for _ in range(rng.randrange(4, 20)):
        r = rng.random()
        if r < 0.6:
            words.append(rng.choice(ENGLISH).capitalize() if rng.random() < 0.1 else rng.choice(ENGLISH))
        elif r < 0.7:
            words.append(random_number(rng))
        elif r < 0.8:
            words.append(rng.choice(ACCENTED))
        elif r < 0.9:
            words.append(rng.choice(CJK))
        elif r < 0.95:
            words.append(rng.choice(EMOJI_IN_CORPUS))
        else:
            words.append(rng.choice(PUNCT))
    line = ""
    for word in words:
        separator = rng.choice([" "] * 12 + ["  ", "   ", "\t"])
        line += word + separator
    return line.rstrip("\n")


def write_corpus(path):
    rng = random.Random(1234)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(4000):
            f.write(corpus_line(rng) + "\n")


def train(corpus, prefix, **options):
    """Trains in the current folder; relative paths keep the temp folder's name out of the saved trainer_spec."""
    with open(os.devnull, "w") as quiet:
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=prefix, num_threads=1, input_sentence_size=0,
            shuffle_input_sentence=False, normalization_rule_name="identity", logstream=quiet, **options)
    with open(prefix + ".model", "rb") as f:
        return f.read()


def tricky_texts():
    texts = [
        "", " ", "  ", "\t", "\n", "a", "Hello world", "hello world", " hello", "   leading spaces",
        "trailing spaces   ", "a    b", "a\tb", "a\nb", "line one\nline two\n", "tab\there\tand\tthere",
        "1", "12345", "3.14159", "2024-01-31", "x1y22z333", "007",
        "café", "naïve résumé", "Ångström über straße", "日本語のテキスト", "中文文本和한국어",
        "🦙", "🙂🚀", "🧬", "🪐 and 🫠", "emoji 🦙🧬 mixed", "Ω≈ç√∫", "ẞ ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\u00a0nbsp\u00a0",
        "<s>", "</s>", "<s>hello</s>", "say <s> and </s> please", "<unk>", "<pad>", "<tool>", "[INST] hi [/INST]",
        "x<tool>y", "<ctrl>ok", "<s><s></s>", "the quick brown fox jumps over the lazy dog",
        "It was the best of times, it was the worst of times.", "  mixed\t 123 café 🦙 <s> \n end ",
        "\u2581already escaped\u2581", "\ufffd replacement", "a\u0301 combining", "zero\u200bwidth",
        "▁▁", "\x00nul", "tab\t\ttab", "trailing newline\n", "    ", "\t \n",
    ]
    texts.append("the quick brown fox " * 400 + "日本語 🦙 12345 " * 50)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,!?'\t\n") + list("éüßñ日本語中文한") + \
        EMOJI_IN_CORPUS + EMOJI_RARE + ["  ", "<s>", "</s>", "<tool>", "\u2581"]
    rng = random.Random(99)
    for _ in range(300):
        if rng.random() < 0.5:
            texts.append(corpus_line(rng))
        else:
            texts.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40))))
    return texts


# Bytes that are not valid UTF-8: sentencepiece replaces each bad byte with U+FFFD.
INVALID_UTF8 = [b"ab\xffc", b"\xc3", b"\xe6\x97", b"\xed\xa0\x80 surrogate", b"\xf0\x9f\xa6 cut emoji", b"\x80\x80"]


def encode_with_specials(sp, text, specials):
    """Splits on the literal special pieces (longest first) and encodes each segment alone."""
    if not specials:
        return sp.encode(text)
    pattern = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))
    ids, start = [], 0
    for match in pattern.finditer(text):
        ids += sp.encode(text[start:match.start()])
        ids.append(sp.piece_to_id(match.group(0)))
        start = match.end()
    return ids + sp.encode(text[start:])


def make_cases(model_bytes, model_name):
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    cases = []
    for text in tricky_texts():
        ids = sp.encode(text)
        cases.append({"text": text, "ids": ids, "pieces": sp.encode(text, out_type=str),
                      "decoded": sp.decode(ids), "ids_bos_eos": sp.encode(text, add_bos=True, add_eos=True)})
    for raw in INVALID_UTF8:
        ids = sp.encode(raw)
        cases.append({"text_hex": raw.hex(), "ids": ids, "pieces": sp.encode(raw, out_type=str),
                      "decoded": sp.decode(ids), "ids_bos_eos": sp.encode(raw, add_bos=True, add_eos=True)})
    specials = [piece for piece, piece_type in pieces_and_types(model_bytes) if piece_type in (CONTROL, USER_DEFINED)]
    special_cases = [{"text": t, "ids": encode_with_specials(sp, t, specials)}
                     for t in tricky_texts() if any(s in t for s in specials)]
    return {"model": model_name, "special_pieces": specials, "cases": cases, "special_cases": special_cases}


# --- a minimal protobuf wire writer/reader, to re-type pieces without the protobuf package ---

def read_varint(data, i):
    result = shift = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def write_varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def fields(data):
    """Yields (field number, wire type, raw field bytes including the tag, payload) for each field."""
    i = 0
    while i < len(data):
        start = i
        key, i = read_varint(data, i)
        wire_type = key & 7
        if wire_type == 0:
            _, i = read_varint(data, i)
            payload = None
        elif wire_type == 2:
            length, i = read_varint(data, i)
            payload = data[i:i + length]
            i += length
        elif wire_type == 5:
            i += 4
            payload = None
        elif wire_type == 1:
            i += 8
            payload = None
        else:
            raise ValueError(f"unexpected wire type {wire_type}")
        yield key >> 3, wire_type, data[start:i], payload


def pieces_and_types(model_bytes):
    """The (piece, type) of every vocabulary entry, read straight from the ModelProto."""
    result = []
    for number, _, _, payload in fields(model_bytes):
        if number != 1:
            continue
        piece, piece_type = "", NORMAL
        for sub_number, _, raw, sub_payload in fields(payload):
            if sub_number == 1:
                piece = sub_payload.decode("utf-8")
            elif sub_number == 3:
                piece_type, _ = read_varint(raw, 1)
        result.append((piece, piece_type))
    return result


def retype_pieces(model_bytes, new_types):
    """Returns model_bytes with piece i's type replaced by new_types[i] where given."""
    out = bytearray()
    index = 0
    for number, _, raw, payload in fields(model_bytes):
        if number == 1 and index in new_types:
            body = b"".join(r for n, _, r, _ in fields(payload) if n != 3)
            body += write_varint(3 << 3) + write_varint(new_types[index])
            out += write_varint(1 << 3 | 2) + write_varint(len(body)) + body
        else:
            out += raw
        index += number == 1
    return bytes(out)


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=1)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    caller_dir = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        corpus = "corpus.txt"
        write_corpus(corpus)

        llama = train(corpus, "llama", model_type="bpe", vocab_size=800, byte_fallback=True,
                      add_dummy_prefix=True, remove_extra_whitespaces=False, split_digits=True,
                      allow_whitespace_only_pieces=True, character_coverage=0.99995,
                      unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
        user_defined = ["<tool>", "[INST]", "[/INST]"]
        variant = train(corpus, "variant", model_type="bpe", vocab_size=400,
                        byte_fallback=False, add_dummy_prefix=False, remove_extra_whitespaces=True,
                        character_coverage=0.995, user_defined_symbols=user_defined, control_symbols=["<ctrl>"],
                        unk_id=0, bos_id=1, eos_id=2, pad_id=3)
        unigram = train(corpus, "unigram", model_type="unigram", vocab_size=300)
        os.chdir(caller_dir)

    # Every third multi-character normal piece becomes UNUSED: encoding may still merge through it, then
    # splits it back into the two symbols it was made of.
    unused = retype_pieces(variant, {i: UNUSED for i, (piece, piece_type) in enumerate(pieces_and_types(variant))
                                     if i % 3 == 0 and piece_type == NORMAL and len(piece) > 1})

    for name, model_bytes in {"tokenizer": llama, "variant": variant, "unused": unused}.items():
        with open(os.path.join(out_dir, name + ".model"), "wb") as f:
            f.write(model_bytes)
        write_json(os.path.join(out_dir, name + "_cases.json"), make_cases(model_bytes, name + ".model"))
    with open(os.path.join(out_dir, "tokenizer_unigram.model"), "wb") as f:
        f.write(unigram)


if __name__ == "__main__":
    main()
