"""End-to-end experiments that chain the stages: `rlhfkit demo` (the synthetic TL;DR world) and
`rlhfkit vader` (SmolLM2 from human sentiment ratings). A pipeline may import any layer; nothing
below it imports a pipeline."""
