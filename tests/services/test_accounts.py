"""8188 accounts: registration, the uniqueness races, passwords, the 3-day rotation (frozen clock)."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading

import psycopg
import pytest
from argon2 import PasswordHasher
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import Command
from replies.transports.fake import MemoryTransport
from services import account_registration, passwords
from services.handler import Request
from services.stores import accounts
from tests.support.pipeline import make_pipeline
from workers import messages, pipeline

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
SUCCESS = re.compile(r"TK: ([a-z.0-9]+), MK: (\S{10}) la tai khoan su dung HT Chinh quyen dien tu\. "
                     r"De nghi anh chi doi mat khau trong vong 03 ngay de bao mat\. Cam on!")
SYNTAX = ("Loi. Tin nhan sai cu phap. Cu phap dung la: TK,Ho va ten,soCMND,nn.tt.nnnn "
          "(ngay thang nam sinh)")
ID_TAKEN = "So CMND da duoc su dung de dang ky tai khoan tren he thong Chinh quyen dien tu"
PHONE_TAKEN = "So dien thoai da duoc su dung de dang ky tai khoan tren he thong Chinh quyen dien tu"


@pytest.fixture
def p(conn, database_url):
    built = make_pipeline(database_url)
    yield built
    built.pool.close()


def register(conn, p, text: str, phone: str, external_id: str = "1") -> str:
    """Send `text` to 8188 through dispatch and the service; the text the citizen receives."""
    inbound_id = messages.record_inbound(conn, source="t", external_id=external_id, sender=phone,
                                         shortcode="8188", text=text).id
    routed = pipeline.dispatch(p, [inbound_id])
    queued = [i for s, ids in routed.services.items() for i in pipeline.answer(p, s, ids)]
    transport = MemoryTransport()
    pipeline.deliver(p.pool, transport, p.sealer, queued)
    [sms] = transport.sent
    assert (sms.sender, sms.recipient) == ("8188", phone)
    return sms.text


@settings(max_examples=300)
@given(st.integers())
def test_generated_passwords_meet_the_rule_and_survive_sms(_):
    password = passwords.generate()
    assert len(password) == passwords.LENGTH
    assert any(c.isalpha() for c in password) and any(c.isdigit() for c in password)
    assert any(c in "@$!%*#?&" for c in password)
    assert set(password) <= set(passwords.LETTERS + passwords.DIGITS + passwords.SPECIALS)
    assert not set(password) & set("0O1lI")


def test_a_password_is_kept_as_an_argon2id_hash_only():
    password = passwords.generate()
    digest = passwords.hash_password(password)
    assert digest.startswith("$argon2id$") and password not in digest
    assert passwords.verify(digest, password) and not passwords.verify(digest, password + "x")


def test_passwords_are_hashed_at_owasps_setting_and_older_hashes_still_verify():
    assert passwords.hash_password("Xy7pQ2wz@k").startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    older = PasswordHasher().hash("Xy7pQ2wz@k")  # the library's default profile, made before
    assert passwords.verify(older, "Xy7pQ2wz@k") and not passwords.verify(older, "Xy7pQ2wz@K")


@pytest.mark.parametrize(("name", "pattern"), [
    ("Nguyen Van An", r"an\.nguyen\.\d{4}"),
    ("Tran Thi Bich Ngoc", r"ngoc\.tran\.\d{4}"),
    ("Phuc", r"phuc\.\d{4}"),
    ("Nguyenvanthanhhuongxuan Longlonglonglongname", r"longlonglo\.nguyenvant\.\d{4}"),
])
def test_user_names(name, pattern):
    assert re.fullmatch(pattern, account_registration.username(name))


def test_registration_replies_with_the_seed_text_and_keeps_no_plain_password(conn, p, caplog):
    with caplog.at_level(logging.DEBUG):
        text = register(conn, p, "TK,Nguyen Van An,123456789,01.02.1990", "+84905123456")
    match = SUCCESS.fullmatch(text)
    assert match, text
    username, password = match.groups()
    row = conn.execute("SELECT username, phone, id_number, full_name, birth_date, password_hash "
                       "FROM accounts.citizens").fetchone()
    assert row[:5] == (username, "+84905123456", "123456789", "Nguyen Van An", dt.date(1990, 2, 1))
    assert passwords.verify(row[5], password)
    stored, sealed = conn.execute("SELECT text, sealed FROM outbound").fetchone()
    assert sealed and password not in stored and "MK:" not in stored
    assert password not in caplog.text


@pytest.mark.parametrize("text", ["TK,Nguyen Van An,12345,01.02.1990", "hello",
                                  "TK;Nguyen Van An;123456789;31.02.1990"])
def test_a_syntax_error_gets_the_seed_text(conn, p, text):
    assert register(conn, p, text, "+84905123456") == SYNTAX


def test_one_account_per_cmnd_and_per_phone(conn, p):
    register(conn, p, "TK,Nguyen Van An,123456789,01.02.1990", "+84905000001", "a")
    assert register(conn, p, "TK;Le Van Binh;123456789;02/03/1991", "+84905000002", "b") == ID_TAKEN
    assert register(conn, p, "TK,Le Van Binh,987654321,02.03.1991", "+84905000001", "c") \
        == PHONE_TAKEN
    assert conn.execute("SELECT count(*) FROM accounts.citizens").fetchone() == (1,)


@pytest.mark.parametrize(("phone", "cmnd", "expected"), [
    ("+84905000002", "123456789", "id_registered"),
    ("+84905000001", "555555555", "phone_registered"),
])
def test_the_second_of_two_racing_registrations_gets_the_refusal(database_url, conn, phone, cmnd,
                                                                 expected):
    """The first registration is in flight (not committed) when the second checks and inserts."""
    first = psycopg.connect(database_url)
    accounts.create(first, username="an.nguyen.0001", phone="+84905000001", id_number="123456789",
                    full_name="Nguyen Van An", birth_date=dt.date(1990, 2, 1),
                    password_hash="x", now=T0)
    result: list = []

    def second() -> None:
        with psycopg.connect(database_url) as other, other.transaction():
            request = Request(phone, Command("account_registration", {
                "full_name": "Le Van Binh", "id_number": cmnd, "birth_date": "1991-03-02"}), T0)
            result.append(account_registration.handle(other, request))

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # waiting on the unique index for the first to decide
    first.commit()
    first.close()
    thread.join(10)
    assert result[0].outcome == expected
    assert conn.execute("SELECT count(*) FROM accounts.citizens").fetchone() == (1,)


def test_many_simultaneous_registrations_of_one_cmnd_make_one_account(conn, p):
    ids = [messages.record_inbound(conn, source="t", external_id=str(n), sender=f"+8490500{n:04d}",
                                   shortcode="8188", text="TK,Nguyen Van An,123456789,01.02.1990").id
           for n in range(8)]
    threads = [threading.Thread(target=pipeline.answer, args=(p, "account_registration", [i]))
               for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted(r[0] for r in conn.execute("SELECT outcome FROM outbound"))
    assert outcomes == ["id_registered"] * 7 + ["registered"]
    assert conn.execute("SELECT count(*) FROM accounts.citizens").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)


def _account(conn, phone: str = "+84905000001", cmnd: str = "123456789") -> int:
    return accounts.create(conn, username=f"u.{cmnd}", phone=phone, id_number=cmnd,
                           full_name="Nguyen Van An", birth_date=dt.date(1990, 2, 1),
                           password_hash=passwords.hash_password("Old-pass1!"), now=T0)


def test_rotation_after_three_days_once_with_a_reminder(conn, p, caplog):
    account_id = _account(conn)
    assert pipeline.rotate_passwords(p, T0 + dt.timedelta(days=3) - dt.timedelta(seconds=1)) == []
    rotated_at = T0 + dt.timedelta(days=3, seconds=1)
    with caplog.at_level(logging.DEBUG):
        queued = pipeline.rotate_passwords(p, rotated_at)
        assert pipeline.rotate_passwords(p, rotated_at) == []  # the same period again: nothing
        transport = MemoryTransport()
        pipeline.deliver(p.pool, transport, p.sealer, queued)
    [sms] = transport.sent
    match = re.fullmatch(r"TK: u\.123456789, MK moi: (\S{10})\. MK cu da bi xoa vi chua doi trong "
                         r"03 ngay\. De nghi anh chi doi mat khau de bao mat\. Cam on!", sms.text)
    assert match and (sms.sender, sms.recipient) == ("8188", "+84905000001")
    digest, issued, rotations = conn.execute(
        "SELECT password_hash, password_issued_at, rotations FROM accounts.citizens").fetchone()
    assert passwords.verify(digest, match[1]) and not passwords.verify(digest, "Old-pass1!")
    assert (issued, rotations) == (rotated_at, 1)
    assert conn.execute("SELECT dedupe_key, sealed FROM outbound").fetchall() == [
        (f"rotation:{account_id}:1", True)]
    assert match[1] not in caplog.text
    # Three days later, still unchanged: the next period rotates again.
    assert len(pipeline.rotate_passwords(p, rotated_at + dt.timedelta(days=3, seconds=1))) == 1


def test_two_rotations_at_once_send_one_sms_per_account(conn, p, database_url):
    for n in range(20):
        _account(conn, phone=f"+8490500{n:04d}", cmnd=f"{n:09d}")
    now = T0 + dt.timedelta(days=4)
    other = make_pipeline(database_url)
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda q=q: results.append(pipeline.rotate_passwords(q, now)))
               for q in (p, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.pool.close()
    assert sum(len(r) for r in results) == 20
    assert conn.execute("SELECT count(*), count(DISTINCT dedupe_key) FROM outbound").fetchone() == (
        20, 20)
    assert conn.execute("SELECT max(rotations) FROM accounts.citizens").fetchone() == (1,)


def test_a_changed_password_is_not_rotated(conn, p):
    _account(conn)
    assert accounts.password_changed(conn, "u.123456789", T0 + dt.timedelta(days=1))
    assert not accounts.password_changed(conn, "nobody.0000", T0)
    assert pipeline.rotate_passwords(p, T0 + dt.timedelta(days=30)) == []
    assert conn.execute("SELECT password_hash FROM accounts.citizens").fetchone() == (None,)
