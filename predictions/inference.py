"""Placeholder until the inference module lands."""


def models_ready() -> tuple[bool, str]:
    return True, "ok"
