// The embedded LLM's process on llama.cpp builds whose CPU code is picked when it starts.
//
// Why a Node.js process in a Python project: the only prebuilt llama.cpp we can install without
// compiling on the user's machine that carries one CPU library per instruction level
// (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS: libggml-cpu-{haswell,skylakex,icelake,zen4,
// sapphirerapids,...}.so, the best one the CPU supports loaded at start) is node-llama-cpp's, on
// npm. Every PyPI wheel ships a single AVX2 build (bench/results.md, section 10). The other
// runtime, app/_worker.py (xllamacpp), stays as the fallback when Node.js is missing or this
// process fails its self-check.
//
// The protocol is app/_worker.py's (JSON lines on stdin/stdout), so the same supervisor in
// app/_llm_llamacpp.py starts, watches and restarts either:
// - parent -> worker: {"op": "chat", "id": N, "request": {messages, max_tokens, temperature,
//   stop, response_format}} (OpenAI's: a JSON schema, or any JSON) and {"op": "cancel", "id": N}.
// - worker -> parent: {"event": "ready", ...} after loading and generating one token (the
//   self-check), or {"event": "failed", "message"}; per request {"id", "event": "token", "text"}
//   ..., then {"id", "event": "done", "finish_reason", "timings"} or {"id", "event": "error"}.
// Messages are rendered with the chat template stored in the GGUF (as llama.cpp's server does).
// The fixed prefix (--prefix) is evaluated once and its state saved to --kv-cache; every request
// reuses whatever its prompt shares with the previous one (adaptStateToTokens).

import {readFileSync, existsSync, renameSync, unlinkSync} from "node:fs";
import {createInterface} from "node:readline";
import {parseArgs} from "node:util";
import {Template} from "@huggingface/jinja";
import {
    getLlama,
    InputLookupTokenPredictor,
    LlamaGrammar,
    LlamaGrammarEvaluationState,
    LlamaLogLevel,
} from "node-llama-cpp";
import {speculationFixed} from "./patch.mjs";

const {values: args} = parseArgs({
    options: {
        model: {type: "string"},
        "n-ctx": {type: "string", default: "4096"},
        threads: {type: "string", default: "2"},
        prefix: {type: "string"},
        "kv-cache": {type: "string"},
        draft: {type: "string", default: "0"},
        "flash-attention": {type: "boolean", default: false},
    },
});

function emit(message) {
    process.stdout.write(JSON.stringify(message) + "\n");
}

function errorText(error) {
    return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

// The CPU library llama.cpp chose: the libggml-cpu-*.so this process mapped.
function cpuVariant() {
    try {
        const found = readFileSync("/proc/self/maps", "utf8").match(/libggml-cpu-([\w-]+)\.so/);
        return found ? found[1] : "";
    } catch {
        return "";
    }
}

class Engine {
    constructor(llama, model, context, template, specials) {
        this.llama = llama;
        this.model = model;
        this.context = context;
        // Prompt-lookup speculative decoding: answers copy the passages' words, so the tokens that
        // followed the last two generated ones in the prompt are guessed ahead and checked by the
        // model in one batch. At temperature 0 the reply is the one it writes token by token; on
        // two cores a batch of 4 costs little more than one token, so each right guess saves
        // most of a step (bench/results.md, section 10c: --draft 3 with a 2-token pattern).
        // Unless patch.mjs fixed the library, it confirms one guessed token per batch: guessing
        // more would only waste work.
        this.draft = speculationFixed() ? Number(args.draft) : Math.min(Number(args.draft), 1);
        const draft = this.draft;
        this.sequence = context.getSequence(
            draft > 0
                ? {
                      tokenPredictor: new InputLookupTokenPredictor({
                          patternLength: {min: 2},
                          predictionLength: {max: draft},
                      }),
                  }
                : {},
        );
        this.template = template;
        this.specials = specials;
        this.grammars = new Map();
        this.prefix = null; // {tokens, file}: the answering prefix and its saved state
    }

    render(messages) {
        return this.template.render({messages, add_generation_prompt: true, ...this.specials});
    }

    // OpenAI's response_format as a grammar (kept per schema: answers reuse a few shapes).
    async grammar(format) {
        if (!format || format.type === "text") return undefined;
        const key = JSON.stringify(format);
        if (!this.grammars.has(key)) {
            const schema = format.json_schema?.schema;
            const made =
                format.type === "json_schema" && schema
                    ? await this.llama.createGrammarForJsonSchema(schema)
                    : await LlamaGrammar.getFor(this.llama, "json");
            // node-llama-cpp's JSON grammars end with forced newlines (its chat sessions stop on
            // them); ours ends at the closing brace, where only end-of-generation is left.
            const text = made.grammar.replace(/ "\\n\\n\\n\\n" \[\\n\]\*$/m, "");
            this.grammars.set(key, new LlamaGrammar(this.llama, {grammar: text}));
        }
        return this.grammars.get(key);
    }

    // A short request of another shape (a rewritten follow-up, a yes/no question) replaced the
    // answering prefix in the sequence: read it back from its saved state rather than evaluate
    // it again (a few milliseconds against seconds).
    async restorePrefix(reusable) {
        if (!this.prefix) return;
        const shared = (a, b) => {
            let n = 0;
            while (n < a.length && n < b.length && a[n] === b[n]) n++;
            return n;
        };
        const wanted = shared(this.prefix.tokens, reusable);
        if (wanted < 32 || shared(this.sequence.contextTokens, reusable) >= wanted) return;
        try {
            await this.sequence.loadStateFromFile(this.prefix.file, {acceptRisk: true});
        } catch {
            await this.sequence.clearHistory();
        }
    }

    tokens(messages) {
        return this.model.tokenize(this.render(messages), true);
    }

    // Generate after `tokens`, reusing the state they share with what the sequence holds.
    async *generate(tokens, {maxTokens = 384, temperature = 0, grammar, stop = [], cancelled}) {
        if (tokens.length >= this.context.contextSize) {
            throw new Error(
                `the request (${tokens.length} tokens) exceeds the available context size (${this.context.contextSize} tokens)`,
            );
        }
        // Keep at least the last prompt token to evaluate: generation starts from its logits.
        const reusable = tokens.slice(0, tokens.length - 1);
        await this.restorePrefix(reusable);
        await this.sequence.adaptStateToTokens(reusable, false);
        const cached = this.sequence.nextTokenIndex;
        const grammarEvaluationState = grammar
            ? new LlamaGrammarEvaluationState({model: this.model, grammar})
            : undefined;
        const started = performance.now();
        let firstAt = null;
        const generated = [];
        let shown = "";
        let finishReason = null;
        this.sequence.tokenPredictor?.updateInputTokens(tokens);
        const guessed = {...this.sequence.tokenPredictions};
        const evaluation = this.sequence.evaluate(tokens.slice(cached), {temperature, grammarEvaluationState});
        try {
            for await (const token of evaluation) {
                firstAt ??= performance.now();
                if (this.model.isEogToken(token)) break;
                generated.push(token);
                let text = this.model.detokenize(generated);
                const stopAt = stop.reduce((at, s) => {
                    const i = text.indexOf(s, Math.max(0, shown.length - s.length));
                    return i >= 0 && (at < 0 || i < at) ? i : at;
                }, -1);
                if (stopAt >= 0) {
                    text = text.slice(0, stopAt);
                    finishReason = "stop";
                }
                // A character split across tokens is held until its last byte arrives.
                const complete = stopAt >= 0 ? text : text.replace(/\uFFFD+$/, "");
                if (complete.length > shown.length) {
                    yield {text: complete.slice(shown.length)};
                    shown = complete;
                }
                if (stopAt >= 0 || generated.length >= maxTokens || cancelled()) break;
            }
        } finally {
            await evaluation.return();
        }
        const ended = performance.now();
        firstAt ??= ended;
        // The evaluation also ends by itself at an end-of-generation token or the grammar's end.
        finishReason ??= generated.length >= maxTokens ? "length" : "stop";
        yield {
            finish_reason: finishReason,
            timings: {
                cache_n: cached,
                prompt_n: tokens.length - cached,
                prompt_ms: firstAt - started,
                predicted_n: generated.length,
                predicted_ms: ended - firstAt,
                // speculative decoding: guessed tokens the model confirmed, and those it did not
                draft_accepted: this.sequence.tokenPredictions.validated - guessed.validated,
                draft_refuted: this.sequence.tokenPredictions.refuted - guessed.refuted,
            },
        };
    }
}

async function load() {
    const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
    const model = await llama.loadModel({modelPath: args.model, gpuLayers: 0});
    const threads = Number(args.threads);
    const context = await model.createContext({
        contextSize: Number(args["n-ctx"]),
        sequences: 1, // one answer at a time: on 2 cores a second would halve both
        threads: {ideal: threads, min: 1},
        batchSize: 512,
        flashAttention: args["flash-attention"],
    });
    const metadata = model.fileInfo.metadata;
    const source = metadata?.tokenizer?.chat_template;
    if (!source) throw new Error("the GGUF file has no chat template");
    const tokenText = (id) => (id === undefined ? "" : model.detokenize([id], true));
    const specials = {
        bos_token: tokenText(metadata.tokenizer.ggml?.bos_token_id),
        eos_token: tokenText(metadata.tokenizer.ggml?.eos_token_id),
    };
    return new Engine(llama, model, context, new Template(source), specials);
}

async function prefixCache(engine) {
    if (!args.prefix) return {};
    const started = performance.now();
    const messages = JSON.parse(readFileSync(args.prefix, "utf8"));
    // Any short question after the prefix: what later prompts share with it is the prefix.
    const tokens = engine.tokens([...messages, {role: "user", content: "你好"}]);
    const cache = args["kv-cache"];
    if (cache && existsSync(cache)) {
        try {
            await engine.sequence.loadStateFromFile(cache, {acceptRisk: true});
            engine.prefix = {tokens: engine.sequence.contextTokens.slice(), file: cache};
            return {restored: true, tokens: engine.sequence.nextTokenIndex, s: (performance.now() - started) / 1000};
        } catch {
            await engine.sequence.clearHistory();
        }
    }
    await engine.sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(0, tokens.length - 1));
    if (cache) {
        // Saved under a temporary name and renamed: a reader never restores a half-written file.
        const temporary = `${cache}.${process.pid}.tmp`;
        try {
            await engine.sequence.saveStateToFile(temporary);
            renameSync(temporary, cache);
            engine.prefix = {tokens: tokens.slice(0, tokens.length - 1), file: cache};
        } catch {
            try {
                unlinkSync(temporary);
            } catch {
                // nothing was written
            }
        }
    }
    return {restored: false, tokens: tokens.length - 1, s: (performance.now() - started) / 1000};
}

async function serve(engine) {
    const queue = [];
    const cancelled = new Set();
    let wake = null;
    const lines = createInterface({input: process.stdin});
    lines.on("line", (line) => {
        let message;
        try {
            message = JSON.parse(line);
        } catch {
            return;
        }
        if (message.op === "cancel") cancelled.add(Number(message.id));
        else if (message.op === "chat") {
            queue.push(message);
            wake?.();
        }
    });
    // The parent closed the pipe or died: nobody is left to answer to.
    lines.on("close", () => process.exit(0));
    for (;;) {
        if (!queue.length) await new Promise((resolve) => (wake = resolve));
        wake = null;
        const message = queue.shift();
        if (message) await serveOne(engine, message, cancelled);
    }
}

async function serveOne(engine, message, cancelled) {
    const id = Number(message.id ?? 0);
    const request = message.request ?? {};
    try {
        const tokens = engine.tokens(request.messages ?? []);
        const pieces = engine.generate(tokens, {
            maxTokens: request.max_tokens ?? 384,
            temperature: request.temperature ?? 0,
            grammar: await engine.grammar(request.response_format),
            stop: request.stop ?? [],
            cancelled: () => cancelled.has(id),
        });
        for await (const piece of pieces) {
            if (piece.text !== undefined) emit({id, event: "token", text: piece.text});
            else emit({id, event: "done", ...piece});
        }
    } catch (error) {
        // A bad request must not end the worker; its state is rebuilt from the next prompt.
        await engine.sequence.clearHistory().catch(() => {});
        emit({id, event: "error", message: errorText(error)});
    }
    cancelled.delete(id);
}

async function main() {
    const started = performance.now();
    let engine;
    try {
        engine = await load();
    } catch (error) {
        emit({event: "failed", message: errorText(error)});
        process.exit(3);
    }
    const loadS = (performance.now() - started) / 1000;
    // The self-check: one token through the whole model, so that a CPU that cannot run the
    // chosen library fails here, at start-up, and not in the middle of somebody's first answer.
    try {
        for await (const piece of engine.generate(engine.model.tokenize("你好"), {maxTokens: 1, cancelled: () => false})) {
            void piece;
        }
        await engine.sequence.clearHistory();
    } catch (error) {
        emit({event: "failed", message: errorText(error)});
        process.exit(3);
    }
    const checkS = (performance.now() - started) / 1000 - loadS;
    emit({
        event: "ready",
        load_s: Math.round(loadS * 1000) / 1000,
        check_s: Math.round(checkS * 1000) / 1000,
        prefix: await prefixCache(engine),
        system_info: engine.llama.systemInfo,
        cpu_variant: cpuVariant(),
        draft_tokens: engine.draft,
        runtime: "node-llama-cpp",
        pid: process.pid,
    });
    await serve(engine);
}

// Until the request reader starts (after loading), notice a parent that is already gone.
const parent = process.ppid;
const orphanWatch = setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
}, 1000);
orphanWatch.unref();

await main();
