// A one-line fix to node-llama-cpp's speculative decoding, applied by `make install` after npm
// (`node app/llm_node/patch.mjs`; again is harmless) and checked by worker.mjs at start.
//
// Why: in node-llama-cpp 3.22.1 (the newest on npm, 2026-12) `_speculativeEvaluate` compares
// each guessed token after the first with `validatedTokens.at(-1)`, an array nothing ever fills,
// so it confirms at most one guessed token per batch and throws the rest away. The fix records
// each confirmed token there, as the comparison expects. Measured on a reply that copies a
// sentence of its prompt: 29 tokens in 1.80 s token by token, 1.03 s guessing one token ahead
// (as many as the unfixed library confirms a batch), 0.91 s guessing three, 0.65 s six
// (bench/results.md, section 10c).
// Where the text is not found (another version), nothing is changed and the worker guesses one
// token at a time, which the library does right.

import {readFileSync, writeFileSync} from "node:fs";
import {fileURLToPath} from "node:url";

export const TARGET = fileURLToPath(
    new URL("./node_modules/node-llama-cpp/dist/evaluator/LlamaContext/LlamaContext.js", import.meta.url),
);
const CONFIRMED = "this._loadedTokenPredictions.push([evalTokens[i], [resultToken, probabilities, confidence]]);";
const FIX = "validatedTokens.push([evalTokens[i], resultToken]); // zhiku: patch.mjs";

// Whether the installed library confirms several guessed tokens per batch.
export function speculationFixed(path = TARGET) {
    try {
        return readFileSync(path, "utf8").includes(FIX);
    } catch {
        return false;
    }
}

export function applyFix(path = TARGET) {
    const source = readFileSync(path, "utf8");
    if (source.includes(FIX)) return "already fixed";
    const at = source.indexOf(CONFIRMED);
    if (at < 0 || source.indexOf(CONFIRMED, at + 1) >= 0 || !source.includes("validatedTokens.at(-1)")) {
        return "not applied: this node-llama-cpp differs from 3.22.1 (one guessed token per batch)";
    }
    const indent = source.slice(source.lastIndexOf("\n", at) + 1, at);
    const end = at + CONFIRMED.length;
    writeFileSync(path, source.slice(0, end) + "\n" + indent + FIX + source.slice(end));
    return "fixed";
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
    console.log(`node-llama-cpp speculative decoding: ${applyFix()}`);
}
