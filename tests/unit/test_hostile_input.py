"""10,000 generated hostile messages through the codec: none may crash it, each is accounted for."""

from collections import Counter

from shared.errors import BadEvent
from shared.events import decode
from tests.hostile import hostile_messages, valid_attempt, valid_dispatch

FED = 10_000


def test_every_hostile_message_is_either_rejected_with_a_reason_or_valid():
    outcomes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    templates = [valid_dispatch("s-1"), valid_attempt("s-1")]
    for kind, raw in hostile_messages(seed=20261203, count=FED, templates=templates):
        kinds[kind] += 1
        try:
            decode(raw)
        except BadEvent as bad:
            assert bad.reason and bad.detail and len(bad.detail) <= 600
            outcomes[f"dead-letter:{bad.reason}"] += 1
        else:
            outcomes["valid"] += 1  # a mutation that stayed within the schema (e.g. another name)
    assert sum(outcomes.values()) == FED
    assert sum(n for k, n in outcomes.items() if k.startswith("dead-letter")) > FED * 0.8
    print(f"\nfed {FED}: {dict(sorted(outcomes.items()))}\nkinds: {dict(sorted(kinds.items()))}")
