from engine.redact import redact_secret, redact_text, redact_url


def test_passwords_in_urls_are_redacted() -> None:
    assert redact_url("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
    assert redact_url("rediss://app:hunter2@db.example.com:6380") == "rediss://app:***@db.example.com:6380"
    assert redact_url("redis://localhost:6379") == "redis://localhost:6379"


def test_urls_inside_text_and_literal_secrets_are_redacted() -> None:
    text = "Error connecting to redis://app:hunter2@db:6379: refused; key=abc123"
    out = redact_secret(text, "abc123")
    assert "hunter2" not in out and "abc123" not in out
    assert "redis://app:***@db:6379" in out
    assert redact_text("no url here") == "no url here"
