"""OCR: character error rate on scanned pages made from known Chinese text, and pages per
minute on those and on the shared 32-page thesis whose text layer is unreadable.

`python -m bench.ocr_bench [--thesis]` (the thesis takes minutes on two cores).
"""

from __future__ import annotations

import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

from bench._common import REPO, load_note, say, table

sys.path.insert(0, str(REPO / "tests" / "ingest" / "loaders"))
THESIS = REPO.parent / "shared/fixtures/pdfs/zh/cn_thesis_template_broken_tounicode_32p.pdf"
THESIS_WORDS = (
    "北京师范大学珠海分校",
    "本科生毕业论文",
    "学位论文写作声明",
    "摘要",
    "参考文献",
    "致谢",
)


def run(thesis: bool = False) -> dict[str, Any]:
    from ocr_support import PAGE_ONE, PAGE_THREE, cer, scanned_pdf

    from ingest.load import load_file, ocr

    ocr.recognize  # noqa: B018  (imported before timing)
    ocr._engine()
    results: dict[str, Any] = {"sets": []}
    with tempfile.TemporaryDirectory() as tmp:
        pages = [PAGE_ONE, PAGE_THREE, PAGE_ONE[::-1], PAGE_THREE[::-1]]
        pdf = scanned_pdf(Path(tmp) / "scan.pdf", pages)
        started = time.perf_counter()
        doc = load_file(pdf, 10**9).docs[0]
        seconds = time.perf_counter() - started
        expected = [unicodedata.normalize("NFKC", "\n".join(p)) for p in pages]
        errors = [cer(e, page.text) for e, page in zip(expected, doc.pages, strict=True)]
        results["sets"].append(
            {
                "name": "4 scanned pages of known Chinese text (150 dpi, STSong)",
                "pages": len(pages),
                "seconds": seconds,
                "cer": sum(errors) / len(errors),
                "cer_max": max(errors),
                "note": load_note(),
            }
        )
    if thesis and THESIS.is_file():
        say("OCR: the 32-page thesis")
        started = time.perf_counter()
        doc = load_file(THESIS, 10**9).docs[0]
        seconds = time.perf_counter() - started
        text = "\n".join(p.text for p in doc.pages)
        found = [w for w in THESIS_WORDS if w in text]
        results["sets"].append(
            {
                "name": f"thesis, broken ToUnicode ({len(doc.pages)} pages read; words found: "
                f"{len(found)}/{len(THESIS_WORDS)})",
                "pages": 32,
                "seconds": seconds,
                "cer": float("nan"),
                "cer_max": float("nan"),
                "note": load_note(),
            }
        )
    return results


def render(results: dict[str, Any]) -> str:
    rows = [
        [s["name"], s["pages"], s["seconds"], 60 * s["pages"] / s["seconds"], s["cer"],
         s["cer_max"], s["note"]]
        for s in results["sets"]
    ]  # fmt: skip
    return table(
        ["document", "pages", "seconds", "pages/min", "CER mean", "CER max", "machine"], rows, 3
    )


if __name__ == "__main__":
    print(render(run("--thesis" in sys.argv)))
