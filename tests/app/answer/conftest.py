"""The answering tests script the LLM with `FakeOllama` (tests/app/ollama_server.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/app: ollama_server
