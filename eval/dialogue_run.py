"""Score conversations: each gold dialogue is played turn by turn through ``Tongwen.ask``, with the
system's own earlier answers as the history (as in the UI), and every follow-up is scored.

Per split (tune / test) and script: evidence of the follow-up among the top 5 sources, answerable
follow-ups refused, unanswerable follow-ups refused, expected facts in the answer, answer script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from eval import metrics as m
from eval.dialogues import Dialogue
from ingest.normalise import compact
from rag.service import Tongwen

SCRIPTS = ("trad", "simp")
#: The script a conversation of each kind is asked, and must be answered, in.
CONVERSATION_SCRIPT = {"trad": "traditional", "simp": "simplified"}


def dialogue_records(service: Tongwen, dialogues: Sequence[Dialogue], llm: str, progress: bool) -> list[dict]:
    records = []
    jobs = [(d, script) for d in dialogues for script in SCRIPTS]
    for dialogue, script in tqdm(jobs, desc=f"dialogues ({llm})", disable=not progress, leave=False):
        history: list[dict[str, str]] = []
        for n, turn in enumerate(dialogue.turns, start=1):
            question = turn.question(script)
            result = service.ask(question, history=history, llm=llm)
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": result.answer}]
            if n == 1:
                continue
            texts = [s.text for s in result.sources[:5]]
            hit = any(m.contains_evidence(t, e) for t in texts for e in turn.evidence)
            answer = compact(result.answer)
            records.append(
                {
                    "id": f"{dialogue.id}#{n}",
                    "category": dialogue.category,
                    "split": dialogue.split,
                    "script": script,
                    "question": question,
                    "understood": result.question,
                    "answerable": turn.answerable,
                    "found": result.found,
                    "support": result.support,
                    "missing": result.missing,
                    "answer": result.answer,
                    "evidence_hit@5": hit if turn.answerable else None,
                    "facts": (
                        sum(compact(f) in answer for f in turn.answer_facts) / len(turn.answer_facts)
                        if turn.answer_facts
                        else None
                    ),
                    # Against the conversation's script: a follow-up such as 「ODA呢？」 has none of its
                    # own, and neither may the first question (then every answer had to be neutral).
                    "script_match": m.answer_in_script(result.answer, CONVERSATION_SCRIPT[script]),
                }
            )
    return records


def summarise_dialogues(records: list[dict]) -> dict[str, Any]:
    """{split: {script: metrics}} over the follow-up turns."""
    out: dict[str, Any] = {}
    for split in sorted({r["split"] for r in records}):
        out[split] = {}
        for script in SCRIPTS:
            rows = [r for r in records if r["split"] == split and r["script"] == script]
            ans = [r for r in rows if r["answerable"]]
            una = [r for r in rows if not r["answerable"]]
            out[split][script] = {
                "follow_up_hit@5": m.mean_or_none(float(r["evidence_hit@5"]) for r in ans),
                "false_refusal_rate": m.mean_or_none(float(not r["found"]) for r in ans),
                "unanswerable_refused": m.mean_or_none(float(not r["found"]) for r in una),
                "facts_in_answer": m.mean_or_none(r["facts"] for r in ans if r["found"] and r["facts"] is not None),
                "script_match": m.mean_or_none(float(r["script_match"]) for r in rows),
                "n": len(rows),
            }
    return out
