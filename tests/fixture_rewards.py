"""Plain Python reward functions the RL tests pass by name (`--reward fixture_rewards:...`)."""


def letter_e_share(prompts: list[str], completions: list[str]) -> list[float]:
    """Share of the completion's characters that are 'e': dense, so a tiny model can climb it."""
    return [c.count("e") / max(1, len(c)) for c in completions]
