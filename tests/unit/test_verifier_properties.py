"""Random sequences of issue, attempt, day-close and redelivery against the verifier's rules.

A small in-memory model keeps what the verifier's tables keep (codes per shipment,
decisions per attempt id) and applies `decide_attempt` exactly as the handler does.
Hypothesis then looks for any sequence that breaks the handover promises.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.verifier.domain import CodeState, CodeStatus, Decision, ShipmentState, decide_attempt

START = datetime(2018, 3, 5, 9, tzinfo=UTC)


@dataclass
class Code:
    value: str
    state: CodeState


@dataclass
class Model:
    codes: list[Code] = field(default_factory=list)
    decisions: dict[str, Decision] = field(default_factory=dict)
    now: datetime = START
    accepted: list[tuple[str, Code, datetime]] = field(default_factory=list)

    @property
    def current(self) -> Code | None:
        return self.codes[-1] if self.codes else None

    def issue(self, value: str) -> None:
        """A new day's code supersedes whatever is still live; a delivered parcel gets none."""
        if self.current and self.current.state.status is CodeStatus.CONSUMED:
            return
        for code in self.codes:
            if code.state.status in (CodeStatus.ACTIVE, CodeStatus.LOCKED):
                code.state = replace(code.state, status=CodeStatus.SUPERSEDED)
        day = len(self.codes) + 1
        end = START + timedelta(days=day)
        self.codes.append(Code(value, CodeState(f"s.d{day}", day, self.now, end, CodeStatus.ACTIVE, 0, 5, True)))

    def close_day(self) -> None:
        if self.current and self.current.state.status in (CodeStatus.ACTIVE, CodeStatus.LOCKED):
            self.current.state = replace(self.current.state, status=CodeStatus.EXPIRED)
            self.now = max(self.now, self.current.state.valid_until)

    def attempt(self, attempt_id: str, candidate: str, receiver: str, at: datetime) -> Decision:
        if attempt_id in self.decisions:
            return self.decisions[attempt_id]
        current = self.current
        match = "none"
        for code in self.codes:
            if code.value == candidate:
                match = "current" if code is current else ("older" if match == "none" else match)
        shipment = ShipmentState(True, False, current.state if current else None) if self.codes else None
        decision = decide_attempt(shipment, match, receiver, at)  # type: ignore[arg-type]
        if decision.code is not None and current is not None:
            current.state = decision.code
        if decision.accepted:
            assert current is not None
            self.accepted.append((candidate, current, at))
        self.decisions[attempt_id] = decision
        return decision


codes = st.text(alphabet="0123456789", min_size=6, max_size=6)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("issue"), codes),
        st.tuples(st.just("close"), st.none()),
        st.tuples(
            st.just("attempt"),
            st.tuples(
                st.sampled_from(["current", "older", "random"]),
                codes,
                st.sampled_from(["customer", "neighbour"]),
                st.integers(min_value=-2, max_value=30),  # hours after now; negative = back-dated
                st.integers(min_value=0, max_value=6),  # attempt ids repeat on purpose
            ),
        ),
    ),
    max_size=60,
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_handover_promises_hold_for_every_sequence(ops):
    model = Model()
    answers: dict[str, Decision] = {}
    for op, argument in ops:
        if op == "issue":
            model.issue(argument)
        elif op == "close":
            model.close_day()
        else:
            which, random_code, receiver, hours, attempt_number = argument
            current = model.current
            if which == "current" and current:
                candidate = current.value
            elif which == "older" and len(model.codes) > 1:
                candidate = model.codes[0].value
            else:
                candidate = random_code
            at = model.now + timedelta(hours=hours)
            model.now = max(model.now, at)
            attempt_id = f"a{attempt_number}"
            fresh = attempt_id not in model.decisions
            decision = model.attempt(attempt_id, candidate, receiver, at)
            # The same attempt id always gets the same answer, and only its first sending counts.
            assert answers.setdefault(attempt_id, decision) == decision
            if fresh and decision.accepted:
                # An accepted handover used the current code, within its validity.
                assert current is not None and candidate == current.value
                assert at < current.state.valid_until
    # One handover at most per shipment, and it consumed the newest code.
    assert len(model.accepted) <= 1
    for candidate, code, _ in model.accepted:
        assert code is model.codes[-1] and code.state.status is CodeStatus.CONSUMED
        assert candidate == code.value


@settings(max_examples=500, deadline=None)
@given(codes, codes, st.integers(min_value=0, max_value=4))
def test_a_superseded_or_expired_code_is_never_accepted(first, second, wrong_tries):
    model = Model()
    model.issue(first)
    for number in range(wrong_tries):
        model.attempt(f"w{number}", "x" * 6, "customer", model.now)
    model.close_day()
    assert not model.attempt("late", first, "customer", model.now).accepted
    model.issue(second)
    old = model.attempt("old", first, "customer", model.now)
    assert not old.accepted or first == second
