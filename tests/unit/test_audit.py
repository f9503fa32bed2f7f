"""The exposure audit must catch a code that was logged, and not cry wolf on look-alikes."""

import logging

from demo.audit import AuditResult, code_pattern, scan, scan_logs
from stack.environment import PROJECT_ROOT

PATTERN = code_pattern(["042817", "993311"])


def test_a_code_standing_alone_is_a_hit_wherever_it_is():
    assert scan('{"code": "042817"}', PATTERN) == {"042817": 1}
    assert scan("sending code 042817 to the customer", PATTERN) == {"042817": 1}
    assert scan("value=993311\n", PATTERN) == {"993311": 1}


def test_timestamps_digests_and_base64_are_not_hits():
    assert not scan("2018-01-05T10:23:45.042817+00:00", PATTERN)
    assert not scan("hmac 9f042817ab 0042817 0428170", PATTERN)
    assert not scan("blob QUJD042817+/ab== x/042817", PATTERN)


def test_the_audit_catches_a_code_deliberately_logged(tmp_path):
    log_dir = PROJECT_ROOT / ".stack" / "logs" / "audit-self-test"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "leaky-service.log"
    handler = logging.FileHandler(path, mode="w")
    leaky = logging.getLogger("leaky")
    leaky.addHandler(handler)
    try:
        leaky.warning("issued code %s for shipment s-1", "042817")  # the mistake the audit exists for
    finally:
        handler.close()
        leaky.removeHandler(handler)
    result = AuditResult(codes=2)
    scan_logs([path], PATTERN, result)
    assert result.hits["logs"] == 1 and result.exposures == 1
    assert "leaky-service.log" in result.examples[0]
    path.unlink()
    log_dir.rmdir()
