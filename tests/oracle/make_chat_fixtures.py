"""Writes the chat-template fixtures that tests/chat_template_test.cpp compares Agora's chat templates against.

Usage: python make_chat_fixtures.py OUT_DIR TOKENIZER_MODEL

TOKENIZER_MODEL is the Llama-2-style model make_tokenizer_fixtures.py trains; it is copied to
OUT_DIR/tokenizer.model. OUT_DIR/chat_cases.json then holds a set of conversations and, for each, what an
independent reference gives with the official `sentencepiece` library:

  llama2         Meta's reference `chat_completion` (facebookresearch/llama, llama/generation.py): the system
                 message folded into the first user content, then per (user, assistant) pair
                 encode(f"[INST] {user.strip()} [/INST] {answer.strip()} ", bos=True, eos=True) and for a trailing
                 user turn encode(f"[INST] {user.strip()} [/INST]", bos=True, eos=False) -- one encode per pair,
                 as Meta does, not segment by segment as Agora does. (Meta asserts the last message is the user's,
                 for generation; a training conversation ending with the assistant just has no trailing turn.)
                 Labels are derived from those ids alone: for each pair, the ids of encode of the prefix up to
                 and including "[/INST]" (bos=True) must prefix the pair's ids; those are -100, the rest (the
                 answer and EOS) are trained. A trailing user turn is all -100.
  llama2_prompt  for conversations ending with a user turn: Meta's dialog_tokens, the generation prompt.
  plain          "<s>{system}\n\n{user}\n\n{answer}</s>{user}\n\n{answer}</s>", each content stripped of ASCII
                 whitespace and encoded per segment exactly as data/chat_template.h specifies (a spec check by
                 construction, not an independent reference).
  plain_prompt   for conversations ending with a user turn.
  answer_pieces  per template, per assistant message, the sentencepiece pieces of the answer text each template
                 trains: "{answer.strip()} " (Meta's) for llama2, the ASCII-stripped answer for plain.

Agora encodes segment by segment, which equals Meta's single encode except at some segment boundaries. The
oracle computes the segment-wise rendering too, only to decide: a conversation whose Meta ids differ from it gets
no llama2 entry, and is listed under "llama2_excluded" with the reason instead. The expected exclusions are fixed
below (EXPECTED_LLAMA2_EXCLUSIONS); any other disagreement fails the oracle, so a changed tokenizer cannot quietly
shrink the check.

chat_cases.json: {"tokenizer": "tokenizer.model", "bos_id", "eos_id", "cases": [{"name", "messages": [{role,
content}], "llama2"?: {ids, labels}, "llama2_prompt"?, "plain": {ids, labels}, "plain_prompt"?,
"answer_pieces": {"llama2", "plain"}}], "llama2_excluded": [{"name", "reason"}]}.
"""

import json
import os
import shutil
import sys

import sentencepiece as spm

IGNORE = -100
B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
ASCII_WHITESPACE = " \t\n\r\f\v"


def conversation(*turns):
    return [{"role": role, "content": content} for role, content in turns]


SYSTEM, USER, ASSISTANT = "system", "user", "assistant"

CASES = [
    ("single_turn", conversation(
        (USER, "What is the capital of France?"),
        (ASSISTANT, "Paris is the capital of France."))),
    ("system_multi_turn", conversation(
        (SYSTEM, "You are a helpful assistant. Answer briefly."),
        (USER, "hello world"),
        (ASSISTANT, "Hello! How can I help?"),
        (USER, "Count to five."),
        (ASSISTANT, "1, 2, 3, 4, 5."))),
    ("three_turns_no_system", conversation(
        (USER, "the quick brown fox"),
        (ASSISTANT, "jumps over the lazy dog"),
        (USER, "and then?"),
        (ASSISTANT, "it was the best of times"),
        (USER, "and the worst?"),
        (ASSISTANT, "it was the worst of times"))),
    # Meta strips each content; the system text is not stripped on its own, only the folded user content as a
    # whole, so the system's surrounding whitespace stays inside <<SYS>>.
    ("surrounding_whitespace", conversation(
        (SYSTEM, "  \t be brief \n"),
        (USER, " \t  hello   world \n\n"),
        (ASSISTANT, "\n\n  the  answer \t "),
        (USER, "\r\nagain\t"),
        (ASSISTANT, "   again  "))),
    # Literal control-token and markup text in contents is plain text, never <s>/</s>.
    ("literal_control_text", conversation(
        (USER, "Please repeat <s> and </s> and [INST] x [/INST] back"),
        (ASSISTANT, "<s>[INST] sure [/INST]</s> <<SYS>>"))),
    ("control_text_only", conversation(
        (USER, "<s>"),
        (ASSISTANT, "</s>"))),
    ("unicode", conversation(
        (SYSTEM, "Réponds en français. 日本語も"),
        (USER, "日本語のテキスト café 🦙 Ω≈ç√∫"),
        (ASSISTANT, "naïve résumé 🧬 Ångström über straße 中文文本"))),
    ("multiline_and_digits", conversation(
        (USER, "line one\nline two\n\tindented 2024-01-31"),
        (ASSISTANT, "first\n\nsecond: 3.14159 and 12345"))),
    ("system_with_empty_user", conversation(
        (SYSTEM, "system text"),
        (USER, ""),
        (ASSISTANT, "ok"))),
    ("empty_answer", conversation(
        (USER, "say nothing"),
        (ASSISTANT, ""))),
    # Conversations ending with a user turn: the generation prompt.
    ("prompt_single_user", conversation(
        (USER, "hello"))),
    ("prompt_with_system", conversation(
        (SYSTEM, "You are terse."),
        (USER, "What is 2+2?"))),
    ("prompt_after_exchange", conversation(
        (SYSTEM, "be brief"),
        (USER, "hi"),
        (ASSISTANT, "Hello."),
        (USER, "  and now <s>? "))),
    # Expected to disagree with Meta's single encode (see EXPECTED_LLAMA2_EXCLUSIONS).
    ("empty_user", conversation(
        (USER, ""),
        (ASSISTANT, "fine"))),
    ("whitespace_only_user", conversation(
        (USER, " \t\n "),
        (ASSISTANT, "fine"))),
    ("nbsp_around_user", conversation(
        (USER, "\u00a0hello\u00a0"),
        (ASSISTANT, "hi"))),
]

# Why Meta's ids and Agora's segment-wise rendering differ, for the cases where they do with this tokenizer.
EXPECTED_LLAMA2_EXCLUSIONS = {
    "empty_user": "segment boundary: Meta encodes \"[INST]  [/INST]\" (two spaces -> one \"\u2581\u2581\" piece); "
                  "segment-wise, the empty content adds nothing and \"[/INST]\" gets a single dummy-prefix "
                  "\"\u2581\", so one space is lost",
    "whitespace_only_user": "segment boundary: the content strips to \"\", as in empty_user",
    "nbsp_around_user": "not a segment boundary: Meta's str.strip() also removes Unicode whitespace (U+00A0); "
                        "Agora strips ASCII whitespace only, as data/chat_template.h specifies",
}


def strip_ascii(text):
    return text.strip(ASCII_WHITESPACE)


def fold_system(messages):
    """Meta's system handling: the system content prepended to the first user content."""
    if messages[0]["role"] == SYSTEM:
        first = {"role": messages[1]["role"], "content": B_SYS + messages[0]["content"] + E_SYS +
                 messages[1]["content"]}
        return [first] + messages[2:]
    return list(messages)


def meta_llama2(sp, messages):
    """Meta's chat_completion dialog_tokens, with labels from the prefix encode of each pair."""
    dialog = fold_system(messages)
    assert all(m["role"] == USER for m in dialog[::2]) and all(m["role"] == ASSISTANT for m in dialog[1::2])
    ids, labels = [], []
    for prompt, answer in zip(dialog[::2], dialog[1::2]):
        pair = [sp.bos_id()] + sp.encode(
            f"{B_INST} {(prompt['content']).strip()} {E_INST} {(answer['content']).strip()} ") + [sp.eos_id()]
        prefix = [sp.bos_id()] + sp.encode(f"{B_INST} {(prompt['content']).strip()} {E_INST}")
        assert pair[:len(prefix)] == prefix, (prompt, answer)
        ids += pair
        labels += [IGNORE] * len(prefix) + pair[len(prefix):]
    if dialog[-1]["role"] == USER:
        tail = [sp.bos_id()] + sp.encode(f"{B_INST} {(dialog[-1]['content']).strip()} {E_INST}")
        ids += tail
        labels += [IGNORE] * len(tail)
    return ids, labels


def segmentwise_llama2(sp, messages):
    """Agora's rendering (data/chat_template.h), only to decide whether a case can be compared with Meta's ids."""
    first, prefix = 0, ""
    if messages[0]["role"] == SYSTEM:
        prefix, first = B_SYS + messages[0]["content"] + E_SYS, 1
    ids = []
    for i in range(first, len(messages), 2):
        user = prefix + messages[i]["content"] if i == first else messages[i]["content"]
        ids += [sp.bos_id()] + sp.encode(B_INST) + sp.encode(strip_ascii(user)) + sp.encode(E_INST)
        if i + 1 < len(messages):
            ids += sp.encode(strip_ascii(messages[i + 1]["content"]) + " ") + [sp.eos_id()]
    return ids


def plain(sp, messages):
    """The plain template, per segment as data/chat_template.h specifies."""
    ids, labels = [sp.bos_id()], [IGNORE]
    for message in messages:
        if message["role"] == ASSISTANT:
            segment = sp.encode(strip_ascii(message["content"])) + [sp.eos_id()]
            ids += segment
            labels += segment
        else:
            segment = sp.encode(strip_ascii(message["content"]) + "\n\n")
            ids += segment
            labels += [IGNORE] * len(segment)
    return ids, labels


def make_cases(sp):
    cases, excluded = [], []
    for name, messages in CASES:
        case = {"name": name, "messages": messages}
        meta_ids, meta_labels = meta_llama2(sp, messages)
        if meta_ids == segmentwise_llama2(sp, messages):
            if name in EXPECTED_LLAMA2_EXCLUSIONS:
                sys.exit(f"{name}: expected Meta's ids to differ from the segment-wise rendering, but they agree")
            case["llama2"] = {"ids": meta_ids, "labels": meta_labels}
            if messages[-1]["role"] == USER:
                case["llama2_prompt"] = meta_ids
        else:
            if name not in EXPECTED_LLAMA2_EXCLUSIONS:
                sys.exit(f"{name}: Meta's ids differ from the segment-wise rendering; pick other contents or "
                         "add it to EXPECTED_LLAMA2_EXCLUSIONS with the reason")
            excluded.append({"name": name, "reason": EXPECTED_LLAMA2_EXCLUSIONS[name]})
        plain_ids, plain_labels = plain(sp, messages)
        case["plain"] = {"ids": plain_ids, "labels": plain_labels}
        if messages[-1]["role"] == USER:
            case["plain_prompt"] = plain_ids
        answers = [m["content"] for m in messages if m["role"] == ASSISTANT]
        case["answer_pieces"] = {"llama2": [sp.encode(a.strip() + " ", out_type=str) for a in answers],
                                 "plain": [sp.encode(strip_ascii(a), out_type=str) for a in answers]}
        cases.append(case)
    return cases, excluded


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out_dir, model = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    shutil.copyfile(model, os.path.join(out_dir, "tokenizer.model"))
    sp = spm.SentencePieceProcessor(model_file=model)
    # Meta's BOS/EOS are sentencepiece's; the markup must be ordinary text for this tokenizer, or the single
    # encode and the parse_special markup encode would not be comparable.
    assert sp.bos_id() >= 0 and sp.eos_id() >= 0
    cases, excluded = make_cases(sp)
    with open(os.path.join(out_dir, "chat_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer": "tokenizer.model", "bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "cases": cases,
                   "llama2_excluded": excluded}, f, ensure_ascii=False, indent=1)
    for e in excluded:
        print(f"llama2 excluded: {e['name']}: {e['reason']}")


if __name__ == "__main__":
    main()
