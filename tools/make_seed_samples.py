"""Writes assets/data/seeds: small samples, in each seed method's own file format, for Agora's tests and demo.

- sandbox_logs/{train,valid}/world_{a,b}/agent_N.json: Stable Alignment sandbox interaction logs (one JSON array
  per agent, the schema of Agent.save_ext_memory: draft, peer ratings and feedback, revision, observer scores).
  Two worlds answer the same questions, as worlds run with different agent models do. `agora data
  sandbox-to-groups` turns them into sandbox_groups/{train,valid}.json (committed, and checked by a test).
- matrix/{train,valid}.json: MATRIX / FastChat conversations {id, conversations: [{from, value}]}.
- dromedary/{train,valid}.json: SELF-ALIGN records {example_id, instruction, input, output}, outputs ending with
  the "### User" stop marker; dromedary/meta_prompt_{standard,concise}.txt: meta prompts written for Agora.
- preference/{train,valid}.jsonl: DPO pairs {prompt, chosen, rejected}.

Questions: the Stable Alignment question pool (Apache-2.0, HH-RLHF red-team questions, many harmful on purpose).
Answers, drafts, feedback and ratings: the hand-written templates of tools/make_demo_data.py, so the samples
imitate each format's shape, not any real model's output. Deterministic (fixed seed, standard library only).

usage: python3 tools/make_seed_samples.py [--pool ../shared/data/stable-alignment/question.txt] [--out DIR]
"""
import argparse
import json
import os
import random

import make_demo_data as demo

DEFAULT_OUT = os.path.join(demo.ROOT, "assets", "data", "seeds")
SEED = 20240205  # MATRIX's arXiv date; any fixed value does

# Split sizes: questions per split. Sandbox worlds: agents x rounds questions each.
SANDBOX = {"train": (4, 6), "valid": (2, 2)}
SIZES = {"train": 40, "valid": 8}

META_STANDARD = """# Assistant principles

The assistant below answers the user's message. It follows these principles, written for Agora's samples:
1. Be helpful: answer what was asked, with concrete and correct steps where steps are wanted.
2. Be honest: say what you do not know instead of guessing.
3. Be harmless: decline requests that would hurt people, and offer a safe alternative.
4. Be fair: do not judge people by group; give balanced views on contested topics.

## Example

### User
Who are you?

### Dromedary
I am an assistant that answers questions carefully and honestly, following the principles above.

## User Conversation

### User"""

META_CONCISE = """# Assistant principles (concise)

Answer briefly, honestly and harmlessly; decline harmful requests and suggest a safe alternative.

## User Conversation

### User"""


def sandbox_logs(rng, questions, agents, rounds, world):
    """One world's interaction logs: agents x rounds records, question r * agents + i for agent i in round r."""
    logs = []
    for i in range(agents):
        records = []
        for r in range(rounds):
            q = questions[r * agents + i]
            draft = demo.sandbox_round(rng, q)
            peers = sorted(rng.sample([a for a in range(agents * 4) if a != i], 3))
            ratings, feedback = [], []
            for _ in peers:
                x = demo.sandbox_round(rng, q)
                ratings.append(x["rating"])
                feedback.append(x["feedback"])
            # One peer in ten gives no parsable rating: the sandbox stores the string "8" for it.
            shown = [str(v) if rng.random() > 0.1 else "8" for v in ratings]
            order = sorted(range(len(peers)), key=lambda k: -int(shown[k]))
            before = float(draft["rating"]) if rng.random() > 0.1 else -1.0  # observer parse failure: -1
            after = float(rng.choice([5, 6, 6, 7, 7]))
            records.append({
                "agent_id": i, "label": "good" if (i + r) % 2 == 0 else "bad", "iteration": r, "question": q,
                "draft_answer": draft["draft"], "target_id": [peers[k] for k in order],
                "feedback": [feedback[k] for k in order], "rating": [shown[k] for k in order],
                "revised_answer": draft["revised"],
                "gen_moral_score_before": before, "gen_moral_reason_before": f"{world}: draft judged {before}",
                "gen_moral_score_after": after, "gen_moral_reason_after": f"{world}: revision judged {after}",
                "gen_engagement_score_before": float(rng.randint(2, 6)), "gen_engagement_reason_before": "",
                "gen_engagement_score_after": float(rng.randint(3, 7)), "gen_engagement_reason_after": "",
                "cls_moral_score_before": 0, "cls_moral_score_after": 0,
            })
        logs.append(records)
    return logs


def write_json_array(path, records):
    """The released files' layout (a JSON array), one record per line so diffs stay readable."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n]\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", default=demo.DEFAULT_POOL)
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    _, questions = demo.load_questions(args.pool)
    rng = random.Random(SEED)
    rng.shuffle(questions)
    used = iter(questions)

    for split, (agents, rounds) in SANDBOX.items():
        qs = [next(used) for _ in range(agents * rounds)]
        for world in ("world_a", "world_b"):
            folder = os.path.join(args.out, "sandbox_logs", split, world)
            os.makedirs(folder, exist_ok=True)
            for i, records in enumerate(sandbox_logs(rng, qs, agents, rounds, world)):
                write_json_array(os.path.join(folder, f"agent_{i}.json"), records)

    for split, n in SIZES.items():
        qs = [next(used) for _ in range(n)]
        rounds = [demo.sandbox_round(rng, q) for q in qs]
        os.makedirs(os.path.join(args.out, "matrix"), exist_ok=True)
        write_json_array(os.path.join(args.out, "matrix", f"{split}.json"), [
            {"id": f"agora_{split}_{k}", "conversations": [{"from": "human", "value": q},
                                                          {"from": "gpt", "value": r["revised"]}]}
            for k, (q, r) in enumerate(zip(qs, rounds))])
        os.makedirs(os.path.join(args.out, "dromedary"), exist_ok=True)
        write_json_array(os.path.join(args.out, "dromedary", f"{split}.json"), [
            {"example_id": k, "instruction": q, "input": "",
             # Complete answers end with the stop marker the model learns; every fourth is partial, as in the
             # released data (whose card warns against appending EOS for that reason).
             "output": r["revised"] + ("\n\n### User" if k % 4 else "")}
            for k, (q, r) in enumerate(zip(qs, rounds))])
        os.makedirs(os.path.join(args.out, "preference"), exist_ok=True)
        with open(os.path.join(args.out, "preference", f"{split}.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for q, r in zip(qs, rounds):
                f.write(json.dumps({"prompt": q, "chosen": r["revised"], "rejected": r["draft"]},
                                   ensure_ascii=False) + "\n")
    for name, text in (("standard", META_STANDARD), ("concise", META_CONCISE)):
        with open(os.path.join(args.out, "dromedary", f"meta_prompt_{name}.txt"), "w", encoding="utf-8",
                  newline="\n") as f:
            f.write(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
