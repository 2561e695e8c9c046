"""`app/llm_node/patch.mjs`: the one-line fix to node-llama-cpp's speculative decoding is applied
once, recognised by the worker, and left out (with why) where the library's text differs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from app._llm_runtimes import NODE_PACKAGE, node_command

NODE = node_command()
pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js >= 20 not installed")

# the lines of node-llama-cpp 3.22.1's `_speculativeEvaluate` the fix goes into
UNFIXED = """\
                                const lastValidatedTokenOutput = i === logitsStartIndex + 1
                                    ? nextToken
                                    : validatedTokens.at(-1)?.[1];
                                if (lastValidatedTokenOutput != null && lastValidatedTokenOutput === evalTokens[i]) {
                                    this._loadedTokenPredictions.push([evalTokens[i], [resultToken, probabilities, confidence]]);
                                    this._validatedTokenPredictions++;
"""  # noqa: E501


def patch(function: str, path: Path) -> object:
    script = (
        f"import({json.dumps((NODE_PACKAGE / 'patch.mjs').as_uri())})"
        f".then(m => console.log(JSON.stringify(m.{function}({json.dumps(str(path))}))))"
    )
    done = subprocess.run(
        [str(NODE), "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_fix_goes_in_once_and_the_worker_sees_it(tmp_path: Path) -> None:
    source = tmp_path / "LlamaContext.js"
    source.write_text(UNFIXED)
    assert patch("speculationFixed", source) is False
    assert patch("applyFix", source) == "fixed"
    fixed = source.read_text()
    # each confirmed guess is recorded where the next comparison reads it, at the same indent
    assert (
        "confidence]]);\n                                    validatedTokens.push("
        "[evalTokens[i], resultToken]);" in fixed
    )
    assert patch("speculationFixed", source) is True
    assert patch("applyFix", source) == "already fixed"
    assert source.read_text() == fixed


def test_another_version_is_left_as_it_is(tmp_path: Path) -> None:
    source = tmp_path / "LlamaContext.js"
    other = UNFIXED.replace("validatedTokens.at(-1)?.[1]", "lastValidated")
    source.write_text(other)
    assert str(patch("applyFix", source)).startswith("not applied")
    assert source.read_text() == other
    assert patch("speculationFixed", source) is False


def test_make_install_fixed_the_installed_library() -> None:
    if not (NODE_PACKAGE / "node_modules" / "node-llama-cpp").is_dir():
        pytest.skip("node-llama-cpp not installed")
    assert (
        patch(
            "speculationFixed",
            NODE_PACKAGE
            / "node_modules"
            / "node-llama-cpp"
            / "dist"
            / "evaluator"
            / "LlamaContext"
            / "LlamaContext.js",
        )
        is True
    )
