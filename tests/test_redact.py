from urllib.parse import unquote, urlsplit

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


def test_unencoded_special_characters_in_a_redis_password_are_encoded_and_redacted() -> None:
    from engine.redact import encode_credentials

    for password in ("pa/ss", "pa#ss", "pa?ss", "p@ss", "a/b#c?d@e:f"):
        url = f"redis://app:{password}@db:6379/0"
        encoded = encode_credentials(url)
        parts = urlsplit(encoded)
        assert (parts.hostname, parts.port, parts.path) == ("db", 6379, "/0"), password
        assert unquote(parts.username or "") == "app" and unquote(parts.password or "") == password
        safe = redact_url(url)
        assert safe == "redis://app:***@db:6379/0", password
        assert password.split("/")[-1] not in safe.replace("app:***@db:6379/0", "")
    already = "redis://app:pa%2Fss@db:6379/0"
    assert encode_credentials(already) == already
    assert encode_credentials("redis://db:6379") == "redis://db:6379"
    assert encode_credentials("http://host/path?email=a@b") == "http://host/path?email=a@b"
