"""Every environment variable the code reads is documented in .env.example and the README."""

import re
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SOURCES = [
    *sorted((BASE_DIR / "fintech" / "settings").glob("*.py")),
    BASE_DIR / "fintech" / "embedded.py",
    BASE_DIR / "fintech" / "runner.py",
    BASE_DIR / "fintech" / "__init__.py",
    BASE_DIR / "gunicorn.conf.py",
    BASE_DIR / "scripts" / "venv.sh",
    BASE_DIR / "scripts" / "test",
    BASE_DIR / "tests" / "browser" / "conftest.py",
]
READ_PATTERNS = [
    r"""env\.(?:str|bool|int|list|float|db|email_url)\(\s*"([A-Z][A-Z0-9_]+)\"""",
    r"""os\.environ\.get\(\s*"([A-Z][A-Z0-9_]+)\"""",
    r"""env\.get\(\s*"([A-Z][A-Z0-9_]+)\"""",
    r"""\$\{([A-Z][A-Z0-9_]+):-""",
    r"""_count\(\s*"([A-Z][A-Z0-9_]+)\"""",  # gunicorn.conf.py
]
# Set by tools, not by operators.
INTERNAL = {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE", "PYTHONUNBUFFERED"}


def _variables_read() -> set[str]:
    names: set[str] = set()
    for source in SOURCES:
        text = source.read_text()
        for pattern in READ_PATTERNS:
            names.update(re.findall(pattern, text))
    return names - INTERNAL


def test_the_scan_finds_the_variables_it_should():
    expected = {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "PORT", "CHROMIUM_PATH", "PYTHON", "WEB_THREADS"}
    assert expected <= _variables_read()


def test_every_variable_is_in_env_example_and_the_readme():
    # "NAME=value", or "# NAME=" for a variable whose default is best left unset
    example = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", (BASE_DIR / ".env.example").read_text(), re.MULTILINE))
    readme = (BASE_DIR / "README.md").read_text()
    read = _variables_read()
    assert sorted(read - example) == []
    missing_from_readme = sorted(name for name in read if name not in readme)
    assert missing_from_readme == []
