"""The web app's building blocks: `resources` (settings, cached models and knowledge bases),
`markdown`, `cards`, `viewer` and `imports`; the pages stay thin."""
