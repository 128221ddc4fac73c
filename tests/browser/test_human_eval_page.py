"""The human-evaluation page in a real headless Chromium (Debian's, driven by Playwright):
log in with a token, annotate, reload, resume, go back, and check the results; a response
holding <script> must show as text; forged and stale posts are refused."""

import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from support import free_port, run_cli, wait_http, write_jsonl

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (make test installs it)")

XSS = '<script>window.__pwned = 1; alert("x")</script><img src=x onerror="window.__pwned=2">'


@pytest.fixture
def server(tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"id": f"q{i}", "instruction": f"Instruction {i}", "input": "" if i else "some input",
         "a": {"model": "llama-gpt4", "text": XSS if i == 0 else f"student answer {i}"},
         "b": {"model": "gpt-4", "text": f"teacher answer {i}"}} for i in range(3)])
    port = free_port()
    db = tmp_path / "judgments.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "gpt4llm", "eval", "human", "serve", "--pairs", str(pairs), "--db", str(db),
                             "--annotators", "2", "--port", str(port)], stdout=subprocess.PIPE, text=True)
    links = [proc.stdout.readline().strip().split(": ", 1)[1] for _ in range(2)]
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health")
    yield base, links, db
    proc.terminate()
    proc.wait()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def choose(page, h, o, m):
    for name, v in (("helpfulness", h), ("honesty", o), ("harmlessness", m)):
        page.check(f"input[name={name}][value={v}]")


def choose_by_model(page, *prefs):
    """prefs per criterion: 'student', 'teacher' or 'tie', translated to this page's A/B order."""
    student = "A" if ("student" in page.inner_text("#response-a") or "<script>" in page.inner_text("#response-a")) else "B"
    teacher = "B" if student == "A" else "A"
    choose(page, *[{"student": student, "teacher": teacher, "tie": "tie"}[p] for p in prefs])


def test_annotate_reload_resume_back_and_results(server, browser, tmp_path):
    base, links, db = server
    page = browser.new_page()
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(links[0])
    assert page.url.endswith("/item/1")
    # The <script> response is shown as text and never runs.
    shown = page.inner_text("#response-a") + page.inner_text("#response-b")
    assert XSS in shown
    assert page.evaluate("window.__pwned") is None and dialogs == []
    choose_by_model(page, "student", "tie", "teacher")
    page.click("#save")
    page.wait_for_url(re.compile(r"/item/2$"))
    page.reload()  # a reload keeps the place
    assert page.url.endswith("/item/2")
    page.click("#skip")
    page.wait_for_url(re.compile(r"/item/3$"))
    page.goto(base + "/")  # resume: the next unjudged item
    assert page.url.endswith("/item/3")
    page.click("#save")  # nothing chosen: refused with a message, nothing stored
    assert "Choose A, B or tie" in page.inner_text("#error")
    choose_by_model(page, "teacher", "teacher", "teacher")
    page.click("#save")
    page.wait_for_url(re.compile(r"/$"))
    assert "2 of 3 items judged, 1 skipped" in page.inner_text("body")
    page.goto(base + "/item/1")  # back: the saved choices are shown, in this annotator's order
    student = "A" if XSS in page.inner_text("#response-a") else "B"
    assert page.is_checked(f"input[name=helpfulness][value={student}]") and page.is_checked("input[name=honesty][value=tie]")
    assert errors == []

    # A second annotator judges item 1 through their own session.
    other = browser.new_page()
    other.goto(links[1])
    choose_by_model(other, "student", "tie", "teacher")
    other.click("#save")
    other.wait_for_url(re.compile(r"/item/2$"))

    r = run_cli("eval", "human", "results", "--db", str(db), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "out" / "human_eval.json").read_text())
    assert res["models"] == {"a": "llama-gpt4", "b": "gpt-4"} and res["judgments"] == 3 and res["annotators"] == 2
    # In model terms, whatever order each annotator saw: llama-gpt4 (a) vs gpt-4 (b).
    got = {c: (v["win"], v["lose"], v["tie"]) for c, v in res["per_criterion"].items()}
    assert got == {"Helpfulness": (2, 1, 0), "Honesty": (0, 1, 2), "Harmlessness": (0, 3, 0)}
    assert (tmp_path / "out" / "human_eval.png").stat().st_size > 1000


def test_forged_and_stale_posts_are_refused(server, browser):
    base, links, db = server
    page = browser.new_page()
    page.goto(links[0])
    cookie = next(c for c in page.context.cookies() if c["name"] == "gpt4llm_annotator")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    form_csrf = page.get_attribute("input[name=csrf]", "value")

    def post(pos, **fields):
        req = urllib.request.Request(f"{base}/item/{pos}", data=urllib.parse.urlencode(fields).encode(), method="POST",
                                     headers={"Cookie": f"gpt4llm_annotator={cookie['value']}"})
        try:
            return urllib.request.urlopen(req).status
        except urllib.error.HTTPError as e:
            return e.code

    base_fields = {"helpfulness": "A", "honesty": "A", "harmlessness": "A", "action": "save"}
    assert post(1, csrf="0" * 64, rev="0", **base_fields) == 403  # forged
    assert post(2, csrf=form_csrf, rev="0", **base_fields) == 403  # a form of item 1 posted to item 2
    assert post(1, csrf=form_csrf, rev="0", **{**base_fields, "helpfulness": "C"}) == 400  # invalid value
    page.check("input[name=helpfulness][value=A]")
    page.check("input[name=honesty][value=A]")
    page.check("input[name=harmlessness][value=A]")
    assert post(1, csrf=form_csrf, rev="0", **base_fields) in (200, 303)  # saved elsewhere (another tab)
    page.click("#save")  # this tab's form is now stale
    assert "changed elsewhere" in page.inner_text("#error")
    anon = urllib.request.Request(f"{base}/item/1")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(anon)
    assert e.value.code == 401
