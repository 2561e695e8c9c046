"""The web app's building blocks, by role: `resources` (settings, cached models and knowledge
bases, the header), `markdown`, `cards` (source cards), `viewer` (the source beside the chat),
`answers` (an answer with its sources and feedback), `conversations` (the sidebar list),
`evaluation` (cases from feedback, run), `imports` (uploads); the pages stay thin."""
