"""Annotating through the real ``eval human`` page over HTTP, as a browser would: start the server,
log in with each printed link, read each item's form (which response the page shows as A, its
csrf token and revision) and post the choices."""

from __future__ import annotations

import re
import subprocess
import sys
from html import unescape
from pathlib import Path
from typing import Callable

import httpx

from support import free_port, wait_http


def annotate(pairs: Path, db: Path, annotators: int, vote: Callable[[int, dict], dict]) -> None:
    """``vote(annotator, pair)`` gives {criterion: 'a' | 'b' | 'tie'} in the pair's terms (a = the
    pair's ``a``); the page shows the two responses in its own order, translated here."""
    import json

    rows = {p["instruction"]: p for p in map(json.loads, Path(pairs).read_text().splitlines())}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gpt4llm", "eval", "human", "serve", "--pairs", str(pairs), "--db",
                             str(db), "--annotators", str(annotators), "--port", str(port)], stdout=subprocess.PIPE,
                            text=True)
    try:
        links = [proc.stdout.readline().strip().split(": ", 1)[1] for _ in range(annotators)]
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/health")
        for k, link in enumerate(links):
            with httpx.Client(base_url=base, follow_redirects=True) as web:
                page = web.get(link.removeprefix(base))
                while "/item/" in str(page.url):
                    html = page.text
                    left = unescape(re.search(r'id="response-a">(.*?)</div>', html, re.S).group(1)).strip()
                    pair = max((p for p in rows.values() if p["instruction"] in unescape(html)),
                               key=lambda p: len(p["instruction"]))
                    a_left = left == pair["a"]["text"].strip()
                    assert a_left or left == pair["b"]["text"].strip()
                    form = {"csrf": re.search(r'name="csrf" value="([^"]+)"', html).group(1),
                            "rev": re.search(r'name="rev" value="([^"]+)"', html).group(1), "action": "save"}
                    for crit, v in vote(k, pair).items():
                        form[crit] = "tie" if v == "tie" else ("A" if (v == "a") == a_left else "B")
                    page = web.post(str(page.url.path), data=form)
                    assert page.status_code == 200, page.text
    finally:
        proc.terminate()
        proc.wait()
