#!/usr/bin/env python3
"""Writes the byte-level BPE (tokenizer.json, Llama-3 kind) oracle fixtures Agora's tokenizer is compared against.

Usage: python make_bpe_fixtures.py OUT_DIR

Trains a small byte-level BPE with the `tokenizers` library the way Llama-3's tokenizer.json is built (Llama-3's
split regex, then ByteLevel without prefix space or regex; ByteLevel decoder; ignore_merges; a TemplateProcessing
post-processor that puts <|begin_of_text|> first) on a generated, deterministic multilingual corpus, and records
what `tokenizers` returns for a set of tricky strings. The special tokens are added after training, as in
Llama-3: they are "added_tokens" (special, not normalized, no strip) with the ids right after the model's vocabulary,
and are not entries of model.vocab. After training, the merges that make three vocabulary entries (UNREACHABLE) are
dropped, so that ignore_merges changes results. Written to OUT_DIR:
  tokenizer.json, tokenizer_cases.json                 the Llama-3 settings (model.ignore_merges true).
  tokenizer_merges.json, tokenizer_merges_cases.json   the same file with model.ignore_merges false, so a word that
                                                       is itself a vocabulary entry still goes through the merges.
  llama3_bpe_model/                                    a tiny Llama-3-shaped model folder written by transformers'
                                                       save_pretrained (config.json, generation_config.json,
                                                       model.safetensors in fp32: matrices ~ N(0, 0.3^2), norm weights
                                                       ~ 1 + N(0, 0.3^2)) and tokenizer.json (as tokenizer.json above)
                                                       and tokenizer_config.json saved next to it by
                                                       PreTrainedTokenizerFast; no tokenizer.model.
Each cases file is a JSON object:
  {"tokenizer": file name, "vocab_size": size with the added tokens,
   "special_tokens": {content: id},
   "cases": [{"text", "ids" (no special tokens added), "tokens" (their byte-level strings), "ids_with_bos" (with the
              post-processor), "decoded" (decode(ids) keeping special tokens), "decoded_skip_special" (dropping
              them)}],
   "decode_cases": [{"ids", "decoded", "decoded_skip_special"}]}
"decode_cases" are id sequences that need not come from encoding: single byte tokens that are not UTF-8 on their
own, a multi-byte character cut short, special tokens in between, whose decodes show the lossy UTF-8 conversion
(each invalid sequence becomes U+FFFD). Each text is encoded the way `tokenizers` does it: the added tokens are
matched in the raw text first, then each remaining segment is pre-tokenized and run through BPE. The cases are
computed with the saved files read back by Tokenizer.from_file. Training is deterministic, so the files are
identical from run to run.
"""

import json
import os
import random
import sys

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging as transformers_logging

# Llama-3's split regex, verbatim from its tokenizer.json.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
SPECIAL_TOKENS = [BOS, EOS, "<|reserved_special_token_0|>", "<|start_header_id|>", "<|end_header_id|>", EOT]
# Vocabulary entries whose merge is dropped after training. A BPE trained by `tokenizers` reaches every entry through
# its merges, so ignore_merges alone would change no result; without these merges, a pre-token equal to one of these
# entries (or to a longer entry built on one) is one token with ignore_merges and several without.
UNREACHABLE = ["Ġquick", "Ġhello", "ing"]
VOCAB_SIZE = 1200  # the model's vocabulary: 256 bytes and 944 merges; the special tokens come after it

ENGLISH = (
    "the quick brown fox jumps over the lazy dog while a tokenizer learns merges from text and every language "
    "model needs numbers like these and some punctuation too hello world training data is never clean enough so "
    "we add spaces tabs and other things it was the best of times it was the worst of times user assistant system "
    "return function value string print import class self"
).split()
CONTRACTIONS = ["it's", "don't", "we're", "I've", "I'm", "you'll", "she'd", "IT'S", "DON'T", "They're", "We'LL"]
ACCENTED = "café naïve résumé façade jalapeño Ångström über straße crème brûlée São Paulo señor cœur".split()
SCRIPTS = "Καλημέρα κόσμε Привет мир مرحبا بالعالم नमस्ते दुनिया".split()
CJK = "日本語のテキスト 中文文本 한국어 東京 北京 漢字 ひらがな カタカナ".split()
EMOJI = ["🙂", "🚀", "🦙", "👍🏽", "👩‍💻", "🇫🇷"]
SEPARATORS = [" "] * 16 + ["  ", "   ", "\t", "\n", "\n\n", " \n", "\r\n", ", ", ". "]
CODE = ["x = 1;", "f(a, b)", "{}", "[0]", "a->b", "i++", "==", "!=", "<=", "#include", "//", "/* */", "::",
        "def f():", "return x", "'quoted'", '"dq"', "...", "!!", "?!"]


def random_number(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return str(rng.randrange(10 ** rng.randrange(1, 8)))
    if kind == 1:
        return f"{rng.randrange(100)}.{rng.randrange(100000)}"
    if kind == 2:
        return f"{rng.randrange(1, 1000)},{rng.randrange(1000):03d}.{rng.randrange(100):02d}"
    return f"{rng.randrange(1900, 2100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"


def random_word(rng):
    r = rng.random()
    if r < 0.5:
        word = rng.choice(ENGLISH)
        return word.capitalize() if rng.random() < 0.1 else word.upper() if rng.random() < 0.03 else word
    for limit, pool in ((0.57, CONTRACTIONS), (0.64, ACCENTED), (0.69, SCRIPTS), (0.75, CJK), (0.79, EMOJI),
                        (0.88, CODE)):
        if r < limit:
            return rng.choice(pool)
    return random_number(rng)


def corpus_line(rng):
    line = ""
    for _ in range(rng.randrange(4, 20)):
        line += random_word(rng) + rng.choice(SEPARATORS)
    return line


def corpus():
    rng = random.Random(1234)
    return [corpus_line(rng) for _ in range(3000)]


def train():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    data = json.loads(tok.to_str())
    merges = data["model"]["merges"]
    data["model"]["merges"] = [pair for pair in merges if "".join(pair) not in UNREACHABLE]
    assert len(data["model"]["merges"]) == len(merges) - len(UNREACHABLE), "an UNREACHABLE entry was not learned"
    tok = Tokenizer.from_str(json.dumps(data))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))])
    return tok


def tokenizer_json(tok, ignore_merges):
    """The tokenizer as saved; the trainer keeps the model's ignore_merges, set it explicitly all the same."""
    data = json.loads(tok.to_str())
    data["model"]["ignore_merges"] = ignore_merges
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def tricky_texts():
    texts = [
        "", " ", "  ", "\t", "\n", "\r\n", "\n\n", " \n", "  \n  ", "\t\n\t", "a", "A", "Hello world", "hello world",
        " hello", "   leading spaces", "trailing spaces   ", "trailing space ", "a    b", "a\tb", "a\nb", "a\r\nb",
        "a \n b", "line one\nline two\n", "tab\there\tand\tthere", "ends with newlines\n\n\n", "x\n\n\ny",
        "  \t  mixed  \t\n  whitespace", "word\n  indented", "\n\nleading newlines",
        # contractions, every case
        "it's", "IT'S", "It'S", "don't", "DON'T", "we're", "WE'RE", "We'Re", "I've", "I'VE", "i'm", "I'M",
        "you'll", "YOU'LL", "she'd", "SHE'D", "'s", "'S", "'t'", "rock 'n' roll", "the dogs' toys",
        "o'clock", "’s curly", "l'été", "isn't it's 'll've",
        # numbers
        "1", "12", "123", "1234", "12345", "123456", "1234567", "007", "1,234.56", "1,234,567.89", "3.14159",
        "-42", "+1e-10", "2024-01-31", "x1y22z333w4444", "v2.0.1", "١٢٣ arabic digits", "²³ superscripts",
        "100%", "$9.99", "€1.000,50", "12:30pm",
        # accents, combining marks, other scripts
        "café", "naïve résumé", "Ångström über straße", "cafe\u0301 combining", "a\u0301\u0302\u0303", "e\u0308",
        "Ελληνικά", "Καλημέρα κόσμε", "Привет, мир!", "ПРИВЕТ", "مرحبا بالعالم", "नमस्ते दुनिया", "हिन्दी",
        "עברית", "ไทย", "Tiếng Việt", "Ωμέγα ω", "ǅ titlecase", "ﬁ ligature", "Ⅻ roman",
        # CJK
        "日本語のテキスト", "中文文本和한국어", "東京タワー", "漢字かな交じり文", "全角　スペース", "中文，标点。",
        # emoji
        "🦙", "🙂🚀", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦 family", "🇫🇷🇯🇵", "🏳️‍🌈", "emoji 🦙🧬 mixed", "❤️", "🫠",
        "a🙂b", " 🙂", "🙂 ",
        # punctuation and code
        "!!!", "?!?!", "...", "…", "---", "==>", "a,b,c", "(a)", "[x]", "{\"k\": [1, 2]}",
        "hello!!!\n\n", "end.\n", "quote \"this\"", "it’s “smart” quotes", "https://example.com/a?b=c&d=e#f",
        "user@example.com", "def f(x):\n    return x ** 2\n", "if (a != b) { x += 1; }",
        "#include <stdio.h>\nint main() { return 0; }", "a\\b\\c", "~/path/to/file.txt", "<html><body></body></html>",
        "SELECT * FROM t WHERE id = 1;", "`code`", "x_y_z", "__init__", "$$ \\frac{a}{b} $$",
        # words not seen in training
        "antidisestablishmentarianism", "Pneumonoultramicroscopicsilicovolcanoconiosis", "zxqvjk", "Zyzzyva",
        "supercalifragilisticexpialidocious", "quuxfrobnicate",
        # control characters and odd code points
        "\x00nul", "bell\x07", "\x7f del", "\u00a0nbsp\u00a0", "zero\u200bwidth", "\ufeffbom", "\ufffd replacement",
        "\u2028line separator", "\U0001d518\U0001d52b\U0001d526", "Ā\u0100", "\u0120 looks like a byte-level space",
        "Ċ and Ġ literally",
        # special tokens in the text: matched before pre-tokenization
        BOS, EOT, "hi<|eot_id|>there", "hi <|eot_id|> there",
        "<|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat's 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|eot_id|><|eot_id|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
        "<|eot_id", "<|EOT_ID|>", "< |eot_id|>", "<|begin_of_text|>text", "  <|eot_id|>  ", "\n<|eot_id|>\n",
        "x<|end_header_id|>y<|start_header_id|>z",
        # longer text
        "The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times.",
        "  mixed\t 123 café 🦙 <|eot_id|> \n end ",
    ]
    texts.append("the quick brown fox " * 200 + "日本語 🦙 12345 " * 30)
    rng = random.Random(99)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,!?'\t\n\r") + list("éüßñ日本語中文한ЖΩ") + \
        EMOJI + ["  ", "'s", "'LL", BOS, EOT, "\u200d", "\u0301"]
    for _ in range(30):
        texts.append(corpus_line(rng) if rng.random() < 0.5 else
                     "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40))))
    return texts


def ignore_merges_texts(tok):
    """Vocabulary entries that merging alone splits into several tokens: there ignore_merges changes the result."""
    merges_tok = Tokenizer.from_str(tokenizer_json(tok, ignore_merges=False))
    byte_decoder = decoders.ByteLevel()
    texts = []
    for token, token_id in sorted(tok.get_vocab(with_added_tokens=False).items(), key=lambda item: item[1]):
        text = byte_decoder.decode([token])
        if "\ufffd" not in text and len(merges_tok.encode(text, add_special_tokens=False).ids) > 1:
            texts.append(text)
    return texts


def decode_id_lists(tok):
    byte = gpt2_bytes_to_unicode()

    def ids(*tokens):
        return [tok.token_to_id(t) for t in tokens]

    def byte_ids(data):
        return [tok.token_to_id(byte[b]) for b in data]

    llama = "🦙".encode()
    return [
        byte_ids(b"\xff"), byte_ids(b"\x80"), byte_ids(b"\xc3"), byte_ids(llama[:3]), byte_ids(llama),
        byte_ids(llama[:2]) + ids("a") + byte_ids(llama[2:]), byte_ids(llama[:1]) + ids(EOT) + byte_ids(llama[1:]),
        byte_ids(b"\xed\xa0\x80"), byte_ids(b"\xc0\xaf"), byte_ids(b"\xe2\x82x"), byte_ids(b"\xf4\x90\x80\x80"),
        ids(BOS, "h", "i", EOS), ids(EOT, EOT), ids(BOS), [], ids("Ġ", "Ġ", "Ċ"),
    ]


def gpt2_bytes_to_unicode():
    """GPT-2's byte -> printable character table that ByteLevel uses."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def make_cases(path, extra_texts):
    tok = Tokenizer.from_file(path)
    cases = []
    for text in tricky_texts() + extra_texts:
        encoding = tok.encode(text, add_special_tokens=False)
        cases.append({"text": text, "ids": encoding.ids, "tokens": encoding.tokens,
                      "ids_with_bos": tok.encode(text, add_special_tokens=True).ids,
                      "decoded": tok.decode(encoding.ids, skip_special_tokens=False),
                      "decoded_skip_special": tok.decode(encoding.ids, skip_special_tokens=True)})
    decode_cases = [{"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                     "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)}
                    for ids in decode_id_lists(tok)]
    return {"tokenizer": os.path.basename(path), "vocab_size": tok.get_vocab_size(with_added_tokens=True),
            "special_tokens": {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}, "cases": cases,
            "decode_cases": decode_cases}


def save_model(tok, folder):
    """A tiny Llama-3-shaped model with weights large enough that greedy decoding is not a run of near-ties."""
    config = LlamaConfig(vocab_size=tok.get_vocab_size(with_added_tokens=True), hidden_size=64,
                         intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, rope_theta=500000.0, bos_token_id=tok.token_to_id(BOS),
                         eos_token_id=[tok.token_to_id(EOS), tok.token_to_id(EOT)], tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=generator) * 0.3
            # Norm weights stay around 1 (a norm weight near 0 would silence its channel).
            p.copy_(noise + 1.0 if p.dim() == 1 else noise)
    model.save_pretrained(folder)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOT,
                                      clean_up_tokenization_spaces=False)
    wrapped.save_pretrained(folder)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    transformers_logging.disable_progress_bar()
    tok = train()
    extra_texts = ignore_merges_texts(tok)
    counts = []
    for name, ignore_merges in (("tokenizer", True), ("tokenizer_merges", False)):
        path = os.path.join(out_dir, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(tokenizer_json(tok, ignore_merges))
        cases = make_cases(path, extra_texts)
        with open(os.path.join(out_dir, name + "_cases.json"), "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=False, indent=1)
        counts.append(f"{name}_cases.json: {len(cases['cases'])} cases, {len(cases['decode_cases'])} decode cases")
    save_model(Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json")), os.path.join(out_dir, "llama3_bpe_model"))
    print(f"vocab {tok.get_vocab_size(with_added_tokens=True)} (specials {tok.token_to_id(BOS)}.."
          f"{tok.token_to_id(EOT)}); {'; '.join(counts)}; {len(extra_texts)} texts where ignore_merges matters")


if __name__ == "__main__":
    main()
