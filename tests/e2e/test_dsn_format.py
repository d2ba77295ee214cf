"""
test_dsn_format.py: the delivery status notifications that src/queue/dsn.c
composes, read back by Python's email package (policy.default), as a mail
client or a bounce processor would read them.

The reports come from the cmocka test (build dir of PETREL_BIN, binary
test_queue_dsn): with PETREL_DSN_DUMP=dir it writes each composed report
to dir/<case>.eml. Every report is checked for the RFC 3464 / RFC 6522
structure (multipart/report, report-type naming the second part, the
delivery-status fields, the returned content), then some cases field by
field.
"""

import email
import email.policy
import email.utils
import os
import re
import subprocess

import pytest

import harness

HOST = "mx.petrel.test"
STATUS_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}
SUBJECTS = {
    "Undelivered Mail Returned to Sender": {"failed"},
    "Delayed Mail (still being retried)": {"delayed"},
    "Successful Mail Delivery Report": {"delivered", "relayed", "expanded"},
}
THIRD_PARTS = {
    "delivery-status": {"text/rfc822-headers", "message/rfc822"},
    "global-delivery-status": {"message/global-headers", "message/global"},
}


def _dump_binary():
    path = os.path.join(os.path.dirname(os.path.abspath(harness.PETREL_BIN)),
                        "test_queue_dsn")
    return path if os.access(path, os.X_OK) else None


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    binary = _dump_binary()
    if binary is None:
        pytest.skip("no test_queue_dsn next to PETREL_BIN (%s): the unit "
                    "tests are not built (cmocka missing?)"
                    % harness.PETREL_BIN)
    out = tmp_path_factory.mktemp("dsn")
    env = dict(os.environ, PETREL_DSN_DUMP=str(out))
    r = subprocess.run([binary], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=300)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    found = {p.stem: p.read_bytes() for p in out.glob("*.eml")}
    assert len(found) >= 20, sorted(found)
    return found


def u8(s):
    """A header value with raw UTF-8 (RFC 6532), as Python hands it out
    (undecodable bytes as surrogate escapes), decoded."""
    return str(s).encode("utf-8", "surrogateescape").decode("utf-8")


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def status_blocks(part):
    """The delivery-status part as a list of field blocks (Messages)."""
    ctype = part.get_content_type()
    if ctype == "message/delivery-status":
        blocks = part.get_payload()
        assert isinstance(blocks, list)
        return blocks
    assert ctype == "message/global-delivery-status"
    # Python reads message/global-delivery-status as one embedded
    # message: per-message fields as its header, recipients as its body.
    first = part.get_payload()[0]
    body = first.get_payload(decode=True)
    blocks = [first]
    for chunk in re.split(rb"\r\n\r\n", body):
        if chunk.strip():
            blocks.append(parse(chunk + b"\r\n"))
    return blocks


def check_report(name, raw):
    # Raw bytes: CRLF only, no line over 998 octets.
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", raw) is None, name
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998, (name, len(line))

    msg = parse(raw)
    assert msg.defects == [], (name, msg.defects)
    assert msg.get_content_type() == "multipart/report", name
    report_type = msg.get_param("report-type")
    assert report_type in THIRD_PARTS, (name, report_type)
    assert msg["Auto-Submitted"] == "auto-replied", name
    assert msg["MIME-Version"] == "1.0"
    sender = msg["From"].addresses
    assert len(sender) == 1
    assert sender[0].addr_spec == "MAILER-DAEMON@" + HOST
    assert sender[0].display_name == "Mail Delivery System"
    assert msg["Date"].datetime is not None
    assert re.fullmatch(r"<[0-9]+\.[0-9a-f]+@" + re.escape(HOST) + ">",
                        msg["Message-ID"]), msg["Message-ID"]

    parts = msg.get_payload()
    assert len(parts) in (2, 3), (name, len(parts))
    for p in parts:
        assert p.defects == [], (name, p.get_content_type(), p.defects)
    text, dsn = parts[0], parts[1]
    assert text.get_content_type() == "text/plain"
    assert text.get_content_charset() == "utf-8"
    assert text["Content-Description"] == "Notification"
    assert "This is the mail system at host %s." % HOST in text.get_content()
    # RFC 6522: report-type is the subtype of the second part.
    assert dsn.get_content_type() == "message/" + report_type, name
    if len(parts) == 3:
        assert parts[2].get_content_type() in THIRD_PARTS[report_type], name

    blocks = status_blocks(dsn)
    assert len(blocks) >= 2, name
    assert blocks[0]["Reporting-MTA"] == "dns; " + HOST
    actions = set()
    for b in blocks[1:]:
        assert b["Final-Recipient"] is not None, name
        assert b["Final-Recipient"].split(";")[0] in ("rfc822", "utf-8")
        assert b["Action"] in ACTIONS, (name, b["Action"])
        assert STATUS_RE.match(b["Status"]), (name, b["Status"])
        actions.add(str(b["Action"]))
        for k, _ in b.items():
            assert k in ("Final-Recipient", "Original-Recipient", "Action",
                         "Status", "Remote-MTA", "Diagnostic-Code",
                         "Last-Attempt-Date", "Will-Retry-Until"), (name, k)
        if b["Will-Retry-Until"] is not None:
            assert b["Action"] == "delayed"
    # The subject follows the most serious action.
    subject_actions = SUBJECTS[str(msg["Subject"])]
    assert actions & subject_actions, (name, actions, msg["Subject"])
    return msg, blocks


def test_every_report_parses(reports):
    for name, raw in sorted(reports.items()):
        check_report(name, raw)


def test_failed_one_field_by_field(reports):
    msg, blocks = check_report("failed_one", reports["failed_one"])
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["To"].addresses[0].addr_spec == "alice@example.com"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["In-Reply-To"] == "<20251128.abc@example.com>"
    text, dsn, headers = msg.get_payload()

    body = text.get_content()
    assert "<bob@example.org>: host mx.example.org said:" in body
    assert "550 5.1.1 <bob@example.org>: user unknown" in body
    assert "(in reply to RCPT TO command)" in body

    per_msg, rcpt = blocks
    assert per_msg["X-Petrel-Queue-ID"] == "1H2K3J4L5M6N7P8Q"
    arrival = email.utils.parsedate_to_datetime(str(per_msg["Arrival-Date"]))
    assert arrival.timestamp() == 1764382393 - 4 * 3600
    assert rcpt["Final-Recipient"] == "rfc822; bob@example.org"
    assert rcpt["Original-Recipient"] is None
    assert rcpt["Action"] == "failed"
    assert rcpt["Status"] == "5.1.1"
    assert rcpt["Remote-MTA"] == "dns; mx.example.org"
    assert rcpt["Diagnostic-Code"] == \
        "smtp; 550 5.1.1 <bob@example.org>: user unknown"
    last = email.utils.parsedate_to_datetime(str(rcpt["Last-Attempt-Date"]))
    assert last.timestamp() == 1764382393 - 60

    assert headers.get_content_type() == "text/rfc822-headers"
    assert headers["Content-Description"] == "Undelivered Message Headers"
    original = email.message_from_string(headers.get_content(),
                                         policy=email.policy.default)
    assert original["Subject"] == "lunch"
    assert original["Message-ID"] == msg["In-Reply-To"]
    assert original.get_payload() == ""


def test_several_recipients_orcpt_envid(reports):
    msg, blocks = check_report("failed_several_orcpt_envid",
                               reports["failed_several_orcpt_envid"])
    assert len(blocks) == 4
    assert blocks[0]["Original-Envelope-Id"] == "QQ+1=x"
    assert [str(b["Final-Recipient"]) for b in blocks[1:]] == [
        "rfc822; bob+x@example.org", "rfc822; carol@example.org",
        "rfc822; dave@nullmx.example"]
    assert blocks[1]["Original-Recipient"] == "rfc822; bob+x@example.org"
    assert blocks[2]["Original-Recipient"] == "rfc822; team@example.net"
    assert blocks[3]["Original-Recipient"] is None
    assert [str(b["Status"]) for b in blocks[1:]] == ["5.2.2", "5.7.1",
                                                      "5.1.10"]
    text = msg.get_payload()[0].get_content()
    for addr in ("bob+x@example.org", "carol@example.org",
                 "dave@nullmx.example"):
        assert "<%s>" % addr in text


def test_full_message_returned(reports):
    msg, _ = check_report("failed_full_within", reports["failed_full_within"])
    third = msg.get_payload()[2]
    assert third.get_content_type() == "message/rfc822"
    assert third["Content-Description"] == "Undelivered Message"
    original = third.get_payload()[0]
    assert original["Subject"] == "lunch"
    assert original.get_payload(decode=True) == \
        b"Shall we meet at noon?\r\n-- \r\nAlice\r\n"

    # Over bounce_size_limit: the headers only.
    msg, _ = check_report("failed_full_over_limit",
                          reports["failed_full_over_limit"])
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"


def test_eight_bit_content(reports):
    msg, _ = check_report("eight_bit_full", reports["eight_bit_full"])
    assert msg["Content-Transfer-Encoding"] == "8bit"
    third = msg.get_payload()[2]
    assert third["Content-Transfer-Encoding"] == "8bit"
    original = third.get_payload()[0]
    assert original["Subject"] == "Grüße"
    assert original.get_payload(decode=True) == \
        "Käse und Brötchen\r\n".encode()


def test_delayed(reports):
    msg, blocks = check_report("delayed", reports["delayed"])
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    rcpt = blocks[1]
    assert rcpt["Action"] == "delayed"
    assert rcpt["Status"] == "4.4.1"
    until = email.utils.parsedate_to_datetime(str(rcpt["Will-Retry-Until"]))
    assert until.timestamp() == 1764382393 - 4 * 3600 + 5 * 86400
    text = msg.get_payload()[0].get_content()
    assert "Your message could not be delivered for 4 hours." in text
    assert "THIS IS A WARNING ONLY" in text
    # RET=FULL is for failures: a delay warning returns the headers.
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"


def test_success_notices(reports):
    for name in ("delivered", "relayed"):
        msg, blocks = check_report(name, reports[name])
        assert msg["Subject"] == "Successful Mail Delivery Report"
        assert {str(b["Action"]) for b in blocks[1:]} == {name}
        assert all(str(b["Status"]).startswith("2.") for b in blocks[1:])
    _, blocks = check_report("relayed", reports["relayed"])
    assert blocks[1]["Diagnostic-Code"] == \
        "smtp; 250 2.0.0 Ok: queued as 4F2A1"


def test_smtputf8_report(reports):
    msg, blocks = check_report("smtputf8", reports["smtputf8"])
    assert msg.get_param("report-type") == "global-delivery-status"
    assert u8(msg["To"].addresses[0].addr_spec) == "jürgen@example.org"
    parts = msg.get_payload()
    assert parts[1].get_content_type() == "message/global-delivery-status"
    assert parts[2].get_content_type() == "message/global-headers"
    assert blocks[1]["Final-Recipient"] == "utf-8; 用户@example.net"
    assert blocks[1]["Diagnostic-Code"] == "smtp; 550 5.1.1 用户 unknown?"
    assert "<用户@example.net>: host mx.example.net said:" in \
        parts[0].get_content()
    returned = parts[2].get_payload()[0]
    assert returned["Subject"] == "你好"

    msg, _ = check_report("smtputf8_full", reports["smtputf8_full"])
    assert msg.get_payload()[2].get_content_type() == "message/global"


def test_plain_report_stays_ascii(reports):
    # A UTF-8 address and 8-bit reply text in a report for a message
    # without SMTPUTF8: RFC 6533 utf-8-addr-xtext, '?' for the rest.
    raw = reports["utf8_address_plain_report"]
    assert all(b < 0x80 for b in raw)
    _, blocks = check_report("utf8_address_plain_report", raw)
    assert blocks[1]["Final-Recipient"] == \
        "utf-8; j\\x{FC}rgen\\x{2B}1\\x{3D}x@example.org"


def test_multiline_and_long_replies(reports):
    _, blocks = check_report("multiline_reply", reports["multiline_reply"])
    assert blocks[1]["Diagnostic-Code"] == (
        "smtp; 550-5.7.1 This mail was refused. 550-5.7.1 See "
        "https://example.org/why 550 5.7.1 Goodbye.")

    _, blocks = check_report("long_diagnostic_words",
                             reports["long_diagnostic_words"])
    diag = str(blocks[1]["Diagnostic-Code"])
    assert diag.startswith("smtp; 550 5.1.1 word0 word1 ")
    assert diag.split() == (["smtp;", "550", "5.1.1"] +
                            ["word%d" % i for i in range(400)] +
                            ["two", "spaces"])


def test_hostile_values_stay_inside_their_fields(reports):
    msg, blocks = check_report("hostile_orcpt_envid",
                               reports["hostile_orcpt_envid"])
    for b in blocks:
        assert b["X-Injected"] is None
        assert b["X-Bad"] is None
    assert blocks[0]["Original-Envelope-Id"] == "id+0D+0AX-Injected:+20yes"
    assert blocks[1]["Original-Recipient"] == \
        "rfc822; evil+0D+0AX-Injected:+20yes@example.org"
    assert blocks[1]["Diagnostic-Code"] == \
        "smtp; 550 5.1.1 bad X-Injected: yes"


def test_boundary_never_in_content(reports):
    for name in ("boundary_lookalike", "boundary_collision"):
        msg, _ = check_report(name, reports[name])
        boundary = msg.get_boundary()
        assert boundary.encode() not in msg.get_payload()[2].as_bytes()
        assert len(msg.get_payload()) == 3
