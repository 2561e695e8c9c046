"""知库 zhiku: the web app and question answering (imports `ingest`, never the reverse)."""

import os

# llama.cpp and torch share one OpenMP runtime, whose threads spin while waiting by default:
# on two cores a spinning pool starves the other library (generation fell from ~8 to under
# 1 token/s while embeddings ran). It must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from app._ast_guard import install as _serialize_ast_parse

_serialize_ast_parse()
